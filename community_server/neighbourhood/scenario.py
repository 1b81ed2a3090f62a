"""A neighbourhood file turned into seeded arrays: homes x 15-minute steps.

The profile models are those of `community_server.simulation.profiles` (BDEW H0 base
load, clear-sky PV), evaluated for every step at once. The planners see the profile
(the forecast); the real base load scatters around it with each home's `noise` (drawn
per minute in `realtime`). A home with a heat pump gets the engine's thermal model
(`netbewust_core.thermal`): its building's R and C, the pump's COP over the outdoor
temperature, a hybrid's boiler and the comfort band of its thermostat; its heat need is
what its own thermostat delivers (`thermal.thermostat_run`) to keep that band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from community_server.simulation.profiles import (
    H0_WINTER_WORKDAY_W,
    h0_dynamisation,
    pv_clear_sky_w,
)
from netbewust_core.model import MIN_CHARGE_CURRENT_A
from netbewust_core.thermal import (
    ComfortBand,
    CopModel,
    GasBoiler,
    ThermalParameters,
    comfort_band,
    degree_hours_below,
    thermostat_run,
)
from netbewust_core.thermal.building import ComfortPeriod
from netbewust_core.timegrid import HOURS_PER_QUARTER, QUARTER, QUARTERS_PER_DAY
from netbewust_core.units import NOMINAL_VOLTAGE_V, connection_power_w

from .csv_series import (
    Columns,
    SessionRow,
    non_negative,
    read_columns,
    read_non_member,
    read_prices,
    read_sessions,
    read_temperatures,
)
from .spec import LOCAL_TIMEZONE, HeatPumpKind, NeighbourhoodError, PumpControl

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from numpy.typing import NDArray

    from .spec import EvSpec, HeatPumpSpec, HouseholdGroup, Neighbourhood, Range

    FloatArray = NDArray[np.float64]

# The simulator steps on the engine's quarter-hour grid.
STEPS_PER_DAY = QUARTERS_PER_DAY
STEP_H = HOURS_PER_QUARTER
DAY_START_LOCAL = time(12)  # the period starts at local noon, so a night's session is one day
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
    max_w: float | None = None  # this car's charging power; None: the charger's


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpModel:
    """One home's heat pump and building as the engine models them."""

    thermal: ThermalParameters
    cop: CopModel
    control: PumpControl
    max_power_w: float
    min_power_w: float
    boiler: GasBoiler | None
    comfort: ComfortBand  # the whole period


@dataclass(frozen=True, slots=True, kw_only=True)
class Buildings:
    """The thermal side of every home: per home (H), per step (T) or both (H x T).

    Homes without a heat pump have no model (None); their band is -inf so they never
    count as cold, and their indoor temperature is not simulated.
    """

    models: tuple[PumpModel | None, ...]
    outdoor_c: FloatArray  # T
    cop: FloatArray  # H x T
    lower_c: FloatArray  # H x T, the comfort band's bottom
    setpoint_c: FloatArray  # H x T
    resistance_k_per_kw: FloatArray
    capacitance_kwh_per_k: FloatArray
    gain_kw: FloatArray
    boiler_max_kw: FloatArray
    boiler_heat_eur_per_kwh: FloatArray  # gas per kWh of heat (0: no boiler)
    initial_c: FloatArray
    thermostat_kh: FloatArray  # kelvin-hours below the band under the pump's own thermostat

    def decay(self, hours: float) -> FloatArray:
        """Per home, the share of the indoor temperature kept over `hours` (1R1C)."""
        decay: FloatArray = np.exp(-hours / (self.resistance_k_per_kw * self.capacitance_kwh_per_k))
        return decay


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
    hp_cop: FloatArray  # rated (A7/W35)
    # Heat (W) the home's own thermostat delivers per step (pump and boiler): its need.
    heat_demand_w: FloatArray
    battery_wh: FloatArray  # 0: no battery
    battery_w: FloatArray
    # A battery's own schedule (W, + charge) where its file gives one, NaN elsewhere
    # (self-consumption); None: no home has one.
    battery_profile_w: FloatArray | None = None
    buildings: Buildings | None = None  # None: no home has a heat pump
    names: tuple[str, ...] = ()  # the connections' names from the file (else the ids)

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
    non_member_w: FloatArray  # per step
    gas_eur_per_kwh: float
    homes: Homes
    spec: Neighbourhood

    @property
    def n_steps(self) -> int:
        return self.days * STEPS_PER_DAY

    def step_start(self, step: int) -> datetime:
        return self.start + QUARTER * step


