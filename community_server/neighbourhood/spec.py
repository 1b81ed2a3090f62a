"""The neighbourhood file (TOML): transformer, period, prices and household groups.

Every field is checked when the file is read (pydantic, strict); an error names the
field, e.g.
`households[2].ev.charger_kw: must be within 3.7..50, got 2`. The format is documented in
docs/simulator.md; `examples/neighbourhoods/` holds working files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from netbewust_core.collective.problem import SharingRule
from netbewust_core.thermal import GAS_KWH_PER_M3, BuildingType, InsulationEra, default_parameters
from netbewust_core.units import PowerW, connection_power_w

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from pydantic_core import ErrorDetails

EV_CHARGER_KW = (3.7, 50.0)  # a home's 16 A single phase up to a 50 kW DC charger
# What a Dutch LV feeder connects: households (1x25A..3x25A) up to small businesses (3x80A).
CONNECTIONS = {
    f"{phases}x{fuse}A": (phases, float(fuse))
    for phases, fuses in ((1, (25, 35, 40)), (3, (25, 35, 40, 50, 63, 80)))
    for fuse in fuses
}
COLD_WEEK_C = (-2.0, -4.0, -6.0, -5.0, -3.0, -1.0, 1.0)
MAX_DAYS = 31
LOCAL_TIMEZONE = "Europe/Amsterdam"
MAX_HOUSEHOLDS = 5000


class NeighbourhoodError(ValueError):
    """A neighbourhood file that does not validate; the message names the field."""


class HeatPumpKind(StrEnum):
    HYBRID = "hybrid"  # small electric part, a gas boiler delivers the rest
    FULL = "full"  # all heat is electric; what it cannot deliver is a comfort loss


class PumpControl(StrEnum):
    MODULATING = "modulating"  # any power up to its maximum (a power limit; a hybrid's cap)
    ON_OFF = "on_off"  # its thermostat cycles it; Netbewust can only block it (SG-Ready)


@dataclass(frozen=True, slots=True)
class Range:
    """A value drawn uniformly per household (low == high: fixed)."""

    low: float
    high: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EvSpec:
    charger_kw: float
    energy_kwh: Range  # needed per session, drawn per home and day
    arrival_h: float  # local mean arrival
    arrival_sd_h: float
    departure_h: float  # local; the first such clock time after the arrival
    sessions_per_week: float = 7.0  # drawn sessions: on each day with probability this / 7
    sessions_csv: Path | None = None  # connection,arrival,departure,energy_kwh rows


@dataclass(frozen=True, slots=True, kw_only=True)
class ComfortSpec:
    """The thermostat's day set point and night set-back, local time, with the band."""

    day_c: float
    night_c: float
    day_from_h: float
    night_from_h: float
    below_k: float  # the band reaches this far below the set point
    above_k: float  # and this far above the day set point


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatPumpSpec:
    kind: HeatPumpKind
    electric_w: float  # the pump's maximum electric power (a hybrid's cap)
    cop: float  # at A7/W35 (outdoor 7 C, supply 35 C); scaled by the Carnot COP
    constant_cop: bool  # True: `cop` at every outdoor temperature
    heat_loss_w_per_k: Range  # the building's heat loss coefficient (1R1C: 1000 / R)
    capacitance_kwh_per_k: float  # the building's effective heat capacity (1R1C: C)
    control: PumpControl
    min_electric_w: float  # a modulating pump's lowest power when running
    boiler_kw: float  # hybrids: the gas boiler's heat output; 0 for full pumps
    gas_eur_per_m3: float  # hybrids: the gas price the pump's controller trades against
    comfort: ComfortSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class BatterySpec:
    capacity_kwh: float
    power_kw: float
    profile_csv: Path | None = None  # its own schedule (W, + charge) without plans
    profile_column: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdGroup:
    count: int
    phases: int
    fuse_a: float
    annual_kwh: Range
    noise: float  # relative standard deviation of the real base load around its profile
    pv_peak_w: float
    ev: EvSpec | None
    heat_pump: HeatPumpSpec | None
    battery: BatterySpec | None
    base_load_csv: Path | None  # columns of W (docs/simulator.md: which column a home takes)
    pv_csv: Path | None  # columns of W per kW peak
    name: str | None = None  # names the connections: `name`, or `name-1`..`name-<count>`
    base_load_column: str | None = None  # every connection of the group takes this column
    pv_column: str | None = None
    heat_pump_csv: Path | None = None  # measured electricity (W): a fixed load, no model
    heat_pump_column: str | None = None

    def connection_names(self) -> tuple[str, ...] | None:
        """The connections' names, by which CSV columns and sessions are found."""
        if self.name is None:
            return None
        if self.count == 1:
            return (self.name,)
        return tuple(f"{self.name}-{i}" for i in range(1, self.count + 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class Neighbourhood:
    name: str
    seed: int
    start: date  # local date; the period starts at its local noon, days of 96 quarters
    days: int
    daily_mean_c: tuple[float, ...]  # one per day
    outdoor_csv: Path | None  # timestamp,temperature_c; replaces the daily means' cycle
    transformer_kva: float
    power_factor: float
    non_member_load_w: float
    price_csv: Path | None
    import_markup_eur_per_kwh: float  # added after VAT (older files: everything on top)
    export_markup_eur_per_kwh: float  # subtracted from day-ahead for export
    gas_eur_per_kwh: float
    sharing_rule: SharingRule
    groups: tuple[HouseholdGroup, ...]
    timezone: str = LOCAL_TIMEZONE  # local clock of profiles, arrivals and comfort (DST)
    non_member_csv: Path | None = None  # timestamp,non_member_w; replaces non_member_load_w
    # A Dutch contract: (day-ahead + supplier markup + energy tax) x VAT factor.
    supplier_markup_eur_per_kwh: float = 0.0
    energy_tax_eur_per_kwh: float = 0.0
    vat_factor: float = 1.0

    @property
    def households(self) -> int:
        return sum(group.count for group in self.groups)

    @property
    def transformer_cap_w(self) -> float:
        return self.transformer_kva * 1000 * self.power_factor


# --- the file format, validated by pydantic ------------------------------------------

_FILE_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)


def _range(default: Range | None, low: float, high: float) -> Any:
    """A value drawn per household: a number, or [low, high], within [low, high]."""

    def parse(value: object) -> Range:
        if isinstance(value, Range):
            return value
        if isinstance(value, list):
            if len(value) != 2 or not all(_is_number(v) for v in value):
                raise PydanticCustomError("range", "a range is two numbers [low, high]")
            lo, hi = float(value[0]), float(value[1])
        elif _is_number(value):
            lo = hi = float(value)  # type: ignore[arg-type]
        else:
            raise PydanticCustomError(
                "range", "must be a number or [low, high], got {value}", {"value": repr(value)}
            )
        if not low <= lo <= hi <= high:
            raise PydanticCustomError(
                "range",
                "needs {low} <= low <= high <= {high}, got [{lo}, {hi}]",
                {"low": low, "high": high, "lo": lo, "hi": hi},
            )
        return Range(lo, hi)

    return Annotated[
        Range | None if default is None else Range, PlainValidator(parse), Field(default=default)
    ]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _start(value: object) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PydanticCustomError(
            "date", "a date like 2026-01-12, got {value}", {"value": repr(value)}
        ) from None


def _number(low: float, high: float) -> Any:
    return Annotated[float, Field(ge=low, le=high)]


class _PeriodFile(BaseModel):
    model_config = _FILE_CONFIG

    start: Annotated[date, PlainValidator(_start)] = date(2026, 1, 12)
    days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 7
    daily_mean_temperature_c: _number(-30, 30) | list[_number(-30, 30)] | None = None  # type: ignore[valid-type]
    outdoor_csv: Annotated[str, Field(min_length=1)] | None = None
    timezone: Annotated[str, Field(min_length=1)] = LOCAL_TIMEZONE


class _TransformerFile(BaseModel):
    model_config = _FILE_CONFIG

    capacity_kva: _number(1.0, 10_000.0) = 400.0  # type: ignore[valid-type]
    power_factor: _number(0.5, 1.0) = 0.95  # type: ignore[valid-type]
    non_member_load_w: _number(0.0, 1e7) = 0.0  # type: ignore[valid-type]
    non_member_csv: Annotated[str, Field(min_length=1)] | None = None


class _PricesFile(BaseModel):
    model_config = _FILE_CONFIG

    csv: Annotated[str, Field(min_length=1)] | None = None
    import_markup_eur_per_kwh: _number(0.0, 2.0) = 0.15  # type: ignore[valid-type]
    export_markup_eur_per_kwh: _number(0.0, 2.0) = 0.0  # type: ignore[valid-type]
    supplier_markup_eur_per_kwh: _number(0.0, 1.0) = 0.0  # type: ignore[valid-type]
    energy_tax_eur_per_kwh: _number(0.0, 1.0) = 0.0  # type: ignore[valid-type]
    vat_factor: _number(1.0, 2.0) = 1.0  # type: ignore[valid-type]
    gas_eur_per_kwh: _number(0.0, 2.0) = 0.14  # type: ignore[valid-type]


class _CommunityFile(BaseModel):
    model_config = _FILE_CONFIG

    sharing_rule: Annotated[SharingRule, Field(strict=False)] = SharingRule.EQUAL_SHARE
    # No longer used (heat pumps follow their building's thermal model); still checked so
    # that older files load unchanged.
    heat_shift_hours: Annotated[int, Field(ge=1, le=24)] = 4


class _EvFile(BaseModel):
    model_config = _FILE_CONFIG

    charger_kw: _number(0.0, 50.0) = 11.0  # type: ignore[valid-type]
    energy_kwh: _range(Range(6.0, 24.0), 0.0, 200.0)  # type: ignore[valid-type]
    arrival_h: _number(0.0, 23.75) = 18.0  # type: ignore[valid-type]
    arrival_sd_h: _number(0.0, 6.0) = 1.5  # type: ignore[valid-type]
    departure_h: _number(0.0, 23.75) = 7.0  # type: ignore[valid-type]
    sessions_per_week: _number(0.5, 7.0) = 7.0  # type: ignore[valid-type]
    sessions_csv: Annotated[str, Field(min_length=1)] | None = None


DEFAULT_COMFORT = ComfortSpec(
    day_c=20.0, night_c=19.5, day_from_h=6.5, night_from_h=22.5, below_k=0.5, above_k=1.0
)


class _ComfortFile(BaseModel):
    model_config = _FILE_CONFIG

    day_c: _number(10.0, 26.0) = DEFAULT_COMFORT.day_c  # type: ignore[valid-type]
    night_c: _number(5.0, 26.0) = DEFAULT_COMFORT.night_c  # type: ignore[valid-type]
    day_from_h: _number(0.0, 23.75) = DEFAULT_COMFORT.day_from_h  # type: ignore[valid-type]
    night_from_h: _number(0.0, 23.75) = DEFAULT_COMFORT.night_from_h  # type: ignore[valid-type]
    below_k: _number(0.0, 3.0) = DEFAULT_COMFORT.below_k  # type: ignore[valid-type]
    above_k: _number(0.0, 5.0) = DEFAULT_COMFORT.above_k  # type: ignore[valid-type]


class _HeatPumpFile(BaseModel):
    model_config = _FILE_CONFIG

    kind: Annotated[HeatPumpKind, Field(strict=False)] = HeatPumpKind.HYBRID
    electric_w: _number(100.0, 30_000.0) | None = None  # type: ignore[valid-type]
    cop: _number(1.0, 7.0) = 3.5  # type: ignore[valid-type]
    constant_cop: bool = False
    heat_loss_w_per_k: _range(None, 10.0, 3000.0)  # type: ignore[valid-type]
    building: Annotated[BuildingType, Field(strict=False)] | None = None
    era: Annotated[InsulationEra, Field(strict=False)] = InsulationEra.FROM_1975_TO_1991
    capacitance_kwh_per_k: _number(0.5, 100.0) | None = None  # type: ignore[valid-type]
    control: Annotated[PumpControl, Field(strict=False)] = PumpControl.MODULATING
    min_electric_w: _number(0.0, 30_000.0) = 0.0  # type: ignore[valid-type]
    boiler_kw: _number(1.0, 100.0) | None = None  # type: ignore[valid-type]
    gas_eur_per_m3: _number(0.0, 20.0) | None = None  # type: ignore[valid-type]
    comfort: _ComfortFile = _ComfortFile()


class _BatteryFile(BaseModel):
    model_config = _FILE_CONFIG

    capacity_kwh: _number(0.5, 1000.0) = 10.0  # type: ignore[valid-type]
    power_kw: _number(0.1, 60.0) = 5.0  # type: ignore[valid-type]  # within its connection
    profile_csv: Annotated[str, Field(min_length=1)] | None = None
    profile_column: Annotated[str, Field(min_length=1)] | None = None


class _GroupFile(BaseModel):
    model_config = _FILE_CONFIG

    connection: str = "3x25A"
    count: Annotated[int, Field(ge=1, le=MAX_HOUSEHOLDS)] = 1
    annual_kwh: _range(Range(2000.0, 4500.0), 100.0, 50_000.0)  # type: ignore[valid-type]
    noise: _number(0.0, 1.0) = 0.2  # type: ignore[valid-type]
    # A power in the one set of ranges (units), at most what a simulated roof carries.
    pv_peak_w: Annotated[PowerW, Field(le=50_000.0)] = 0.0
    ev: _EvFile | None = None
    heat_pump: _HeatPumpFile | None = None
    battery: _BatteryFile | None = None
    base_load_csv: Annotated[str, Field(min_length=1)] | None = None
    pv_csv: Annotated[str, Field(min_length=1)] | None = None
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    base_load_column: Annotated[str, Field(min_length=1)] | None = None
    pv_column: Annotated[str, Field(min_length=1)] | None = None
    heat_pump_csv: Annotated[str, Field(min_length=1)] | None = None
    heat_pump_column: Annotated[str, Field(min_length=1)] | None = None


class _NeighbourhoodFile(BaseModel):
    model_config = _FILE_CONFIG

    name: str = "neighbourhood"
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    period: _PeriodFile = _PeriodFile()
    transformer: _TransformerFile = _TransformerFile()
    prices: _PricesFile = _PricesFile()
    community: _CommunityFile = _CommunityFile()
    households: Annotated[list[_GroupFile], Field(min_length=1)]


def _reason(error: ErrorDetails) -> str:
    match error["type"]:
        case "missing":
            return "is required"
        case "extra_forbidden":
            return "unknown field"
        case "enum":
            allowed = str((error.get("ctx") or {}).get("expected", ""))
            return f"one of {allowed.replace(chr(39), '').replace(' or ', ', ')}"
        case "too_short" if error["loc"] == ("households",):
            return "at least one [[households]] group is required"
    if not error["msg"].startswith("Input should be"):
        return error["msg"]  # our own, which names what was given
    reason = error["msg"].replace("Input should be", "must be")
    given = error.get("input")
    return f"{reason}, got {given!r}" if _is_number(given) or isinstance(given, str) else reason


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


# --- what the file means --------------------------------------------------------------


def load_neighbourhood(path: Path) -> Neighbourhood:
    """Read and validate a neighbourhood file; CSV paths are relative to the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise NeighbourhoodError(f"{path}: cannot read: {err.strerror}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise NeighbourhoodError(f"{path}: not valid TOML: {err}") from err
    return parse_neighbourhood(data, path.parent)


def parse_neighbourhood(data: Mapping[str, Any], base: Path) -> Neighbourhood:
    try:
        raw = _NeighbourhoodFile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise NeighbourhoodError(f"{_path(first['loc'])}: {_reason(first)}") from None
    if 24 % raw.community.heat_shift_hours:
        raise NeighbourhoodError("community.heat_shift_hours: must divide 24")
    groups = tuple(
        _group(group, f"households[{index}]", base, raw.prices.gas_eur_per_kwh)
        for index, group in enumerate(raw.households)
    )
    total = sum(group.count for group in groups)
    if total > MAX_HOUSEHOLDS:
        raise NeighbourhoodError(f"households: {total} homes, at most {MAX_HOUSEHOLDS}")
    _check_names(groups)
    try:
        ZoneInfo(raw.period.timezone)
    except ZoneInfoNotFoundError, ValueError:
        raise NeighbourhoodError(
            f"period.timezone: not a known time zone, got {raw.period.timezone!r}"
        ) from None
    if raw.transformer.non_member_csv is not None and raw.transformer.non_member_load_w:
        raise NeighbourhoodError(
            "transformer.non_member_csv: give either non_member_csv or non_member_load_w"
        )
    return Neighbourhood(
        name=raw.name,
        seed=raw.seed,
        start=raw.period.start,
        days=raw.period.days,
        daily_mean_c=_temperatures(raw.period),
        outdoor_csv=_file(raw.period.outdoor_csv, "period.outdoor_csv", base),
        transformer_kva=raw.transformer.capacity_kva,
        power_factor=raw.transformer.power_factor,
        non_member_load_w=raw.transformer.non_member_load_w,
        price_csv=_file(raw.prices.csv, "prices.csv", base),
        import_markup_eur_per_kwh=raw.prices.import_markup_eur_per_kwh,
        export_markup_eur_per_kwh=raw.prices.export_markup_eur_per_kwh,
        gas_eur_per_kwh=raw.prices.gas_eur_per_kwh,
        sharing_rule=raw.community.sharing_rule,
        groups=groups,
        timezone=raw.period.timezone,
        non_member_csv=_file(raw.transformer.non_member_csv, "transformer.non_member_csv", base),
        supplier_markup_eur_per_kwh=raw.prices.supplier_markup_eur_per_kwh,
        energy_tax_eur_per_kwh=raw.prices.energy_tax_eur_per_kwh,
        vat_factor=raw.prices.vat_factor,
    )


def _check_names(groups: tuple[HouseholdGroup, ...]) -> None:
    seen: dict[str, int] = {}
    for index, group in enumerate(groups):
        for name in group.connection_names() or ():
            if name in seen:
                raise NeighbourhoodError(
                    f"households[{index}].name: connection {name!r} is also "
                    f"in households[{seen[name]}]"
                )
            seen[name] = index


def _temperatures(period: _PeriodFile) -> tuple[float, ...]:
    given = period.daily_mean_temperature_c
    if given is not None and period.outdoor_csv is not None:
        raise NeighbourhoodError(
            "period.outdoor_csv: give either outdoor_csv or daily_mean_temperature_c"
        )
    if given is None:
        return tuple(COLD_WEEK_C[i % len(COLD_WEEK_C)] for i in range(period.days))
    if isinstance(given, list):
        if len(given) != period.days:
            raise NeighbourhoodError(
                f"period.daily_mean_temperature_c: one number, or a list of {period.days}"
            )
        return tuple(given)
    return (given,) * period.days


def _file(name: str | None, field: str, base: Path) -> Path | None:
    if name is None:
        return None
    path = (base / name).resolve()
    if not path.is_file():
        raise NeighbourhoodError(f"{field}: no such file: {path}")
    return path


def _group(raw: _GroupFile, path: str, base: Path, gas_eur_per_kwh: float) -> HouseholdGroup:
    if raw.connection not in CONNECTIONS:
        raise NeighbourhoodError(
            f"{path}.connection: one of {', '.join(CONNECTIONS)}, got {raw.connection!r}"
        )
    phases, fuse_a = CONNECTIONS[raw.connection]
    for column, csv in (
        ("base_load_column", raw.base_load_csv),
        ("pv_column", raw.pv_csv),
        ("heat_pump_column", raw.heat_pump_csv),
    ):
        if getattr(raw, column) is not None and csv is None:
            raise NeighbourhoodError(
                f"{path}.{column}: only with {column.replace('column', 'csv')}"
            )
    if raw.heat_pump_csv is not None and raw.heat_pump is not None:
        raise NeighbourhoodError(
            f"{path}.heat_pump_csv: give either heat_pump_csv (measured) or heat_pump (modelled)"
        )
    ev = None
    if raw.ev is not None:
        low, high = EV_CHARGER_KW
        if not low <= raw.ev.charger_kw <= high:
            raise NeighbourhoodError(
                f"{path}.ev.charger_kw: must be within {low}..{high:g}, got {raw.ev.charger_kw}"
            )
        if raw.ev.departure_h == raw.ev.arrival_h:
            raise NeighbourhoodError(f"{path}.ev.departure_h: must differ from arrival_h")
        if raw.ev.sessions_csv is not None and raw.name is None:
            raise NeighbourhoodError(
                f"{path}.ev.sessions_csv: needs the group's name (its rows name connections)"
            )
        if raw.ev.charger_kw * 1000 > connection_power_w(phases, fuse_a):
            raise NeighbourhoodError(
                f"{path}.ev.charger_kw: {raw.ev.charger_kw} kW does not fit a {raw.connection}"
            )
        ev = EvSpec(
            charger_kw=raw.ev.charger_kw,
            energy_kwh=raw.ev.energy_kwh,
            arrival_h=raw.ev.arrival_h,
            arrival_sd_h=raw.ev.arrival_sd_h,
            departure_h=raw.ev.departure_h,
            sessions_per_week=raw.ev.sessions_per_week,
            sessions_csv=_file(raw.ev.sessions_csv, f"{path}.ev.sessions_csv", base),
        )
    heat_pump = None
    if raw.heat_pump is not None:
        heat_pump = _heat_pump(raw.heat_pump, f"{path}.heat_pump", gas_eur_per_kwh)
        if heat_pump.electric_w > connection_power_w(phases, fuse_a):
            raise NeighbourhoodError(
                f"{path}.heat_pump.electric_w: {heat_pump.electric_w:g} W does not fit "
                f"a {raw.connection}"
            )
    battery = None
    if raw.battery is not None:
        if raw.battery.power_kw * 1000 > connection_power_w(phases, fuse_a):
            raise NeighbourhoodError(
                f"{path}.battery.power_kw: {raw.battery.power_kw:g} kW does not fit "
                f"a {raw.connection}"
            )
        if raw.battery.profile_column is not None and raw.battery.profile_csv is None:
            raise NeighbourhoodError(f"{path}.battery.profile_column: only with profile_csv")
        battery = BatterySpec(
            capacity_kwh=raw.battery.capacity_kwh,
            power_kw=raw.battery.power_kw,
            profile_csv=_file(raw.battery.profile_csv, f"{path}.battery.profile_csv", base),
            profile_column=raw.battery.profile_column,
        )
    return HouseholdGroup(
        count=raw.count,
        phases=phases,
        fuse_a=fuse_a,
        annual_kwh=raw.annual_kwh,
        noise=raw.noise,
        pv_peak_w=raw.pv_peak_w,
        ev=ev,
        heat_pump=heat_pump,
        battery=battery,
        base_load_csv=_file(raw.base_load_csv, f"{path}.base_load_csv", base),
        pv_csv=_file(raw.pv_csv, f"{path}.pv_csv", base),
        name=raw.name,
        base_load_column=raw.base_load_column,
        pv_column=raw.pv_column,
        heat_pump_csv=_file(raw.heat_pump_csv, f"{path}.heat_pump_csv", base),
        heat_pump_column=raw.heat_pump_column,
    )


# Without a building type or heat loss: the simulator's historic default range (W/K).
DEFAULT_HEAT_LOSS = Range(250.0, 450.0)
DEFAULT_BOILER_KW = 24.0


def _heat_pump(raw: _HeatPumpFile, path: str, gas_eur_per_kwh: float) -> HeatPumpSpec:
    """The pump and its building: R from the heat loss (or the building type's default
    for its era), C from the building type (or the type whose defaults span the loss)."""
    hybrid = raw.kind is HeatPumpKind.HYBRID
    electric_w = raw.electric_w if raw.electric_w is not None else 450.0 if hybrid else 3000.0
    if raw.min_electric_w > electric_w:
        raise NeighbourhoodError(
            f"{path}.min_electric_w: {raw.min_electric_w} W is above electric_w ({electric_w} W)"
        )
    if raw.control is PumpControl.ON_OFF and raw.min_electric_w > 0:
        raise NeighbourhoodError(f"{path}.min_electric_w: only for a modulating pump")
    if not hybrid and (raw.boiler_kw is not None or raw.gas_eur_per_m3 is not None):
        field = "boiler_kw" if raw.boiler_kw is not None else "gas_eur_per_m3"
        raise NeighbourhoodError(f'{path}.{field}: only for kind = "hybrid"')
    if hybrid and raw.control is PumpControl.ON_OFF:
        raise NeighbourhoodError(f'{path}.control: a hybrid is "modulating" (its electric cap)')
    comfort = raw.comfort
    if comfort.night_c > comfort.day_c:
        raise NeighbourhoodError(
            f"{path}.comfort.night_c: {comfort.night_c} C is above day_c ({comfort.day_c} C)"
        )
    if comfort.day_from_h == comfort.night_from_h:
        raise NeighbourhoodError(f"{path}.comfort.night_from_h: must differ from day_from_h")
    loss = raw.heat_loss_w_per_k
    building = raw.building
    if loss is None:
        if building is None:
            loss = DEFAULT_HEAT_LOSS
        else:
            value = default_parameters(building, raw.era).heat_loss_w_per_k
            loss = Range(value, value)
    if building is None:
        building = building_for(loss.high)
    capacitance = raw.capacitance_kwh_per_k
    if capacitance is None:
        capacitance = default_parameters(building, raw.era).capacitance_kwh_per_k
    return HeatPumpSpec(
        kind=raw.kind,
        electric_w=electric_w,
        cop=raw.cop,
        constant_cop=raw.constant_cop,
        heat_loss_w_per_k=loss,
        capacitance_kwh_per_k=capacitance,
        control=raw.control,
        min_electric_w=raw.min_electric_w,
        boiler_kw=(DEFAULT_BOILER_KW if raw.boiler_kw is None else raw.boiler_kw)
        if hybrid
        else 0.0,
        gas_eur_per_m3=(
            gas_eur_per_kwh * GAS_KWH_PER_M3 if raw.gas_eur_per_m3 is None else raw.gas_eur_per_m3
        ),
        comfort=ComfortSpec(
            day_c=comfort.day_c,
            night_c=comfort.night_c,
            day_from_h=comfort.day_from_h,
            night_from_h=comfort.night_from_h,
            below_k=comfort.below_k,
            above_k=comfort.above_k,
        ),
    )


def building_for(heat_loss_w_per_k: float) -> BuildingType:
    """The smallest building type whose default heat losses (over the eras) reach this
    loss: its heat capacity is the plausible one for such a home."""
    for building in BuildingType:
        if max(default_parameters(building, era).heat_loss_w_per_k for era in InsulationEra) >= (
            heat_loss_w_per_k
        ):
            return building
    return BuildingType.DETACHED
