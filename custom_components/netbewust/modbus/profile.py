"""Device profiles: one JSON file per device family, validated on load (pydantic, strict).

The file format is documented in docs/modbus-profiles.md. A profile says which
registers exist, how to decode them, which ones feed the engine's readings and how
the engine's setpoints are written. Adding a brand is adding a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ..core.model import (
    DEFAULT_CHARGER_MAX_CURRENT_A,
    MIN_CHARGE_CURRENT_A,
    ChargerState,
    DeviceKind,
)
from .codec import DataType, WordOrder, word_count
from .errors import ProfileError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic_core import ErrorDetails

PROFILE_DIR = Path(__file__).parent / "profiles"
SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"


class RegisterTable(StrEnum):
    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"


class ScaleKind(StrEnum):
    POWER_OF_TEN = "power_of_ten"  # value * 10**register (SunSpec _SF)
    DIVISOR = "divisor"  # value / register


class ProfileKind(StrEnum):
    CHARGER = "charger"
    BATTERY = "battery"
    METER = "meter"
    PV = "pv"
    HEAT_PUMP = "heat_pump"

    @property
    def device_kind(self) -> DeviceKind | None:
        """The engine's device kind; a meter is a measurement source, not a device."""
        return None if self is ProfileKind.METER else DeviceKind(self.value)


class ControlMethod(StrEnum):
    NONE = "none"  # read only (meters)
    CHARGER_CURRENT = "charger_current"
    SUNSPEC_STORAGE = "sunspec_storage"
    GRID_SETPOINT = "grid_setpoint"
    SUNSPEC_POWER_LIMIT = "sunspec_power_limit"
    SG_READY_RELAYS = "sg_ready_relays"


class PauseMethod(StrEnum):
    ZERO_CURRENT = "zero_current"  # write 0 A
    ENABLE_REGISTER = "enable_register"  # write the "enable" role's disabled value


class ReadField(StrEnum):
    """Readings the engine understands; list-valued fields hold one register per phase."""

    POWER_W = "power_w"
    PHASE_POWERS_W = "phase_powers_w"
    PHASE_CURRENTS_A = "phase_currents_a"
    PHASE_VOLTAGES_V = "phase_voltages_v"
    ENERGY_WH = "energy_wh"
    ENERGY_EXPORT_WH = "energy_export_wh"
    SOC_PCT = "soc_pct"
    CHARGER_STATE = "charger_state"
    ACTIVE_PHASES = "active_phases"
    APPLIED_CURRENT_A = "applied_current_a"
    GRID_PHASE_POWERS_W = "grid_phase_powers_w"


LIST_FIELDS = frozenset(
    {
        ReadField.PHASE_POWERS_W,
        ReadField.PHASE_CURRENTS_A,
        ReadField.PHASE_VOLTAGES_V,
        ReadField.GRID_PHASE_POWERS_W,
    }
)

_ALLOWED_METHODS: Mapping[ProfileKind, frozenset[ControlMethod]] = {
    ProfileKind.CHARGER: frozenset({ControlMethod.CHARGER_CURRENT}),
    ProfileKind.BATTERY: frozenset({ControlMethod.SUNSPEC_STORAGE, ControlMethod.GRID_SETPOINT}),
    ProfileKind.METER: frozenset({ControlMethod.NONE}),
    ProfileKind.PV: frozenset({ControlMethod.SUNSPEC_POWER_LIMIT}),
    ProfileKind.HEAT_PUMP: frozenset({ControlMethod.SG_READY_RELAYS}),
}

# Control roles: (required, optional) register roles per method.
_ROLES: Mapping[ControlMethod, tuple[frozenset[str], frozenset[str]]] = {
    ControlMethod.NONE: (frozenset(), frozenset()),
    ControlMethod.CHARGER_CURRENT: (frozenset({"current"}), frozenset({"enable", "phases"})),
    ControlMethod.SUNSPEC_STORAGE: (
        frozenset({"mode", "charge_rate_pct", "discharge_rate_pct", "max_charge_w"}),
        frozenset({"revert_s"}),
    ),
    ControlMethod.GRID_SETPOINT: (frozenset({"setpoint", "max_discharge_w"}), frozenset()),
    ControlMethod.SUNSPEC_POWER_LIMIT: (
        frozenset({"limit_pct", "enable", "rated_w"}),
        frozenset({"revert_s"}),
    ),
    ControlMethod.SG_READY_RELAYS: (frozenset({"relay_1", "relay_2"}), frozenset()),
}

