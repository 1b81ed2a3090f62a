"""A neighbourhood file turned into seeded arrays: homes x 15-minute steps.

The profile models are those of `community_server.simulation.profiles` (BDEW H0 base
load, clear-sky PV, degree-hour heat demand), evaluated for every step at once. The
planners see the profile (the forecast); the real base load scatters around it with
each home's `noise` (drawn per minute in `realtime`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

import numpy as np

from community_server.simulation.profiles import (
    H0_WINTER_WORKDAY_W,
    HEATING_LIMIT_C,
    LOCAL_OFFSET,
    h0_dynamisation,
    pv_clear_sky_w,
)
from netbewust_core.units import NOMINAL_VOLTAGE_V, connection_power_w

from .csv_series import read_columns, read_prices

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from .spec import EvSpec, HeatPumpKind, HouseholdGroup, Neighbourhood, Range

    FloatArray = NDArray[np.float64]

STEPS_PER_DAY = 96
STEP_H = 0.25
DAY_START_LOCAL = time(12)  # days run noon to noon, so a night's EV session is one day
MIN_CHARGE_A = 6.0
# Winter day-ahead shape (EUR/kWh per local hour, 00:00 first): cheap nights, morning
# and evening peaks, a midday dip; scaled per day and jittered per quarter.
WINTER_DAY_AHEAD = (
    0.085, 0.080, 0.078, 0.077, 0.080, 0.090, 0.115, 0.150, 0.160, 0.145, 0.125, 0.115,
    0.110, 0.110, 0.115, 0.125, 0.150, 0.190, 0.205, 0.185, 0.160, 0.135, 0.115, 0.095,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class EvSession:
    home: int
    start_step: int  # plugged in (inclusive), absolute step
    end_step: int  # departure (exclusive)
    energy_wh: float  # needed by departure


@dataclass(frozen=True, slots=True, kw_only=True)
class Homes:
    """Per-home values (shape H) and series (shape H x T)."""

    ids: tuple[str, ...]
    phases: NDArray[np.int64]
    limit_w: FloatArray  # what the fuses carry, all phases together
    noise: FloatArray
    base_forecast_w: FloatArray
    pv_w: FloatArray
    ev_max_w: FloatArray  # 0: no EV
    ev_min_w: FloatArray  # 6 A on the charger's phases
    ev_phases: NDArray[np.int64]
    sessions: tuple[EvSession, ...]
    hp_kind: tuple[HeatPumpKind | None, ...]
    hp_electric_w: FloatArray  # 0: no heat pump
    hp_cop: FloatArray
    heat_demand_w: FloatArray  # thermal; zero without a heat pump
    battery_wh: FloatArray  # 0: no battery
    battery_w: FloatArray

    @property
    def count(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    seed: int
    start: datetime  # UTC, local noon of the first day
    days: int
    import_price: FloatArray  # EUR/kWh per step
    export_price: FloatArray
    cap_w: float
    non_member_w: float
    gas_eur_per_kwh: float
    heat_block_steps: int
    homes: Homes
    spec: Neighbourhood

    @property
    def n_steps(self) -> int:
        return self.days * STEPS_PER_DAY

    def step_start(self, step: int) -> datetime:
        return self.start + timedelta(minutes=15 * step)


def build_scenario(spec: Neighbourhood, seed: int | None = None) -> Scenario:
    """Everything the strategies need, the same for every strategy given the seed."""
    seed = spec.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    start = datetime.combine(spec.start, DAY_START_LOCAL, tzinfo=UTC) - LOCAL_OFFSET
    n_steps = spec.days * STEPS_PER_DAY
    local_h = local_hours(n_steps)
    day_ahead = _day_ahead(spec, start, n_steps, local_h, rng)
    homes = _homes(spec, start, n_steps, local_h, rng)
    return Scenario(
        name=spec.name,
        seed=seed,
        start=start,
        days=spec.days,
        import_price=day_ahead + spec.import_markup_eur_per_kwh,
        export_price=day_ahead - spec.export_markup_eur_per_kwh,
        cap_w=spec.transformer_cap_w,
        non_member_w=spec.non_member_load_w,
        gas_eur_per_kwh=spec.gas_eur_per_kwh,
        heat_block_steps=spec.heat_shift_hours * 4,
        homes=homes,
        spec=spec,
    )


def _day_ahead(
    spec: Neighbourhood,
    start: datetime,
    n_steps: int,
    local_h: FloatArray,
    rng: np.random.Generator,
) -> FloatArray:
    if spec.price_csv is not None:
        return read_prices(spec.price_csv, start, n_steps)
    shape = np.asarray(WINTER_DAY_AHEAD)[local_h.astype(int)]
    day_factor = np.repeat(rng.normal(1.0, 0.12, spec.days).clip(0.6, 1.5), STEPS_PER_DAY)
    prices: FloatArray = shape * day_factor + rng.normal(0.0, 0.004, n_steps)
    return prices


def heating_degrees(spec: Neighbourhood, local_h: FloatArray) -> FloatArray:
    """K below 18 C per step: each day's mean with a 4 K cycle, coldest at 05:00."""
    day = np.arange(local_h.size) // STEPS_PER_DAY
    outdoor_c = np.asarray(spec.daily_mean_c)[day] - 4.0 * np.cos(2 * np.pi * (local_h - 5) / 24)
    degrees: FloatArray = np.clip(HEATING_LIMIT_C - outdoor_c, 0.0, None)
    return degrees


def local_hours(n_steps: int) -> FloatArray:
    """Local clock time at the middle of each step."""
    hours: FloatArray = np.asarray(
        (DAY_START_LOCAL.hour + STEP_H * (np.arange(n_steps) + 0.5)) % 24, dtype=np.float64
    )
    return hours