def build_scenario(spec: Neighbourhood, seed: int | None = None) -> Scenario:
    """Everything the strategies need, the same for every strategy given the seed."""
    seed = spec.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    start = period_start(spec)
    n_steps = spec.days * STEPS_PER_DAY
    local_h = local_hours(start, n_steps, spec.timezone)
    day_ahead = _day_ahead(spec, start, n_steps, local_h, rng)
    homes = _homes(spec, start, n_steps, local_h, rng)
    non_member = (
        np.full(n_steps, spec.non_member_load_w)
        if spec.non_member_csv is None
        else read_non_member(spec.non_member_csv, start, n_steps)
    )
    # A Dutch contract: VAT over day-ahead, supplier markup and energy tax together.
    supplied = day_ahead + spec.supplier_markup_eur_per_kwh + spec.energy_tax_eur_per_kwh
    return Scenario(
        name=spec.name,
        seed=seed,
        start=start,
        days=spec.days,
        import_price=supplied * spec.vat_factor + spec.import_markup_eur_per_kwh,
        export_price=day_ahead - spec.export_markup_eur_per_kwh,
        cap_w=spec.transformer_cap_w,
        non_member_w=non_member,
        gas_eur_per_kwh=spec.gas_eur_per_kwh,
        homes=homes,
        spec=spec,
    )


def period_start(spec: Neighbourhood) -> datetime:
    """The period's first instant (UTC): local noon of its first day."""
    local = datetime.combine(spec.start, DAY_START_LOCAL, tzinfo=ZoneInfo(spec.timezone))
    return local.astimezone(UTC)


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


def outdoor_temperature(spec: Neighbourhood, start: datetime, n_steps: int) -> FloatArray:
    """degC per step: the CSV's, or each day's mean with a 4 K daily cycle, coldest at
    05:00 local (a winter day's typical amplitude in De Bilt)."""
    if spec.outdoor_csv is not None:
        return read_temperatures(spec.outdoor_csv, start, n_steps)
    local_h = local_hours(start, n_steps, spec.timezone)
    day = np.arange(n_steps) // STEPS_PER_DAY
    outdoor: FloatArray = np.asarray(spec.daily_mean_c)[day] - 4.0 * np.cos(
        2 * np.pi * (local_h - 5) / 24
    )
    return outdoor


def pump_model(heat_pump: HeatPumpSpec, heat_loss_w_per_k: float, band: ComfortBand) -> PumpModel:
    """The engine's model of one pump and its building."""
    cop = (
        CopModel(constant=heat_pump.cop)
        if heat_pump.constant_cop
        else CopModel.rated(heat_pump.cop)
    )
    boiler = None
    if heat_pump.kind is HeatPumpKind.HYBRID:
        boiler = GasBoiler(
            max_heat_w=heat_pump.boiler_kw * 1000, gas_price_eur_per_m3=heat_pump.gas_eur_per_m3
        )
    return PumpModel(
        thermal=ThermalParameters(
            resistance_k_per_kw=1000.0 / heat_loss_w_per_k,
            capacitance_kwh_per_k=heat_pump.capacitance_kwh_per_k,
        ),
        cop=cop,
        control=heat_pump.control,
        max_power_w=heat_pump.electric_w,
        min_power_w=heat_pump.min_electric_w,
        boiler=boiler,
        comfort=band,
    )


def comfort_of(
    heat_pump: HeatPumpSpec, start: datetime, n_steps: int, timezone: str = LOCAL_TIMEZONE
) -> ComfortBand:
    """The thermostat's day set point and night set-back as the engine's band, on the
    local clock (daylight saving included); at night the band reaches up to the day set
    point (pre-heating for the morning)."""
    comfort = heat_pump.comfort
    night_above = max(comfort.day_c - comfort.night_c, comfort.above_k)
    periods = (
        ComfortPeriod(_clock(comfort.day_from_h), comfort.day_c, comfort.below_k, comfort.above_k),
        ComfortPeriod(_clock(comfort.night_from_h), comfort.night_c, comfort.below_k, night_above),
    )
    return comfort_band(start, n_steps, periods=periods, local_tz=ZoneInfo(timezone))