_REQUIRED_READS: Mapping[ProfileKind, frozenset[ReadField]] = {
    ProfileKind.CHARGER: frozenset({ReadField.CHARGER_STATE}),
    ProfileKind.BATTERY: frozenset({ReadField.POWER_W, ReadField.SOC_PCT}),
    ProfileKind.METER: frozenset({ReadField.PHASE_POWERS_W}),
    ProfileKind.PV: frozenset({ReadField.POWER_W}),
    ProfileKind.HEAT_PUMP: frozenset(),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterSpec:
    """One value on the device. Either `address` or SunSpec `model` + `offset` is set."""

    name: str
    table: RegisterTable
    data_type: DataType
    word_order: WordOrder
    address: int | None = None
    model: int | None = None
    offset: int | None = None
    string_words: int = 1
    scale: float = 1.0
    scale_register: str | None = None
    scale_kind: ScaleKind = ScaleKind.POWER_OF_TEN
    unit: str | None = None
    writable: bool = False
    unit_id: int | None = None  # a fixed unit id (e.g. Alfen's station registers at 200)

    @property
    def words(self) -> int:
        return word_count(self.data_type, self.string_words)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentitySpec:
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    check_register: str | None = None
    check_one_of: tuple[str, ...] = ()  # compared as text, case-insensitive substring


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlSpec:
    method: ControlMethod
    registers: Mapping[str, str] = field(default_factory=dict)
    min_current_a: float = MIN_CHARGE_CURRENT_A
    max_current_a: float = DEFAULT_CHARGER_MAX_CURRENT_A
    pause: PauseMethod = PauseMethod.ZERO_CURRENT
    enabled_value: int = 1
    disabled_value: int = 0
    one_phase_value: int = 1
    three_phase_value: int = 3
    idle_setpoint_w: float = 0.0
    no_limit_value: float = -1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogSpec:
    """A device-side fallback: rewrite setpoints every `refresh_s`, before `validity_s`."""

    refresh_s: float
    validity_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SunSpecSpec:
    base_addresses: tuple[int, ...] = (40000, 50000, 0)
    required_models: tuple[int, ...] = (1,)


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    profile_id: str
    name: str
    manufacturer: str
    kind: ProfileKind
    source: str
    when_offline: str
    default_port: int
    default_unit_id: int
    registers: Mapping[str, RegisterSpec]
    reads: Mapping[ReadField, tuple[str, ...]]
    control: ControlSpec
    identity: IdentitySpec
    charger_states: Mapping[str, ChargerState] = field(default_factory=dict)
    power_sign: float = 1.0  # multiply the device's power to get "+ draws from the home"
    watchdog: WatchdogSpec | None = None
    sunspec: SunSpecSpec | None = None
    max_block_gap: int = 0  # registers of padding allowed when merging reads
    extra_values: tuple[str, ...] = ()  # read for display only (entities, diagnostics)

    def register(self, role: str) -> RegisterSpec:
        """The register behind a control role."""
        return self.registers[self.control.registers[role]]


# --- the file format, validated by pydantic ------------------------------------------

_FILE_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]
Word = Annotated[int, Field(ge=0, le=65535)]


def _choice[E: StrEnum](enum: type[E]) -> Any:
    """An enum read from its JSON text (strict mode alone would want the enum itself)."""
    return Annotated[enum, Field(strict=False)]


