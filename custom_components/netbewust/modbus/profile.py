"""Device profiles: one JSON file per device family, validated on load.

The file format is documented in docs/modbus-profiles.md. A profile says which
registers exist, how to decode them, which ones feed the engine's readings and how
the engine's setpoints are written. Adding a brand is adding a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.model import ChargerState, DeviceKind
from .codec import DataType, WordOrder, word_count
from .errors import ProfileError

if TYPE_CHECKING:
    from collections.abc import Mapping

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
    min_current_a: float = 6.0
    max_current_a: float = 16.0
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


class _Reader:
    """Typed access to one JSON object, raising ProfileError that names file and field."""

    def __init__(self, source: str, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ProfileError(f"{source}: {path or 'the file'} must be a JSON object")
        self.source = source
        self.data: dict[str, Any] = data
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.source}: field '{self.path + '.' if self.path else ''}{key}'"

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.data:
            if required:
                raise ProfileError(f"{self._where(key)} is missing")
            return None
        return self.data[key]

    def text(self, key: str, *, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ProfileError(f"{self._where(key)} must be a non-empty string")
        return value

    def req_text(self, key: str) -> str:
        value = self.text(key)
        assert value is not None  # required=True raised otherwise
        return value

    def integer(
        self, key: str, *, default: int | None = None, low: int = 0, high: int = 65535
    ) -> int:
        value = self._get(key, default is None)
        if value is None:
            assert default is not None
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ProfileError(f"{self._where(key)} must be an integer in {low}..{high}")
        return value

    def number(self, key: str, *, default: float) -> float:
        value = self._get(key, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProfileError(f"{self._where(key)} must be a number")
        return float(value)

    def choice[E: StrEnum](self, key: str, enum: type[E], *, default: E | None = None) -> E:
        value = self._get(key, default is None)
        if value is None:
            assert default is not None
            return default
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise ProfileError(f"{self._where(key)} is {value!r}; allowed: {allowed}") from None

    def child(self, key: str, *, required: bool = True) -> _Reader | None:
        value = self._get(key, required)
        if value is None:
            return None
        return _Reader(self.source, value, f"{self.path + '.' if self.path else ''}{key}")

    def req_child(self, key: str) -> _Reader:
        child = self.child(key)
        assert child is not None
        return child


def _parse_register(reader: _Reader, name: str, word_order: WordOrder) -> RegisterSpec:
    has_address = reader.has("address")
    has_model = reader.has("model")
    if has_address == has_model:
        raise ProfileError(
            f"{reader.source}: register '{name}' needs either 'address' or 'model'+'offset'"
        )
    data_type = reader.choice("type", DataType)
    table = reader.choice("table", RegisterTable, default=RegisterTable.HOLDING)
    if (table in (RegisterTable.COIL, RegisterTable.DISCRETE_INPUT)) != (
        data_type is DataType.BOOL
    ):
        raise ProfileError(
            f"{reader.source}: register '{name}': coils and discrete inputs have type 'bool', "
            "and only they do"
        )
    scale = reader.number("scale", default=1.0)
    if scale == 0:
        raise ProfileError(f"{reader.source}: register '{name}': scale must not be 0")
    unit_id = reader.integer("unit_id", default=-1, low=-1, high=255)
    return RegisterSpec(
        name=name,
        table=table,
        data_type=data_type,
        word_order=reader.choice("word_order", WordOrder, default=word_order),
        address=reader.integer("address") if has_address else None,
        model=reader.integer("model") if has_model else None,
        offset=reader.integer("offset") if has_model else None,
        string_words=reader.integer("words", default=1, low=1, high=64),
        scale=scale,
        scale_register=reader.text("scale_register", required=False),
        scale_kind=reader.choice("scale_kind", ScaleKind, default=ScaleKind.POWER_OF_TEN),
        unit=reader.text("unit", required=False),
        writable=bool(reader.data.get("writable", False)),
        unit_id=None if unit_id < 0 else unit_id,
    )


def _parse_reads(
    reader: _Reader, registers: Mapping[str, RegisterSpec]
) -> dict[ReadField, tuple[str, ...]]:
    reads: dict[ReadField, tuple[str, ...]] = {}
    for key, value in reader.data.items():
        try:
            read_field = ReadField(key)
        except ValueError:
            allowed = ", ".join(member.value for member in ReadField)
            raise ProfileError(
                f"{reader.source}: field 'read.{key}' is not a known reading; allowed: {allowed}"
            ) from None
        names = value if isinstance(value, list) else [value]
        if read_field in LIST_FIELDS and not isinstance(value, list):
            raise ProfileError(f"{reader.source}: field 'read.{key}' must be a list of registers")
        if read_field in LIST_FIELDS and len(names) not in (1, 3):
            raise ProfileError(f"{reader.source}: field 'read.{key}' needs 1 or 3 registers")
        for name in names:
            if name not in registers:
                raise ProfileError(
                    f"{reader.source}: field 'read.{key}' names unknown register {name!r}"
                )
        reads[read_field] = tuple(names)
    return reads


def _parse_control(
    reader: _Reader, kind: ProfileKind, registers: Mapping[str, RegisterSpec]
) -> ControlSpec:
    method = reader.choice("method", ControlMethod)
    if method not in _ALLOWED_METHODS[kind]:
        allowed = ", ".join(sorted(_ALLOWED_METHODS[kind]))
        raise ProfileError(
            f"{reader.source}: field 'control.method' {method.value!r} does not fit a "
            f"{kind.value}; allowed: {allowed}"
        )
    roles_reader = reader.child("registers", required=False)
    roles: dict[str, str] = {}
    if roles_reader is not None:
        for role in roles_reader.data:
            roles[role] = roles_reader.req_text(role)
    required, optional = _ROLES[method]
    for role in required - roles.keys():
        raise ProfileError(f"{reader.source}: field 'control.registers.{role}' is missing")
    for role, name in roles.items():
        if role not in required | optional:
            raise ProfileError(
                f"{reader.source}: field 'control.registers.{role}' is not a role of {method.value}"
            )
        if name not in registers:
            raise ProfileError(
                f"{reader.source}: field 'control.registers.{role}' names unknown register {name!r}"
            )
        spec = registers[name]
        if role not in {"max_charge_w", "rated_w"} and not spec.writable:
            raise ProfileError(f"{reader.source}: register {name!r} (role {role}) must be writable")
    pause = reader.choice("pause", PauseMethod, default=PauseMethod.ZERO_CURRENT)
    if pause is PauseMethod.ENABLE_REGISTER and "enable" not in roles:
        raise ProfileError(f"{reader.source}: field 'control.pause' needs an 'enable' register")
    min_current = reader.number("min_current_a", default=6.0)
    max_current = reader.number("max_current_a", default=16.0)
    if not 0 < min_current <= max_current <= 80:
        raise ProfileError(
            f"{reader.source}: field 'control' needs 0 < min_current_a <= max_current_a <= 80"
        )
    return ControlSpec(
        method=method,
        registers=roles,
        min_current_a=min_current,
        max_current_a=max_current,
        pause=pause,
        enabled_value=reader.integer("enabled_value", default=1),
        disabled_value=reader.integer("disabled_value", default=0),
        one_phase_value=reader.integer("one_phase_value", default=1),
        three_phase_value=reader.integer("three_phase_value", default=3),
        idle_setpoint_w=reader.number("idle_setpoint_w", default=0.0),
        no_limit_value=reader.number("no_limit_value", default=-1.0),
    )


def _parse_identity(reader: _Reader | None, registers: Mapping[str, RegisterSpec]) -> IdentitySpec:
    if reader is None:
        return IdentitySpec()
    names: dict[str, str | None] = {}
    for key in ("manufacturer", "model", "firmware", "serial", "check_register"):
        name = reader.text(key, required=False)
        if name is not None and name not in registers:
            raise ProfileError(
                f"{reader.source}: field 'identity.{key}' names unknown register {name!r}"
            )
        names[key] = name
    one_of = reader.data.get("check_one_of", [])
    if not isinstance(one_of, list) or not all(isinstance(item, str) for item in one_of):
        raise ProfileError(
            f"{reader.source}: field 'identity.check_one_of' must be a list of strings"
        )
    if bool(one_of) != (names["check_register"] is not None):
        raise ProfileError(
            f"{reader.source}: 'identity.check_register' and 'check_one_of' go together"
        )
    return IdentitySpec(
        manufacturer=names["manufacturer"],
        model=names["model"],
        firmware=names["firmware"],
        serial=names["serial"],
        check_register=names["check_register"],
        check_one_of=tuple(one_of),
    )


def parse_profile(data: Any, source: str) -> Profile:
    """Validate a decoded profile; `source` names it in errors (usually the file name)."""
    top = _Reader(source, data, "")
    kind = top.choice("kind", ProfileKind)
    word_order = top.choice("word_order", WordOrder, default=WordOrder.BIG)
    registers: dict[str, RegisterSpec] = {}
    reg_reader = top.req_child("registers")
    for name in reg_reader.data:
        registers[name] = _parse_register(reg_reader.req_child(name), name, word_order)
    for spec in registers.values():
        if spec.scale_register is not None and spec.scale_register not in registers:
            raise ProfileError(
                f"{source}: register '{spec.name}' has unknown "
                f"scale_register {spec.scale_register!r}"
            )
    sunspec_reader = top.child("sunspec", required=False)
    sunspec = None
    if sunspec_reader is not None:
        bases = sunspec_reader.data.get("base_addresses", [40000, 50000, 0])
        models = sunspec_reader.data.get("required_models", [1])
        if not all(isinstance(v, int) for v in [*bases, *models]) or not bases:
            raise ProfileError(f"{source}: field 'sunspec' needs integer lists")
        sunspec = SunSpecSpec(base_addresses=tuple(bases), required_models=tuple(models))
    if sunspec is None and any(spec.model is not None for spec in registers.values()):
        raise ProfileError(f"{source}: registers use SunSpec models but 'sunspec' is missing")
    reads = _parse_reads(top.req_child("read"), registers)
    for required in _REQUIRED_READS[kind] - reads.keys():
        raise ProfileError(f"{source}: field 'read.{required.value}' is missing for a {kind.value}")
    states: dict[str, ChargerState] = {}
    states_reader = top.child("charger_states", required=kind is ProfileKind.CHARGER)
    if states_reader is not None:
        for raw_state in states_reader.data:
            states[raw_state] = states_reader.choice(raw_state, ChargerState)
    watchdog_reader = top.child("watchdog", required=False)
    watchdog = None
    if watchdog_reader is not None:
        validity = watchdog_reader.number("validity_s", default=0.0)
        refresh = watchdog_reader.number("refresh_s", default=validity / 3)
        if not 0 < refresh < validity:
            raise ProfileError(f"{source}: field 'watchdog' needs 0 < refresh_s < validity_s")
        watchdog = WatchdogSpec(refresh_s=refresh, validity_s=validity)
    extra_values = top.data.get("values", [])
    if not isinstance(extra_values, list) or not all(name in registers for name in extra_values):
        raise ProfileError(f"{source}: field 'values' must list known register names")
    defaults = top.child("defaults", required=False)
    sign = top.number("power_sign", default=1.0)
    if sign not in (1.0, -1.0):
        raise ProfileError(f"{source}: field 'power_sign' must be 1 or -1")
    return Profile(
        profile_id=top.req_text("id"),
        name=top.req_text("name"),
        manufacturer=top.req_text("manufacturer"),
        kind=kind,
        source=top.req_text("source"),
        when_offline=top.req_text("when_offline"),
        default_port=defaults.integer("port", default=502) if defaults else 502,
        default_unit_id=defaults.integer("unit_id", default=1, high=255) if defaults else 1,
        registers=registers,
        reads=reads,
        control=_parse_control(top.req_child("control"), kind, registers),
        identity=_parse_identity(top.child("identity", required=False), registers),
        charger_states=states,
        power_sign=sign,
        watchdog=watchdog,
        sunspec=sunspec,
        max_block_gap=top.integer("max_block_gap", default=0, high=32),
        extra_values=tuple(extra_values),
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
