"""The neighbourhood file (TOML): transformer, period, prices and household groups.

Every field is checked when the file is read; an error names the field, e.g.
`households[2].ev.charger_kw: must be 3.7 or 11`. The format is documented in
docs/simulator.md; `examples/neighbourhoods/` holds working files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from netbewust_core.collective.problem import SharingRule

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

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


class _Table:
    """A TOML table read field by field; every error carries the field's full path."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self._data = data
        self._path = path
        self._used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def fail(self, key: str, why: str) -> NeighbourhoodError:
        return NeighbourhoodError(f"{self._name(key)}: {why}")

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> Any:
        self._used.add(key)
        return self._data.get(key)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"must be within [{low}, {high}], got {value}")
        return float(value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(key, f"must be within [{low}, {high}], got {value}")
        return value

    def text(self, key: str, default: str) -> str:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {value!r}")
        return value

    def range(self, key: str, default: Range, low: float, high: float) -> Range:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, list):
            if len(value) != 2 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            ):
                raise self.fail(key, "a range is two numbers [low, high]")
            lo, hi = float(value[0]), float(value[1])
        elif isinstance(value, int | float) and not isinstance(value, bool):
            lo = hi = float(value)
        else:
            raise self.fail(key, f"must be a number or [low, high], got {value!r}")
        if not low <= lo <= hi <= high:
            raise self.fail(key, f"needs {low} <= low <= high <= {high}, got [{lo}, {hi}]")
        return Range(lo, hi)

    def table(self, key: str) -> _Table | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return _Table(value, self._name(key))

    def file(self, key: str, base: Path) -> Path | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a file name")
        path = (base / value).resolve()
        if not path.is_file():
            raise self.fail(key, f"no such file: {path}")
        return path

    def reject_unknown(self) -> None:
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            raise self.fail(unknown[0], "unknown field")


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
    root = _Table(data, "")
    name = root.text("name", "neighbourhood")
    seed = root.integer("seed", 0, 0, 2**32 - 1)
    start, days, temperatures = _period(root.table("period") or _Table({}, "period"))
    transformer = root.table("transformer") or _Table({}, "transformer")
    kva = transformer.number("capacity_kva", 400.0, 1.0, 10_000.0)
    power_factor = transformer.number("power_factor", 0.95, 0.5, 1.0)
    non_member = transformer.number("non_member_load_w", 0.0, 0.0, 1e7)
    transformer.reject_unknown()
    prices = root.table("prices") or _Table({}, "prices")
    price_csv = prices.file("csv", base)
    import_markup = prices.number("import_markup_eur_per_kwh", 0.15, 0.0, 2.0)
    export_markup = prices.number("export_markup_eur_per_kwh", 0.0, 0.0, 2.0)
    gas = prices.number("gas_eur_per_kwh", 0.14, 0.0, 2.0)
    prices.reject_unknown()
    community = root.table("community") or _Table({}, "community")
    rule_text = community.text("sharing_rule", SharingRule.EQUAL_SHARE.value)
    try:
        rule = SharingRule(rule_text)
    except ValueError:
        options = ", ".join(rule.value for rule in SharingRule)
        raise community.fail("sharing_rule", f"one of {options}") from None
    shift = community.integer("heat_shift_hours", 4, 1, 24)
    if 24 % shift:
        raise community.fail("heat_shift_hours", "must divide 24")
    community.reject_unknown()
    groups_raw = root.raw("households")
    if not isinstance(groups_raw, list) or not groups_raw:
        raise NeighbourhoodError("households: at least one [[households]] group is required")
    groups = []
    for index, raw in enumerate(groups_raw):
        if not isinstance(raw, dict):
            raise NeighbourhoodError(f"households[{index}]: must be a table")
        groups.append(_group(_Table(raw, f"households[{index}]"), base))
    root.reject_unknown()
    total = sum(group.count for group in groups)
    if total > MAX_HOUSEHOLDS:
        raise NeighbourhoodError(f"households: {total} homes, at most {MAX_HOUSEHOLDS}")
    return Neighbourhood(
        name=name,
        seed=seed,
        start=start,
        days=days,
        daily_mean_c=temperatures,
        transformer_kva=kva,
        power_factor=power_factor,
        non_member_load_w=non_member,
        price_csv=price_csv,
        import_markup_eur_per_kwh=import_markup,
        export_markup_eur_per_kwh=export_markup,
        gas_eur_per_kwh=gas,
        sharing_rule=rule,
        heat_shift_hours=shift,
        groups=tuple(groups),
    )