class _RegisterFile(BaseModel):
    model_config = _FILE_CONFIG

    type: _choice(DataType)  # type: ignore[valid-type]
    table: _choice(RegisterTable) = RegisterTable.HOLDING  # type: ignore[valid-type]
    word_order: _choice(WordOrder) | None = None  # type: ignore[valid-type]
    address: Word | None = None
    model: Word | None = None
    offset: Word | None = None
    words: Annotated[int, Field(ge=1, le=64)] = 1
    scale: float = 1.0
    scale_register: Text | None = None
    scale_kind: _choice(ScaleKind) = ScaleKind.POWER_OF_TEN  # type: ignore[valid-type]
    unit: Text | None = None
    writable: bool = False
    unit_id: Annotated[int, Field(ge=-1, le=255)] = -1  # -1: the device's unit id


class _ControlFile(BaseModel):
    model_config = _FILE_CONFIG

    method: _choice(ControlMethod)  # type: ignore[valid-type]
    registers: dict[str, Text] = {}
    min_current_a: float = MIN_CHARGE_CURRENT_A
    max_current_a: float = DEFAULT_CHARGER_MAX_CURRENT_A
    pause: _choice(PauseMethod) = PauseMethod.ZERO_CURRENT  # type: ignore[valid-type]
    enabled_value: Word = 1
    disabled_value: Word = 0
    one_phase_value: Word = 1
    three_phase_value: Word = 3
    idle_setpoint_w: float = 0.0
    no_limit_value: float = -1.0


class _IdentityFile(BaseModel):
    model_config = _FILE_CONFIG

    manufacturer: Text | None = None
    model: Text | None = None
    firmware: Text | None = None
    serial: Text | None = None
    check_register: Text | None = None
    check_one_of: list[str] = []


class _SunSpecFile(BaseModel):
    model_config = _FILE_CONFIG

    base_addresses: Annotated[list[int], Field(min_length=1)] = [40000, 50000, 0]
    required_models: list[int] = [1]


class _WatchdogFile(BaseModel):
    model_config = _FILE_CONFIG

    validity_s: float = 0.0
    refresh_s: float | None = None  # default: a third of the validity


class _DefaultsFile(BaseModel):
    model_config = _FILE_CONFIG

    port: Word = 502
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1


class _ProfileFile(BaseModel):
    model_config = _FILE_CONFIG

    id: Text
    name: Text
    manufacturer: Text
    kind: _choice(ProfileKind)  # type: ignore[valid-type]
    source: Text
    when_offline: Text
    word_order: _choice(WordOrder) = WordOrder.BIG  # type: ignore[valid-type]
    registers: dict[str, _RegisterFile]
    read: dict[str, str | list[str]]
    control: _ControlFile
    identity: _IdentityFile | None = None
    charger_states: dict[str, _choice(ChargerState)] | None = None  # type: ignore[valid-type]
    power_sign: Literal[1, -1] = 1
    watchdog: _WatchdogFile | None = None
    sunspec: _SunSpecFile | None = None
    max_block_gap: Annotated[int, Field(ge=0, le=32)] = 0
    values: list[str] = []
    defaults: _DefaultsFile = _DefaultsFile()


def _reason(error: ErrorDetails) -> str:
    """One pydantic error in the words of the rest of the profile errors."""
    match error["type"]:
        case "missing":
            return "is missing"
        case "extra_forbidden":
            return "is not a known field"
        case "enum" | "literal_error":
            allowed = str((error.get("ctx") or {}).get("expected", ""))
            allowed = allowed.replace("'", "").replace(" or ", ", ")
            return f"is {error['input']!r}; allowed: {allowed}"
        case "value_error":
            return str((error.get("ctx") or {}).get("error", error["msg"]))
    return error["msg"].replace("Input should be", "must be")


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    path = ".".join(str(part) for part in first["loc"])
    if not path:
        return f"{source}: the file must be a JSON object"
    return f"{source}: field '{path}' {_reason(first)}"


# --- what the file means: references between its parts -------------------------------