def _clock(hours: float) -> time:
    minutes = round(hours * 60)
    return time(minutes // 60, minutes % 60)


def buildings(
    models: list[PumpModel | None], outdoor_c: FloatArray, n_steps: int
) -> tuple[Buildings, FloatArray]:
    """The models as arrays, and each home's heat need (W per step): what its own
    thermostat delivers, pump and boiler (`thermal.thermostat_run`, the engine's)."""
    h = len(models)
    cop = np.ones((h, n_steps))
    lower = np.full((h, n_steps), -np.inf)
    setpoint = np.full((h, n_steps), -np.inf)
    need = np.zeros((h, n_steps))
    thermostat_kh = np.zeros(h)
    scalars = np.zeros((6, h))
    scalars[:2] = 1.0  # R and C of homes without a pump: any positive value, never used
    for home, model in enumerate(models):
        if model is None:
            continue
        cop[home] = [model.cop.cop(t) for t in outdoor_c]
        lower[home] = model.comfort.lower_c
        setpoint[home] = model.comfort.setpoint_c
        boiler_kw = 0.0 if model.boiler is None else model.boiler.max_heat_w / 1000
        scalars[:, home] = (
            model.thermal.resistance_k_per_kw,
            model.thermal.capacitance_kwh_per_k,
            model.thermal.internal_gain_kw,
            boiler_kw,
            0.0 if model.boiler is None else model.boiler.heat_price_eur_per_kwh,
            setpoint[home, 0],
        )
        run = thermostat_run(
            model.thermal,
            STEP_H,
            setpoint[home, 0],
            outdoor_c=outdoor_c,
            setpoint_c=setpoint[home],
            cop=cop[home],
            electric_max_kw=np.full(n_steps, model.max_power_w / 1000),
            boiler_max_kw=boiler_kw,
        )
        need[home] = (run.pump_heat_kw + run.boiler_heat_kw) * 1000
        thermostat_kh[home] = degree_hours_below(run.indoor_c, lower[home], STEP_H)
    resistance, capacitance, gain, boiler_max, boiler_price, initial = scalars
    return Buildings(
        models=tuple(models),
        outdoor_c=outdoor_c,
        cop=cop,
        lower_c=lower,
        setpoint_c=setpoint,
        resistance_k_per_kw=resistance,
        capacitance_kwh_per_k=capacitance,
        gain_kw=gain,
        boiler_max_kw=boiler_max,
        boiler_heat_eur_per_kwh=boiler_price,
        initial_c=initial,
        thermostat_kh=thermostat_kh,
    ), need


def local_hours(start: datetime, n_steps: int, timezone: str = LOCAL_TIMEZONE) -> FloatArray:
    """Local clock time at the middle of each step (daylight saving included)."""
    zone = ZoneInfo(timezone)
    middles = (start + QUARTER * (k + 0.5) for k in range(n_steps))
    local = (moment.astimezone(zone) for moment in middles)
    return np.array([m.hour + m.minute / 60 + m.second / 3600 for m in local])


def _draw(rng: np.random.Generator, value: Range, size: int) -> FloatArray:
    return rng.uniform(value.low, value.high, size)


def _homes(
    spec: Neighbourhood,
    start: datetime,
    n_steps: int,
    local_h: FloatArray,
    rng: np.random.Generator,
) -> Homes:
    moments = [start + QUARTER * (k + 0.5) for k in range(n_steps)]
    pv_per_w = np.array([pv_clear_sky_w(moment, 1.0) for moment in moments])
    outdoor_c = outdoor_temperature(spec, start, n_steps)
    shape = np.asarray((*H0_WINTER_WORKDAY_W, H0_WINTER_WORKDAY_W[0]))
    h0 = np.interp(local_h, np.arange(25), shape)
    season = np.array(
        [h0_dynamisation(m.timetuple().tm_yday) / h0_dynamisation(15) for m in moments]
    )
    rows: dict[str, list[FloatArray]] = {"base": [], "pv": [], "battery": []}
    scalars: dict[str, list[float]] = {
        key: []
        for key in ("phases", "limit", "noise", "ev_max", "ev_min", "ev_phases", "hp_w", "cop")
    }
    scalars |= {"bat_wh": [], "bat_w": []}
    kinds: list[HeatPumpKind | None] = []
    names: list[str] = []
    models: list[PumpModel | None] = []
    sessions: list[EvSession] = []
    files = _Files(start, n_steps)
    for group in spec.groups:
        band = (
            comfort_of(group.heat_pump, start, n_steps, spec.timezone) if group.heat_pump else None
        )
        annual = _draw(rng, group.annual_kwh, group.count)
        losses = (
            _draw(rng, group.heat_pump.heat_loss_w_per_k, group.count)
            if group.heat_pump
            else np.zeros(group.count)
        )
        connections = group.connection_names()
        for member in range(group.count):
            home = len(kinds)
            name = None if connections is None else connections[member]
            names.append(f"home-{home:04d}" if name is None else name)
            base = files.column(group.base_load_csv, group.base_load_column, name, home)
            if base is None:
                base = h0 * season * annual[member] / 1000
            # A measured pump is load the home cannot move: in every strategy, as base load.
            pump = files.column(
                group.heat_pump_csv, group.heat_pump_column, name, home, measured=True
            )
            rows["base"].append(base if pump is None else base + pump)
            own = (
                files.column(group.battery.profile_csv, group.battery.profile_column, name, home)
                if group.battery
                else None
            )
            rows["battery"].append(np.full(n_steps, np.nan) if own is None else own)
            per_kw = files.column(group.pv_csv, group.pv_column, name, home)
            rows["pv"].append((pv_per_w if per_kw is None else per_kw / 1000) * group.pv_peak_w)
            models.append(
                pump_model(group.heat_pump, float(losses[member]), band)
                if group.heat_pump and band
                else None
            )
            _append_scalars(scalars, group)
            kinds.append(group.heat_pump.kind if group.heat_pump else None)
            if group.ev is not None and group.ev.sessions_csv is not None and name is not None:
                sessions.extend(files.sessions(group.ev, home, name, scalars["ev_min"][-1]))
            elif group.ev is not None:
                sessions.extend(
                    ev_sessions(group.ev, home, spec.days, rng, start=start, timezone=spec.timezone)
                )
    files.check_sessions_used()
    thermal, need = buildings(models, outdoor_c, n_steps)
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
        heat_demand_w=need,
        battery_wh=np.asarray(scalars["bat_wh"]),
        battery_w=np.asarray(scalars["bat_w"]),
        battery_profile_w=(
            np.vstack(rows["battery"]) if not np.isnan(rows["battery"]).all() else None
        ),
        buildings=thermal if any(models) else None,
        names=tuple(names),
    )