def _period(table: _Table) -> tuple[date, int, tuple[float, ...]]:
    raw_start = table.raw("start")
    if raw_start is None:
        start = date(2026, 1, 12)
    elif isinstance(raw_start, date):
        start = raw_start
    else:
        try:
            start = date.fromisoformat(str(raw_start))
        except ValueError:
            raise table.fail("start", f"a date like 2026-01-12, got {raw_start!r}") from None
    days = table.integer("days", 7, 1, MAX_DAYS)
    raw_temperatures = table.raw("daily_mean_temperature_c")
    if raw_temperatures is None:
        temperatures = tuple(COLD_WEEK_C[i % len(COLD_WEEK_C)] for i in range(days))
    elif isinstance(raw_temperatures, int | float) and not isinstance(raw_temperatures, bool):
        temperatures = (float(raw_temperatures),) * days
    elif isinstance(raw_temperatures, list) and len(raw_temperatures) == days:
        if not all(
            isinstance(t, int | float) and not isinstance(t, bool) and -30 <= t <= 30
            for t in raw_temperatures
        ):
            raise table.fail("daily_mean_temperature_c", "values must be numbers in [-30, 30]")
        temperatures = tuple(float(t) for t in raw_temperatures)
    else:
        raise table.fail("daily_mean_temperature_c", f"one number, or a list of {days}")
    table.reject_unknown()
    return start, days, temperatures


def _group(table: _Table, base: Path) -> HouseholdGroup:
    connection = table.text("connection", "3x25A")
    if connection not in CONNECTIONS:
        raise table.fail("connection", f"one of {', '.join(CONNECTIONS)}, got {connection!r}")
    phases, fuse_a = CONNECTIONS[connection]
    ev = _ev(table.table("ev"))
    heat_pump = _heat_pump(table.table("heat_pump"))
    battery_table = table.table("battery")
    battery = None
    if battery_table is not None:
        battery = BatterySpec(
            capacity_kwh=battery_table.number("capacity_kwh", 10.0, 0.5, 100.0),
            power_kw=battery_table.number("power_kw", 5.0, 0.1, 30.0),
        )
        battery_table.reject_unknown()
    if ev is not None and ev.charger_kw * 1000 > phases * fuse_a * 230:
        raise table.fail("ev.charger_kw", f"{ev.charger_kw} kW does not fit a {connection}")
    group = HouseholdGroup(
        count=table.integer("count", 1, 1, MAX_HOUSEHOLDS),
        phases=phases,
        fuse_a=fuse_a,
        annual_kwh=table.range("annual_kwh", Range(2000.0, 4500.0), 100.0, 50_000.0),
        noise=table.number("noise", 0.2, 0.0, 1.0),
        pv_peak_w=table.number("pv_peak_w", 0.0, 0.0, 50_000.0),
        ev=ev,
        heat_pump=heat_pump,
        battery=battery,
        base_load_csv=table.file("base_load_csv", base),
        pv_csv=table.file("pv_csv", base),
    )
    table.reject_unknown()
    return group


def _ev(table: _Table | None) -> EvSpec | None:
    if table is None:
        return None
    charger_kw = table.number("charger_kw", 11.0, 0.0, 50.0)
    if charger_kw not in EV_CHARGER_KW:
        raise table.fail("charger_kw", f"must be 3.7 or 11, got {charger_kw}")
    spec = EvSpec(
        charger_kw=charger_kw,
        energy_kwh=table.range("energy_kwh", Range(6.0, 24.0), 0.0, 100.0),
        arrival_h=table.number("arrival_h", 18.0, 12.0, 23.5),
        arrival_sd_h=table.number("arrival_sd_h", 1.5, 0.0, 6.0),
        departure_h=table.number("departure_h", 7.0, 0.0, 11.75),
    )
    table.reject_unknown()
    return spec


def _heat_pump(table: _Table | None) -> HeatPumpSpec | None:
    if table is None:
        return None
    kind_text = table.text("kind", HeatPumpKind.HYBRID.value)
    try:
        kind = HeatPumpKind(kind_text)
    except ValueError:
        raise table.fail("kind", f"hybrid or full, got {kind_text!r}") from None
    default_w = 450.0 if kind is HeatPumpKind.HYBRID else 3000.0
    spec = HeatPumpSpec(
        kind=kind,
        electric_w=table.number("electric_w", default_w, 100.0, 15_000.0),
        cop=table.number("cop", 3.5, 1.0, 7.0),
        heat_loss_w_per_k=table.range("heat_loss_w_per_k", Range(250.0, 450.0), 10.0, 3000.0),
    )
    table.reject_unknown()
    return spec