def _register(source: str, name: str, raw: _RegisterFile, word_order: WordOrder) -> RegisterSpec:
    if (raw.address is None) == (raw.model is None) or (raw.model is None) != (raw.offset is None):
        raise ProfileError(
            f"{source}: register '{name}' needs either 'address' or 'model'+'offset'"
        )
    if (raw.table in (RegisterTable.COIL, RegisterTable.DISCRETE_INPUT)) != (
        raw.type is DataType.BOOL
    ):
        raise ProfileError(
            f"{source}: register '{name}': coils and discrete inputs have type 'bool', "
            "and only they do"
        )
    if raw.scale == 0:
        raise ProfileError(f"{source}: register '{name}': scale must not be 0")
    return RegisterSpec(
        name=name,
        table=raw.table,
        data_type=raw.type,
        word_order=raw.word_order or word_order,
        address=raw.address,
        model=raw.model,
        offset=raw.offset,
        string_words=raw.words,
        scale=raw.scale,
        scale_register=raw.scale_register,
        scale_kind=raw.scale_kind,
        unit=raw.unit,
        writable=raw.writable,
        unit_id=None if raw.unit_id < 0 else raw.unit_id,
    )


def _reads(
    source: str, raw: Mapping[str, str | list[str]], registers: Mapping[str, RegisterSpec]
) -> dict[ReadField, tuple[str, ...]]:
    reads: dict[ReadField, tuple[str, ...]] = {}
    for key, value in raw.items():
        try:
            read_field = ReadField(key)
        except ValueError:
            allowed = ", ".join(member.value for member in ReadField)
            raise ProfileError(
                f"{source}: field 'read.{key}' is not a known reading; allowed: {allowed}"
            ) from None
        names = value if isinstance(value, list) else [value]
        if read_field in LIST_FIELDS and not isinstance(value, list):
            raise ProfileError(f"{source}: field 'read.{key}' must be a list of registers")
        if read_field in LIST_FIELDS and len(names) not in (1, 3):
            raise ProfileError(f"{source}: field 'read.{key}' needs 1 or 3 registers")
        for name in names:
            if name not in registers:
                raise ProfileError(f"{source}: field 'read.{key}' names unknown register {name!r}")
        reads[read_field] = tuple(names)
    return reads


def _control(
    source: str, raw: _ControlFile, kind: ProfileKind, registers: Mapping[str, RegisterSpec]
) -> ControlSpec:
    method: ControlMethod = raw.method
    if method not in _ALLOWED_METHODS[kind]:
        allowed = ", ".join(sorted(_ALLOWED_METHODS[kind]))
        raise ProfileError(
            f"{source}: field 'control.method' {method.value!r} does not fit a "
            f"{kind.value}; allowed: {allowed}"
        )
    required, optional = _ROLES[method]
    for role in required - raw.registers.keys():
        raise ProfileError(f"{source}: field 'control.registers.{role}' is missing")
    for role, name in raw.registers.items():
        if role not in required | optional:
            raise ProfileError(
                f"{source}: field 'control.registers.{role}' is not a role of {method.value}"
            )
        if name not in registers:
            raise ProfileError(
                f"{source}: field 'control.registers.{role}' names unknown register {name!r}"
            )
        if role not in {"max_charge_w", "rated_w"} and not registers[name].writable:
            raise ProfileError(f"{source}: register {name!r} (role {role}) must be writable")
    if raw.pause is PauseMethod.ENABLE_REGISTER and "enable" not in raw.registers:
        raise ProfileError(f"{source}: field 'control.pause' needs an 'enable' register")
    if not 0 < raw.min_current_a <= raw.max_current_a <= 80:
        raise ProfileError(
            f"{source}: field 'control' needs 0 < min_current_a <= max_current_a <= 80"
        )
    return ControlSpec(
        method=method,
        registers=dict(raw.registers),
        min_current_a=raw.min_current_a,
        max_current_a=raw.max_current_a,
        pause=raw.pause,
        enabled_value=raw.enabled_value,
        disabled_value=raw.disabled_value,
        one_phase_value=raw.one_phase_value,
        three_phase_value=raw.three_phase_value,
        idle_setpoint_w=raw.idle_setpoint_w,
        no_limit_value=raw.no_limit_value,
    )