class _Files:
    """CSV inputs read once each, however many groups name them."""

    def __init__(self, start: datetime, n_steps: int) -> None:
        self._start, self._n_steps = start, n_steps
        self._columns: dict[Path, Columns] = {}
        self._sessions: dict[Path, list[SessionRow]] = {}
        self._used: dict[Path, set[str]] = {}

    def column(
        self,
        path: Path | None,
        column: str | None,
        connection: str | None,
        home: int,
        *,
        measured: bool = False,
    ) -> FloatArray | None:
        """A home's profile: the group's column, else the one named after its connection,
        else (unnamed groups, as before names) column `home mod n` by the home's index
        in the whole file. `measured`: a consumption, checked to be at least 0 W."""
        if path is None:
            return None
        if path not in self._columns:
            self._columns[path] = read_columns(path, self._start, self._n_steps)
        columns = self._columns[path]
        if column is None and connection is not None:
            column = connection
        if column is not None:
            series = columns.named(column, connection or f"home {home}")
        else:
            column = columns.names[home % len(columns.names)]
            series = columns.values[home % len(columns.names)]
        if measured:
            non_negative(columns, column, series)
        return series

    def sessions(self, ev: EvSpec, home: int, connection: str, min_w: float) -> list[EvSession]:
        """The connection's sessions from the group's file, on the period's steps; those
        outside the period are left out, those across its ends cut to it. A session's
        own power lies within the charger's (`min_w`: its 6 A minimum)."""
        assert ev.sessions_csv is not None
        path = ev.sessions_csv
        if path not in self._sessions:
            self._sessions[path] = read_sessions(path)
        self._used.setdefault(path, set()).add(connection)
        quarter_s = QUARTER.total_seconds()
        found = []
        for row in self._sessions[path]:
            if row.connection != connection:
                continue
            begin = math.ceil((row.arrival - self._start).total_seconds() / quarter_s)
            end = math.floor((row.departure - self._start).total_seconds() / quarter_s)
            begin, end = max(begin, 0), min(end, self._n_steps)
            power_kw = ev.charger_kw if row.charger_kw is None else row.charger_kw
            if power_kw > ev.charger_kw or power_kw * 1000 < min_w:
                raise NeighbourhoodError(
                    f"{path}:{row.line}: column 'charger_kw': {power_kw:g} kW, the charger of "
                    f"{connection!r} gives {min_w / 1000:g}..{ev.charger_kw:g} kW"
                )
            if begin < end:
                room_wh = power_kw * 1000 * (end - begin) * STEP_H * 0.9
                energy_wh = min(row.energy_kwh * 1000, room_wh)
                max_w = None if row.charger_kw is None else power_kw * 1000
                found.append(EvSession(home, begin, end, energy_wh, max_w))
        return found

    def check_sessions_used(self) -> None:
        """Every row of a sessions file names a connection that reads the file."""
        for path, rows in self._sessions.items():
            for row in rows:
                if row.connection not in self._used[path]:
                    raise NeighbourhoodError(
                        f"{path}:{row.line}: column 'connection': no connection "
                        f"{row.connection!r} takes its sessions from this file"
                    )