def _draw(rng: np.random.Generator, value: Range, size: int) -> FloatArray:
    return rng.uniform(value.low, value.high, size)


def _homes(
    spec: Neighbourhood,
    start: datetime,
    n_steps: int,
    local_h: FloatArray,
    rng: np.random.Generator,
) -> Homes:
    moments = [start + timedelta(minutes=15 * k + 7.5) for k in range(n_steps)]
    pv_per_w = np.array([pv_clear_sky_w(moment, 1.0) for moment in moments])
    degrees = heating_degrees(spec, local_h)
    shape = np.asarray((*H0_WINTER_WORKDAY_W, H0_WINTER_WORKDAY_W[0]))
    h0 = np.interp(local_h, np.arange(25), shape)
    season = np.array(
        [h0_dynamisation(m.timetuple().tm_yday) / h0_dynamisation(15) for m in moments]
    )
    rows: dict[str, list[FloatArray]] = {"base": [], "pv": [], "heat": []}
    scalars: dict[str, list[float]] = {
        key: []
        for key in ("phases", "limit", "noise", "ev_max", "ev_min", "ev_phases", "hp_w", "cop")
    }
    scalars |= {"bat_wh": [], "bat_w": []}
    kinds: list[HeatPumpKind | None] = []
    sessions: list[EvSession] = []
    for group in spec.groups:
        annual = _draw(rng, group.annual_kwh, group.count)
        losses = (
            _draw(rng, group.heat_pump.heat_loss_w_per_k, group.count)
            if group.heat_pump
            else np.zeros(group.count)
        )
        base_columns = _columns(group.base_load_csv, start, n_steps)
        pv_columns = _columns(group.pv_csv, start, n_steps)
        for member in range(group.count):
            home = len(kinds)
            if base_columns is None:
                rows["base"].append(h0 * season * annual[member] / 1000)
            else:
                rows["base"].append(base_columns[home % base_columns.shape[0]])
            per_w = (
                pv_per_w if pv_columns is None else pv_columns[home % pv_columns.shape[0]] / 1000
            )
            rows["pv"].append(per_w * group.pv_peak_w)
            rows["heat"].append(degrees * losses[member])
            _append_scalars(scalars, group)
            kinds.append(group.heat_pump.kind if group.heat_pump else None)
            if group.ev is not None:
                sessions.extend(ev_sessions(group.ev, home, spec.days, rng))
    return Homes(
        ids=tuple(f"home-{i:04d}" for i in range(len(kinds))),
        phases=np.asarray(scalars["phases"], dtype=np.int64),
        limit_w=np.asarray(scalars["limit"]),
        noise=np.asarray(scalars["noise"]),
        base_forecast_w=np.vstack(rows["base"]),
        pv_w=np.vstack(rows["pv"]),
        ev_max_w=np.asarray(scalars["ev_max"]),
        ev_min_w=np.asarray(scalars["ev_min"]),
        ev_phases=np.asarray(scalars["ev_phases"], dtype=np.int64),
        sessions=tuple(sessions),
        hp_kind=tuple(kinds),
        hp_electric_w=np.asarray(scalars["hp_w"]),
        hp_cop=np.asarray(scalars["cop"]),
        heat_demand_w=np.vstack(rows["heat"]),
        battery_wh=np.asarray(scalars["bat_wh"]),
        battery_w=np.asarray(scalars["bat_w"]),
    )


def _columns(path: Path | None, start: datetime, n_steps: int) -> FloatArray | None:
    return None if path is None else read_columns(path, start, n_steps)


def _append_scalars(scalars: dict[str, list[float]], group: HouseholdGroup) -> None:
    scalars["phases"].append(group.phases)
    scalars["limit"].append(connection_power_w(group.phases, group.fuse_a))
    scalars["noise"].append(group.noise)
    ev_phases = 3 if group.ev is not None and group.ev.charger_kw > 4 else 1
    scalars["ev_phases"].append(ev_phases)
    scalars["ev_max"].append(group.ev.charger_kw * 1000 if group.ev else 0.0)
    scalars["ev_min"].append(MIN_CHARGE_A * NOMINAL_VOLTAGE_V * ev_phases if group.ev else 0.0)
    scalars["hp_w"].append(group.heat_pump.electric_w if group.heat_pump else 0.0)
    scalars["cop"].append(group.heat_pump.cop if group.heat_pump else 1.0)
    scalars["bat_wh"].append(group.battery.capacity_kwh * 1000 if group.battery else 0.0)
    scalars["bat_w"].append(group.battery.power_kw * 1000 if group.battery else 0.0)


def ev_sessions(ev: EvSpec, home: int, days: int, rng: np.random.Generator) -> list[EvSession]:
    """One session a night: seeded arrival, departure next morning, energy drawn."""
    sessions = []
    for day in range(days):
        arrival_h = float(np.clip(rng.normal(ev.arrival_h, ev.arrival_sd_h), 12.25, 23.75))
        start = day * STEPS_PER_DAY + int(np.ceil((arrival_h - DAY_START_LOCAL.hour) * 4))
        end = day * STEPS_PER_DAY + int((24 - DAY_START_LOCAL.hour + ev.departure_h) * 4)
        # Never more than the charger can deliver in the window: that is the driver's plan.
        room_wh = ev.charger_kw * 1000 * (end - start) * STEP_H * 0.9
        energy = min(float(rng.uniform(ev.energy_kwh.low, ev.energy_kwh.high)) * 1000, room_wh)
        sessions.append(EvSession(home, start, end, energy))
    return sessions
