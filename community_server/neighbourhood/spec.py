"""The neighbourhood file (TOML): transformer, period, prices and household groups.

Every field is checked when the file is read (pydantic, strict); an error names the
field, e.g.
`households[2].ev.charger_kw: must be 3.7 or 11`. The format is documented in
docs/simulator.md; `examples/neighbourhoods/` holds working files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from netbewust_core.collective.problem import SharingRule
from netbewust_core.units import PowerW, connection_power_w

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from pydantic_core import ErrorDetails

EV_CHARGER_KW = (3.7, 11.0)
CONNECTIONS = {"1x25A": (1, 25.0), "1x35A": (1, 35.0), "1x40A": (1, 40.0), "3x25A": (3, 25.0)}
COLD_WEEK_C = (-2.0, -4.0, -6.0, -5.0, -3.0, -1.0, 1.0)
MAX_DAYS = 31
MAX_HOUSEHOLDS = 5000


class NeighbourhoodError(ValueError):
    """A neighbourhood file that does not validate; the message names the field."""


class HeatPumpKind(StrEnum):
    HYBRID = "hybrid"  # small electric part, a gas boiler delivers the rest
    FULL = "full"  # all heat is electric; what it cannot deliver is a comfort loss


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
    departure_h: float  # local, next morning


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatPumpSpec:
    kind: HeatPumpKind
    electric_w: float
    cop: float
    heat_loss_w_per_k: Range  # heat the building loses per K below 18 C


@dataclass(frozen=True, slots=True, kw_only=True)
class BatterySpec:
    capacity_kwh: float
    power_kw: float


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
    base_load_csv: Path | None  # columns of W; household i takes column i mod n
    pv_csv: Path | None  # columns of W per kW peak


@dataclass(frozen=True, slots=True, kw_only=True)
class Neighbourhood:
    name: str
    seed: int
    start: date  # local date; each simulated day runs from local noon to noon
    days: int
    daily_mean_c: tuple[float, ...]  # one per day
    transformer_kva: float
    power_factor: float
    non_member_load_w: float
    price_csv: Path | None
    import_markup_eur_per_kwh: float  # taxes, supplier fee and VAT on top of day-ahead
    export_markup_eur_per_kwh: float  # subtracted from day-ahead for export
    gas_eur_per_kwh: float
    sharing_rule: SharingRule
    heat_shift_hours: int  # a planned heat pump may move heat within blocks this long
    groups: tuple[HouseholdGroup, ...]

    @property
    def households(self) -> int:
        return sum(group.count for group in self.groups)

    @property
    def transformer_cap_w(self) -> float:
        return self.transformer_kva * 1000 * self.power_factor


# --- the file format, validated by pydantic ------------------------------------------

_FILE_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)


def _range(default: Range, low: float, high: float) -> Any:
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

    return Annotated[Range, PlainValidator(parse), Field(default=default)]


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


class _TransformerFile(BaseModel):
    model_config = _FILE_CONFIG

    capacity_kva: _number(1.0, 10_000.0) = 400.0  # type: ignore[valid-type]
    power_factor: _number(0.5, 1.0) = 0.95  # type: ignore[valid-type]
    non_member_load_w: _number(0.0, 1e7) = 0.0  # type: ignore[valid-type]


class _PricesFile(BaseModel):
    model_config = _FILE_CONFIG

    csv: Annotated[str, Field(min_length=1)] | None = None
    import_markup_eur_per_kwh: _number(0.0, 2.0) = 0.15  # type: ignore[valid-type]
    export_markup_eur_per_kwh: _number(0.0, 2.0) = 0.0  # type: ignore[valid-type]
    gas_eur_per_kwh: _number(0.0, 2.0) = 0.14  # type: ignore[valid-type]


class _CommunityFile(BaseModel):
    model_config = _FILE_CONFIG

    sharing_rule: Annotated[SharingRule, Field(strict=False)] = SharingRule.EQUAL_SHARE
    heat_shift_hours: Annotated[int, Field(ge=1, le=24)] = 4


class _EvFile(BaseModel):
    model_config = _FILE_CONFIG

    charger_kw: _number(0.0, 50.0) = 11.0  # type: ignore[valid-type]
    energy_kwh: _range(Range(6.0, 24.0), 0.0, 100.0)  # type: ignore[valid-type]
    arrival_h: _number(12.0, 23.5) = 18.0  # type: ignore[valid-type]
    arrival_sd_h: _number(0.0, 6.0) = 1.5  # type: ignore[valid-type]
    departure_h: _number(0.0, 11.75) = 7.0  # type: ignore[valid-type]


class _HeatPumpFile(BaseModel):
    model_config = _FILE_CONFIG

    kind: Annotated[HeatPumpKind, Field(strict=False)] = HeatPumpKind.HYBRID
    electric_w: _number(100.0, 15_000.0) | None = None  # type: ignore[valid-type]
    cop: _number(1.0, 7.0) = 3.5  # type: ignore[valid-type]
    heat_loss_w_per_k: _range(Range(250.0, 450.0), 10.0, 3000.0)  # type: ignore[valid-type]


class _BatteryFile(BaseModel):
    model_config = _FILE_CONFIG

    capacity_kwh: _number(0.5, 100.0) = 10.0  # type: ignore[valid-type]
    power_kw: _number(0.1, 30.0) = 5.0  # type: ignore[valid-type]


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
        _group(group, f"households[{index}]", base) for index, group in enumerate(raw.households)
    )
    total = sum(group.count for group in groups)
    if total > MAX_HOUSEHOLDS:
        raise NeighbourhoodError(f"households: {total} homes, at most {MAX_HOUSEHOLDS}")
    return Neighbourhood(
        name=raw.name,
        seed=raw.seed,
        start=raw.period.start,
        days=raw.period.days,
        daily_mean_c=_temperatures(raw.period),
        transformer_kva=raw.transformer.capacity_kva,
        power_factor=raw.transformer.power_factor,
        non_member_load_w=raw.transformer.non_member_load_w,
        price_csv=_file(raw.prices.csv, "prices.csv", base),
        import_markup_eur_per_kwh=raw.prices.import_markup_eur_per_kwh,
        export_markup_eur_per_kwh=raw.prices.export_markup_eur_per_kwh,
        gas_eur_per_kwh=raw.prices.gas_eur_per_kwh,
        sharing_rule=raw.community.sharing_rule,
        heat_shift_hours=raw.community.heat_shift_hours,
        groups=groups,
    )


def _temperatures(period: _PeriodFile) -> tuple[float, ...]:
    given = period.daily_mean_temperature_c
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


def _group(raw: _GroupFile, path: str, base: Path) -> HouseholdGroup:
    if raw.connection not in CONNECTIONS:
        raise NeighbourhoodError(
            f"{path}.connection: one of {', '.join(CONNECTIONS)}, got {raw.connection!r}"
        )
    phases, fuse_a = CONNECTIONS[raw.connection]
    ev = None
    if raw.ev is not None:
        if raw.ev.charger_kw not in EV_CHARGER_KW:
            raise NeighbourhoodError(
                f"{path}.ev.charger_kw: must be 3.7 or 11, got {raw.ev.charger_kw}"
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
        )
    heat_pump = None
    if raw.heat_pump is not None:
        kind = raw.heat_pump.kind
        default_w = 450.0 if kind is HeatPumpKind.HYBRID else 3000.0
        heat_pump = HeatPumpSpec(
            kind=kind,
            electric_w=default_w if raw.heat_pump.electric_w is None else raw.heat_pump.electric_w,
            cop=raw.heat_pump.cop,
            heat_loss_w_per_k=raw.heat_pump.heat_loss_w_per_k,
        )
    battery = None
    if raw.battery is not None:
        battery = BatterySpec(capacity_kwh=raw.battery.capacity_kwh, power_kw=raw.battery.power_kw)
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
    )