def _append_scalars(scalars: dict[str, list[float]], group: HouseholdGroup) -> None:
    scalars["phases"].append(group.phases)
    scalars["limit"].append(connection_power_w(group.phases, group.fuse_a))
    scalars["noise"].append(group.noise)
    ev_phases = 3 if group.ev is not None and group.ev.charger_kw > 4 else 1
    scalars["ev_phases"].append(ev_phases)
    scalars["ev_max"].append(group.ev.charger_kw * 1000 if group.ev else 0.0)
    scalars["ev_min"].append(
        MIN_CHARGE_CURRENT_A * NOMINAL_VOLTAGE_V * ev_phases if group.ev else 0.0
    )
    scalars["hp_w"].append(group.heat_pump.electric_w if group.heat_pump else 0.0)
    scalars["cop"].append(group.heat_pump.cop if group.heat_pump else 1.0)
    scalars["bat_wh"].append(group.battery.capacity_kwh * 1000 if group.battery else 0.0)
    scalars["bat_w"].append(group.battery.power_kw * 1000 if group.battery else 0.0)


def ev_sessions(
    ev: EvSpec,
    home: int,
    days: int,
    rng: np.random.Generator,
    *,
    start: datetime,
    timezone: str = LOCAL_TIMEZONE,
) -> list[EvSession]:
    """Seeded sessions, at most one arriving in each day of the period (local noon to
    noon): on each day with probability sessions_per_week / 7, arriving around
    `arrival_h` and leaving at the first `departure_h` after it, energy drawn. Local
    clock times, daylight saving included; a session that would begin before the
    previous one left begins when it left."""
    zone = ZoneInfo(timezone)
    mean_h = (ev.arrival_h - DAY_START_LOCAL.hour) % 24  # hours after the day's noon
    leave_h = (ev.departure_h - DAY_START_LOCAL.hour) % 24
    # An evening arrival for the next morning (the historic shape) arrives by 23:45.
    latest_h = 11.75 if mean_h < 12 <= leave_h else 23.75
    n_steps = days * STEPS_PER_DAY
    sessions: list[EvSession] = []
    for day in range(days):
        if ev.sessions_per_week < 7 and rng.random() >= ev.sessions_per_week / 7:
            continue
        arrival_h = float(np.clip(rng.normal(mean_h, ev.arrival_sd_h), 0.25, latest_h))
        departure_h = leave_h if leave_h > arrival_h else leave_h + 24
        noon = datetime.combine(start.date(), DAY_START_LOCAL, tzinfo=zone) + timedelta(days=day)
        first = round((noon.astimezone(UTC) - start) / QUARTER)  # 96 a day, +-4 across DST
        begin = first + math.ceil(arrival_h / STEP_H)
        end = min(first + int(departure_h / STEP_H), n_steps)
        energy_draw = float(rng.uniform(ev.energy_kwh.low, ev.energy_kwh.high)) * 1000
        if sessions:
            begin = max(begin, sessions[-1].end_step)
        if begin >= end:
            continue
        # Never more than the charger can deliver in the window: that is the driver's plan.
        room_wh = ev.charger_kw * 1000 * (end - begin) * STEP_H * 0.9
        sessions.append(EvSession(home, begin, end, min(energy_draw, room_wh)))
    return sessions


def day_parts(sessions: Sequence[EvSession], span: int) -> list[EvSession]:
    """The sessions cut at every multiple of `span` steps, each part with the share of
    the energy its steps have: day-by-day plans see each day's part of a session."""
    parts = []
    for session in sessions:
        steps = session.end_step - session.start_step
        begin = session.start_step
        while begin < session.end_step:
            end = min((begin // span + 1) * span, session.end_step)
            share = session.energy_wh * (end - begin) / steps
            parts.append(EvSession(session.home, begin, end, share, session.max_w))
            begin = end
    return parts