def _identity(
    source: str, raw: _IdentityFile | None, registers: Mapping[str, RegisterSpec]
) -> IdentitySpec:
    if raw is None:
        return IdentitySpec()
    for key in ("manufacturer", "model", "firmware", "serial", "check_register"):
        name = getattr(raw, key)
        if name is not None and name not in registers:
            raise ProfileError(f"{source}: field 'identity.{key}' names unknown register {name!r}")
    if bool(raw.check_one_of) != (raw.check_register is not None):
        raise ProfileError(f"{source}: 'identity.check_register' and 'check_one_of' go together")
    return IdentitySpec(
        manufacturer=raw.manufacturer,
        model=raw.model,
        firmware=raw.firmware,
        serial=raw.serial,
        check_register=raw.check_register,
        check_one_of=tuple(raw.check_one_of),
    )


def _watchdog(source: str, raw: _WatchdogFile | None) -> WatchdogSpec | None:
    if raw is None:
        return None
    refresh = raw.validity_s / 3 if raw.refresh_s is None else raw.refresh_s
    if not 0 < refresh < raw.validity_s:
        raise ProfileError(f"{source}: field 'watchdog' needs 0 < refresh_s < validity_s")
    return WatchdogSpec(refresh_s=refresh, validity_s=raw.validity_s)


def parse_profile(data: Any, source: str) -> Profile:
    """Validate a decoded profile; `source` names it in errors (usually the file name)."""
    try:
        raw = _ProfileFile.model_validate(data)
    except ValidationError as err:
        raise ProfileError(_describe(err, source)) from None
    kind: ProfileKind = raw.kind
    registers = {
        name: _register(source, name, spec, raw.word_order) for name, spec in raw.registers.items()
    }
    for spec in registers.values():
        if spec.scale_register is not None and spec.scale_register not in registers:
            raise ProfileError(
                f"{source}: register '{spec.name}' has unknown "
                f"scale_register {spec.scale_register!r}"
            )
    if raw.sunspec is None and any(spec.model is not None for spec in registers.values()):
        raise ProfileError(f"{source}: registers use SunSpec models but 'sunspec' is missing")
    reads = _reads(source, raw.read, registers)
    for required in _REQUIRED_READS[kind] - reads.keys():
        raise ProfileError(f"{source}: field 'read.{required.value}' is missing for a {kind.value}")
    if kind is ProfileKind.CHARGER and raw.charger_states is None:
        raise ProfileError(f"{source}: field 'charger_states' is missing")
    if not all(name in registers for name in raw.values):
        raise ProfileError(f"{source}: field 'values' must list known register names")
    return Profile(
        profile_id=raw.id,
        name=raw.name,
        manufacturer=raw.manufacturer,
        kind=kind,
        source=raw.source,
        when_offline=raw.when_offline,
        default_port=raw.defaults.port,
        default_unit_id=raw.defaults.unit_id,
        registers=registers,
        reads=reads,
        control=_control(source, raw.control, kind, registers),
        identity=_identity(source, raw.identity, registers),
        charger_states=dict(raw.charger_states or {}),
        power_sign=float(raw.power_sign),
        watchdog=_watchdog(source, raw.watchdog),
        sunspec=None
        if raw.sunspec is None
        else SunSpecSpec(
            base_addresses=tuple(raw.sunspec.base_addresses),
            required_models=tuple(raw.sunspec.required_models),
        ),
        max_block_gap=raw.max_block_gap,
        extra_values=tuple(raw.values),
    )


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ProfileError(f"{path.name}: cannot be read ({err.strerror})") from err
    except json.JSONDecodeError as err:
        raise ProfileError(f"{path.name}: not valid JSON (line {err.lineno}: {err.msg})") from err
    profile = parse_profile(data, path.name)
    if profile.profile_id != path.stem:
        raise ProfileError(f"{path.name}: field 'id' must equal the file name ({path.stem!r})")
    return profile


def load_profiles(directory: Path = PROFILE_DIR) -> dict[str, Profile]:
    """Every profile shipped in `directory`, by id; one bad file fails loudly."""
    return {
        profile.profile_id: profile
        for profile in map(load_profile, sorted(directory.glob("*.json")))
    }
