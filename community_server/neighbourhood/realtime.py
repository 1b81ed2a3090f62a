"""What the homes really draw, minute by minute, under each level of control.

Resolution: one minute, all homes at once (numpy). The guard reacts to every meter
reading (about a second) and its devices settle within 2-5 s (`plant.py`), so over a
minute it has clamped the devices for more than 90 % of the time; its steady state,
applied per minute, is therefore within a few percent of its energy and of the
transformer's 15-minute load, and a transformer's thermal time constant is hours. The
base load varies per minute (each home's noise), which is what the guard and the live
allocation react to; planners only see the 15-minute profile.

The guard's rules, vectorised (docs/guard.md), for the homes as the engine's guard sees
them: an SG-Ready heat pump first (priority 0), the charger next, the battery last, PV
unrestricted (no export cap), a 3-phase home held by its total (a total-power meter;
with symmetric devices per-phase limits are the same). Per minute:
- the base load is not controllable; a battery with charge above its minimum counts
  with its discharge as room for the pump and the car (it covers what they take), all
  of it from 5 points above its minimum and fading to none there, or at least what it
  discharges now on its own or by plan;
- a running heat pump keeps running while it fits, otherwise the fuse sheds it; a shed
  pump stays off its minimum off time (30 min) and comes back when its rated power fits,
  which is reserved for it in the decision that switches it on;
- the charger gets the room left in whole amperes, within the plan and its maximum; it
  pauses below its 6 A minimum; a car the guard paused for lack of room resumes only
  with room for 7 A (minimum + the 1 A hysteresis), one paused by its plan (or not
  plugged in) starts with room for its minimum;
- the battery follows its own mode or the plan, charging only from the room left and
  discharging at least what the devices before it took beyond the limit.
`tests/neighbourhood/test_guard_agreement.py` runs random homes through these functions
and through the engine's `Guard` and checks they agree (energy per device per home-day
within 2 %, the fuse kept whenever the engine keeps it); it names what it leaves out. The
engine's rate limit (increases wait 10 s) and device settling (2-5 s) are shorter than a
minute and not modelled. The live allocation is the real `LiveAllocator`, called
each minute while the members' load nears the transformer's budget.

Each heated home's indoor temperature follows the engine's 1R1C model
(`netbewust_core.thermal`) minute by minute, on the heat the pump really delivered (and
a hybrid's boiler, which makes up what the guard took from the pump). Without a plan a
pump is its own thermostat: each quarter hour it draws what keeps the set point
(`thermostat_step`, the engine's `thermostat_run` step for all homes at once;
tests/neighbourhood/test_thermal_agreement.py proves they agree). An on/off pump's
quarter-hour power is its duty cycle, as the planner models it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from netbewust_core.allocation.allocator import LiveAllocator
from netbewust_core.allocation.model import (
    MAX_HOUSEHOLD_POWER_W,
    AllocationMode,
    AllocationPhase,
    CapSeries,
    HouseholdState,
    NonMemberLoad,
)
from netbewust_core.allocation.plan_rules import plan_request
from netbewust_core.collective.minimums import round_to_minimums
from netbewust_core.guard.battery import SOC_FADE_PCT
from netbewust_core.limits import LimitInterval, LimitSource
from netbewust_core.timegrid import QUARTER
from netbewust_core.units import NOMINAL_VOLTAGE_V

from .scenario import STEP_H, STEPS_PER_DAY

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from netbewust_core.limits import ExternalLimit

    from .scenario import Buildings, Homes, Scenario

    FloatArray = NDArray[np.float64]

MINUTES = QUARTER // timedelta(minutes=1)  # simulated minutes per step
BATTERY_EFFICIENCY = 0.95
# Ask the live allocator from this fraction of the budget on (it engages at 0.92).
ALLOCATOR_WATCH_FRACTION = 0.8
# Charge at full power once the car needs this share of what is still possible.
DEPARTURE_RESERVE = 0.9
SOLVER_TOLERANCE_W = 1.0
FIT_TOLERANCE_W = 1e-3
# The engine's defaults for the homes' devices (ChargerSpec, HeatPumpSpec, BatterySpec);
# the agreement test builds the engine's devices from these.
RESUME_HYSTERESIS_A = 1.0
HP_MIN_OFF_MINUTES = 30
MIN_SOC = 0.1
MAX_SOC = 0.9


@dataclass(slots=True)
class GuardMemory:
    """What each home's guard carries from one minute to the next."""

    ev_running: NDArray[np.bool_]  # the charger was given current last minute
    # The guard held the car back for lack of room while its plan asked for current.
    ev_held: NDArray[np.bool_]
    hp_off_minutes: NDArray[np.int64]  # minutes since the fuse shed the pump; -1: not shed

    @classmethod
    def start(cls, homes: int) -> GuardMemory:
        return cls(
            ev_running=np.zeros(homes, dtype=np.bool_),
            ev_held=np.zeros(homes, dtype=np.bool_),
            hp_off_minutes=np.full(homes, -1, dtype=np.int64),
        )


class Control(StrEnum):
    NONE = "none"  # no Netbewust: devices do what they want, fuses permitting
    GUARD = "guard"  # each home's guard keeps it within its connection and limits
    COMMUNITY = "community"  # guards plus the live allocation of the transformer cap


@dataclass(frozen=True, slots=True, kw_only=True)
class Requests:
    """What the homes' plans ask per step; None: the device's own behaviour."""

    ev_w: FloatArray | None = None  # None: full power from arrival until full
    hp_w: FloatArray | None = None  # None: the pump's own thermostat
    boiler_w: FloatArray | None = None  # a hybrid's planned boiler heat (W)
    battery_w: FloatArray | None = None  # + charge; None (a home's NaN): self-consumption
    planned_limits: Sequence[Mapping[int, ExternalLimit]] = ()  # per day, per home


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    grid_w: FloatArray  # per home and step, the 15-minute mean
    ev_w: FloatArray
    hp_w: FloatArray
    boiler_w: FloatArray  # heat from hybrids' boilers, the 15-minute mean
    indoor_c: FloatArray  # at the end of each step (NaN: no heat pump)
    ev_shortfall_wh: FloatArray  # per session
    transformer_minute_peak_w: float
    allocator_calls: int


def simulate(scenario: Scenario, requests: Requests, control: Control) -> Outcome:
    homes = scenario.homes
    h, n = homes.count, scenario.n_steps
    rng = np.random.default_rng([scenario.seed, 1])  # same weather of noise per strategy
    session_of = np.full((h, n), -1, dtype=np.int64)
    for index, ev_session in enumerate(scenario.homes.sessions):
        session_of[ev_session.home, ev_session.start_step : ev_session.end_step] = index
    energies = np.array([s.energy_wh for s in homes.sessions] + [0.0])
    starts = np.array([s.start_step for s in homes.sessions] + [0], dtype=np.int64)
    planned_before = _planned_before(requests)
    ends = np.array([s.end_step for s in homes.sessions] + [0], dtype=np.int64)
    car_max = np.array(
        [homes.ev_max_w[s.home] if s.max_w is None else s.max_w for s in homes.sessions] + [0.0]
    )
    delivered = np.zeros(len(homes.sessions) + 1)
    soc_wh = homes.battery_wh * 0.5
    live = _Live(scenario) if control is Control.COMMUNITY else None
    memory = GuardMemory.start(h)
    grid = np.zeros((h, n))
    ev_out = np.zeros((h, n))
    hp_out = np.zeros((h, n))
    indoor = Indoor(homes, n)
    minute_peak = -np.inf
    for k in range(n):
        session = session_of[:, k]
        plugged = session >= 0
        remaining = np.where(plugged, energies[session] - delivered[session], 0.0)
        behind = np.zeros(h)
        if planned_before is not None:
            rows = np.arange(h)
            scheduled = planned_before[rows, k] - planned_before[rows, starts[session]]
            behind = np.where(plugged, scheduled - delivered[session], 0.0)
        hp_want, boiler_plan = indoor.requests(homes, requests, k)
        # What the plan owes a car (its limit held it back earlier) rides on top of
        # its day-ahead limit; the live allocation still holds the transformer's cap.
        owed_w = np.where(plugged, np.clip(behind, 0.0, None) / STEP_H, 0.0)
        planned = _planned_limits(scenario, requests, k) + owed_w
        plan_ev = np.zeros(h) if requests.ev_w is None else requests.ev_w[:, k]
        # What a re-plan sees of that limit for the car: less the forecast, not the minute.
        plan_room = planned - homes.base_forecast_w[:, k] + homes.pv_w[:, k] - hp_want
        scatter = rng.normal(0.0, 1.0, (h, MINUTES)) * homes.noise[:, None]
        car_w = np.where(plugged, car_max[session], homes.ev_max_w)  # the plugged car's power
        inflexible = homes.base_forecast_w[:, k, None] * np.clip(1 + scatter, 0.2, None)
        for minute in range(MINUTES):
            net = inflexible[:, minute] - homes.pv_w[:, k]
            ev_want = _ev_request(
                car_w,
                homes.ev_min_w,
                requests,
                k,
                energy_wh=(remaining, behind),
                plugged=plugged,
                end_step=ends[session],
                room_w=plan_room,
            )
            external = planned
            if live is not None:
                external = np.minimum(
                    external,
                    live.limits(
                        k,
                        minute,
                        net=net,
                        hp_want=hp_want,
                        ev_want=ev_want,
                        planned=planned,
                        plan_ev=plan_ev,
                        held=memory.ev_held,
                    ),
                )
            # Remote limits never cut the base load or the heat pump's comfort (the
            # allocation's guaranteed minimum); the fuse always binds.
            fuse = homes.limit_w if control is not Control.NONE else np.full(h, np.inf)
            limit = np.minimum(fuse, np.maximum(external, net + hp_want))
            hp, ev, battery = guard_minute(
                control,
                homes=homes,
                limit=limit,
                net=net,
                wants=(hp_want, ev_want),
                battery_want=None if requests.battery_w is None else requests.battery_w[:, k],
                soc_wh=soc_wh,
                memory=memory,
            )
            stored = np.where(
                battery > 0, battery * BATTERY_EFFICIENCY, battery / BATTERY_EFFICIENCY
            )
            soc_wh += stored / 60
            power = net + hp + ev + battery
            np.add.at(delivered, session[plugged], ev[plugged] / 60)
            remaining = np.where(plugged, remaining - ev / 60, 0.0)
            grid[:, k] += power / MINUTES
            ev_out[:, k] += ev / MINUTES
            hp_out[:, k] += hp / MINUTES
            indoor.minute(k, hp=hp, hp_want=hp_want, boiler_plan=boiler_plan)
            total = float(power.sum()) + scenario.non_member_w[k]
            minute_peak = max(minute_peak, total)
            if live is not None:
                live.measured = power
    shortfall = np.clip(energies - delivered, 0.0, None)[:-1]
    return Outcome(
        grid_w=grid,
        ev_w=ev_out,
        hp_w=hp_out,
        boiler_w=indoor.boiler_w,
        indoor_c=indoor.indoor_c,
        ev_shortfall_wh=shortfall,
        transformer_minute_peak_w=minute_peak,
        allocator_calls=0 if live is None else live.calls,
    )


class Indoor:
    """Every heated home's indoor temperature, stepped minute by minute (1R1C)."""

    def __init__(self, homes: Homes, n_steps: int) -> None:
        self._buildings = homes.buildings
        self._temperature = np.full(homes.count, np.nan)
        if self._buildings is not None:
            self._temperature = self._buildings.initial_c.copy()
        self.indoor_c = np.full((homes.count, n_steps), np.nan)
        self.boiler_w = np.zeros((homes.count, n_steps))

    def requests(self, homes: Homes, requests: Requests, k: int) -> tuple[FloatArray, FloatArray]:
        """What each pump wants this step (W) and the boiler heat planned (kW)."""
        if self._buildings is None:
            return np.zeros(homes.count), np.zeros(homes.count)
        if requests.hp_w is None:
            return thermostat_step(
                self._buildings, self._temperature, k, homes.hp_electric_w / 1000
            )
        if requests.boiler_w is None:
            return requests.hp_w[:, k], np.zeros(homes.count)
        return requests.hp_w[:, k], requests.boiler_w[:, k] / 1000

    def minute(
        self, k: int, *, hp: FloatArray, hp_want: FloatArray, boiler_plan: FloatArray
    ) -> None:
        """One minute of heat: the pump's real power; a hybrid's boiler also makes up
        the heat the guard took from its pump (its own controller: pump first)."""
        b = self._buildings
        if b is None:
            return
        cop = b.cop[:, k]
        missing_kw = np.clip(hp_want - hp, 0.0, None) / 1000 * cop
        boiler_kw = np.minimum(boiler_plan + missing_kw, b.boiler_max_kw)
        heat_kw = hp / 1000 * cop + boiler_kw
        self._temperature = indoor_step(b, self._temperature, k, heat_kw, 1 / 60)
        self.boiler_w[:, k] += boiler_kw * 1000 / MINUTES
        self.indoor_c[:, k] = np.where(np.isfinite(b.lower_c[:, k]), self._temperature, np.nan)


def indoor_step(
    buildings: Buildings, indoor_c: FloatArray, k: int, heat_kw: FloatArray, hours: float
) -> FloatArray:
    """The engine's 1R1C step (`thermal.simulate_indoor`) for every home at once:
    T' = a T + (1 - a)(T_out + R (Q + G)), exact for heat constant over the step."""
    a = buildings.decay(hours)
    r = buildings.resistance_k_per_kw
    drive = buildings.outdoor_c[k] + r * (heat_kw + buildings.gain_kw)
    new: FloatArray = a * indoor_c + (1 - a) * drive
    return new


def thermostat_step(
    buildings: Buildings, indoor_c: FloatArray, k: int, electric_max_kw: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Each pump as its own thermostat runs it this quarter hour (`thermal.thermostat_run`'s
    step for every home at once): (electric W, boiler heat kW) that end the step at the
    set point, the pump first within its power, a hybrid's boiler for the rest."""
    a = buildings.decay(STEP_H)
    r = buildings.resistance_k_per_kw
    cop = buildings.cop[:, k]
    with np.errstate(invalid="ignore"):  # homes without a pump: a set point of -inf
        needed = (
            (buildings.setpoint_c[:, k] - a * indoor_c) / (1 - a) - buildings.outdoor_c[k]
        ) / r
    needed = np.nan_to_num(needed - buildings.gain_kw, nan=0.0, neginf=0.0)
    heating = needed > 1e-12
    pump_heat = np.where(heating, np.minimum(needed, electric_max_kw * cop), 0.0)
    boiler = np.where(heating, np.minimum(needed - pump_heat, buildings.boiler_max_kw), 0.0)
    return pump_heat / cop * 1000, boiler


def _ev_request(
    ev_max_w: FloatArray,
    ev_min_w: FloatArray,
    requests: Requests,
    k: int,
    *,
    energy_wh: tuple[FloatArray, FloatArray],
    plugged: NDArray[np.bool_],
    end_step: NDArray[np.int64],
    room_w: FloatArray,
) -> FloatArray:
    """What each car asks this minute; `room_w`: what its limit leaves it (W)."""
    remaining_wh, behind_wh = energy_wh
    if requests.ev_w is None:
        want = ev_max_w.copy()
    else:
        # The home re-plans every 15 minutes: what the guard held back is made up in
        # the next quarter hour, and close to departure the car charges flat out.
        catch_up = np.clip(behind_wh, 0.0, None) / STEP_H
        possible_wh = ev_max_w * (end_step - k) * STEP_H
        late = remaining_wh >= DEPARTURE_RESERVE * possible_wh
        want = np.where(late, ev_max_w, np.minimum(requests.ev_w[:, k] + catch_up, ev_max_w))
        # A car behind its plan charges at least at its minimum (6 A) to catch up.
        want = np.where((want > 0) & (want < ev_min_w), ev_min_w, want)
        # But a re-plan under its limit puts no catch-up in a quarter hour its plan
        # leaves idle unless that limit has room for the minimum. Asked anyway, the guard
        # held the car back for lack of room, and it then needed minimum + hysteresis in
        # its planned quarter hours, where a limit sized for the plan has no such room.
        idle = (requests.ev_w[:, k] <= 0) & ~late
        want = np.where(idle & (room_w < ev_min_w - SOLVER_TOLERANCE_W), 0.0, want)
    want = np.minimum(want, np.clip(remaining_wh, 0.0, None) * 60)
    return np.where(plugged, want, 0.0)


def _planned_before(requests: Requests) -> FloatArray | None:
    """Energy (Wh) the plan has each car charge before each step."""
    if requests.ev_w is None:
        return None
    return (np.cumsum(requests.ev_w, axis=1) - requests.ev_w) * STEP_H


def _planned_limits(scenario: Scenario, requests: Requests, k: int) -> FloatArray:
    limits = np.full(scenario.homes.count, np.inf)
    if not requests.planned_limits:
        return limits
    day = k // STEPS_PER_DAY
    moment = scenario.step_start(k)
    for home, limit in requests.planned_limits[day].items():
        interval = limit.interval_at(moment)
        if interval is not None and interval.max_import_w is not None:
            limits[home] = interval.max_import_w
    return limits


def guard_minute(
    control: Control,
    *,
    homes: Homes,
    limit: FloatArray,
    net: FloatArray,
    wants: tuple[FloatArray, FloatArray],
    battery_want: FloatArray | None,
    soc_wh: FloatArray,
    memory: GuardMemory,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Every home's guard for one minute: heat pump, charger and battery power (W).

    `limit`: the import allowed (fuse and limits in force, W); `net`: base load less PV;
    `wants`: what the heat pump and the car would draw; `battery_want`: the plan, None
    for self-consumption. Updates `memory`.
    """
    hp_want, ev_want = wants
    has_battery = homes.battery_wh > 0
    charge_max, discharge_max = _battery_range(homes, soc_wh)
    charged = _has_charge(homes, soc_wh)
    support = _support(homes, battery_want, soc_wh, np.clip(net, 0.0, discharge_max))
    hp, ev = _serve(
        control,
        limit=limit,
        net=net,
        hp_want=hp_want,
        ev_want=ev_want,
        homes=homes,
        support=support,
        memory=memory,
    )
    battery = _battery(
        control,
        want=battery_want,
        load=net + hp + ev,
        limit=limit,
        charge_max=charge_max,
        discharge_max=discharge_max,
        charged=charged,
        support=support,
    )
    return hp, ev, np.where(has_battery, battery, 0.0)


def _serve(
    control: Control,
    *,
    limit: FloatArray,
    net: FloatArray,
    hp_want: FloatArray,
    ev_want: FloatArray,
    homes: Homes,
    support: FloatArray,
    memory: GuardMemory,
) -> tuple[FloatArray, FloatArray]:
    """Heat pump and charger power this minute (W); updates `memory`.

    `support`: what the battery can discharge this minute (0 without charge left).
    """
    if control is Control.NONE:
        return hp_want, ev_want
    room = limit - net + support
    off = memory.hp_off_minutes
    waited = np.where(off >= 0, off + 1, off)
    running = waited < 0
    # A running pump is shed when it does not fit (even idle, under inflexible overload);
    # a shed one comes back after its minimum off time, once its rated power fits.
    back = (waited >= HP_MIN_OFF_MINUTES) & (homes.hp_electric_w <= room)
    # A pump that fits its limit exactly (the allocation's floor) is not shed by rounding.
    on = np.where(running, hp_want <= room + FIT_TOLERANCE_W, back)
    memory.hp_off_minutes = np.where(on, -1, np.where(running, 0, waited))
    hp = np.where(on, hp_want, 0.0)
    w_per_a = NOMINAL_VOLTAGE_V * homes.ev_phases
    room_a = np.floor((room - hp) / w_per_a + 1e-9)  # whole amperes
    tolerance_a = SOLVER_TOLERANCE_W / w_per_a
    # A car the guard paused for lack of room resumes with room for minimum + hysteresis;
    # a running one, or one paused only by its plan, needs room for its minimum.
    held = memory.ev_held & ~memory.ev_running
    min_a = homes.ev_min_w / w_per_a
    needed_a = min_a + np.where(held, RESUME_HYSTERESIS_A, 0.0)
    # A pump switched back on draws nothing yet: in that decision the engine reserves
    # its rated power, so the car first sees the room less that. A car that does not
    # fit then is paused for lack of room; a reading later, with the pump drawing what
    # it wants, it resumes only on room for minimum + hysteresis.
    returning = on & ~running
    first_a = np.floor((room - np.where(returning, homes.hp_electric_w, hp)) / w_per_a + 1e-9)
    # Plans come from a solver: a setpoint a hair below the minimum is the minimum. A car
    # whose last few Wh take less than a minute at 6 A draws 6 A for part of the minute:
    # its mean is below the minimum, but the room must carry the minimum.
    first = (ev_want > 0) & (first_a >= needed_a - tolerance_a)
    later = returning & (room_a >= min_a + RESUME_HYSTERESIS_A - tolerance_a)
    served = first | ((ev_want > 0) & later)
    ev = np.where(served, np.minimum(ev_want, room_a * w_per_a), 0.0)
    memory.ev_running = ev > 0
    memory.ev_held = (ev_want > 0) & ~served
    return hp, ev


def _battery_range(homes: Homes, soc_wh: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(charge, discharge) power the battery can keep up for this minute (W)."""
    capacity, power = homes.battery_wh, homes.battery_w
    headroom_wh = (capacity * MAX_SOC - soc_wh) / BATTERY_EFFICIENCY
    stock_wh = (soc_wh - capacity * MIN_SOC) * BATTERY_EFFICIENCY
    return np.clip(headroom_wh * 60, 0.0, power), np.clip(stock_wh * 60, 0.0, power)


def _support(
    homes: Homes, want: FloatArray | None, soc_wh: FloatArray, covering: FloatArray
) -> FloatArray:
    """What the engine counts on the battery to discharge for the devices before it: its
    full power from `SOC_FADE_PCT` points above the minimum, fading to none at the
    minimum (`BatteryController`), and in any case a planned discharge, or in its own
    mode what it discharges now (`covering`: at least the base load it covers)."""
    wished = (
        covering
        if want is None
        else np.where(np.isnan(want), covering, np.clip(-want, 0.0, homes.battery_w))
    )
    share = np.clip((_reported_pct(homes, soc_wh) - 100 * MIN_SOC) / SOC_FADE_PCT, 0.0, 1.0)
    return np.where(homes.battery_wh > 0, np.maximum(wished, share * homes.battery_w), 0.0)


def _reported_pct(homes: Homes, soc_wh: FloatArray) -> FloatArray:
    """The charge as the engine sees it: the battery reports it in whole percent."""
    capacity = np.where(homes.battery_wh > 0, homes.battery_wh, 1.0)
    reported: FloatArray = np.round(100 * soc_wh / capacity)
    return reported


def _has_charge(homes: Homes, soc_wh: FloatArray) -> NDArray[np.bool_]:
    """Charge above the minimum, as the engine sees it."""
    return (homes.battery_wh > 0) & (_reported_pct(homes, soc_wh) > 100 * MIN_SOC)


def _battery(
    control: Control,
    *,
    want: FloatArray | None,
    load: FloatArray,
    limit: FloatArray,
    charge_max: FloatArray,
    discharge_max: FloatArray,
    charged: NDArray[np.bool_],
    support: FloatArray,
) -> FloatArray:
    """Battery power this minute (W, + charges); `want` None (or a home's NaN):
    self-consumption; `charged`: the engine sees charge above the minimum; `support`:
    the discharge the engine counted on (`_support`)."""
    scheduled = np.zeros(load.shape, dtype=bool) if want is None else ~np.isnan(want)
    wish = -load if want is None else np.where(scheduled, want, -load)
    if control is not Control.NONE:
        # Charge only from the room left; with charge, discharge at least what the load
        # takes beyond the limit (the devices before it counted on that), but under a
        # plan no more than that count (the engine's floor for it); a battery the engine
        # sees as empty is never asked to discharge.
        room = limit - load
        empty_wish = np.where(wish >= 0, np.minimum(wish, np.maximum(room, 0.0)), wish)
        covering = np.minimum(wish, room)
        covering = np.where(scheduled, np.maximum(covering, -support), covering)
        wish = np.where(charged, covering, empty_wish)
    return np.clip(wish, -discharge_max, charge_max)


class _Live:
    """The community's live allocation, fed with the homes' minute readings."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        spec = scenario.spec
        self._allocator = LiveAllocator()
        end = scenario.step_start(scenario.n_steps)
        self._cap = CapSeries(
            (LimitInterval(scenario.start, end, max_import_w=scenario.cap_w),),
            source=LimitSource.COMMUNITY,
        )
        self._rule = spec.sharing_rule
        self._limits = np.full(scenario.homes.count, np.inf)
        self.measured = np.zeros(scenario.homes.count)
        self.calls = 0

    def limits(
        self,
        k: int,
        minute: int,
        *,
        net: FloatArray,
        hp_want: FloatArray,
        ev_want: FloatArray,
        planned: FloatArray,
        plan_ev: FloatArray | None = None,
        held: NDArray[np.bool_] | None = None,
    ) -> FloatArray:
        """Each home's limit this minute (inf: none); `held`: cars the guard paused for
        lack of room (they need room for minimum + hysteresis to resume)."""
        demand = float(np.clip(net + hp_want, 0.0, None).sum() + ev_want.sum())
        indicator = max(float(self.measured.sum()), demand)
        idle = self._allocator.phase is AllocationPhase.IDLE
        non_member_w = float(self._scenario.non_member_w[k])  # the DSO's estimate this step
        budget_w = self._scenario.cap_w - non_member_w
        if idle and indicator < ALLOCATOR_WATCH_FRACTION * budget_w:
            self._limits[:] = np.inf
            return self._limits
        homes = self._scenario.homes
        now = self._scenario.step_start(k) + timedelta(minutes=minute)
        top = MAX_HOUSEHOLD_POWER_W
        floor = np.clip(net + hp_want, 0.0, homes.limit_w)
        # The engine's rules under a day-ahead plan (`allocation_plan`): a car the plan
        # holds below its 6 A minimum asks for nothing, and a car's planned power is kept
        # in its floor where a day-ahead limit is in force; only catch-up is shared.
        request = plan_request(
            floor,
            ev_want,
            planned_limit_w=planned,
            planned_flexible_w=0.0 if plan_ev is None else plan_ev,
            min_flexible_w=homes.ev_min_w,
            connection_w=homes.limit_w,
            increment_w=NOMINAL_VOLTAGE_V * homes.ev_phases,  # whole amperes
        )
        floor, ev_want, kept = request.floor_w, request.flexible_w, request.kept_w
        states = [
            HouseholdState(
                household_id=hid,
                measured_w=float(np.clip(self.measured[i], -top, top)),
                guaranteed_min_w=float(floor[i]),
                flexible_w=float(ev_want[i]),
                connection_limit_w=float(min(homes.limit_w[i], planned[i])),
            )
            for i, hid in enumerate(homes.ids)
        ]
        allocation = self._allocator.allocate(
            self._cap,
            NonMemberLoad(estimate_w=non_member_w),
            states,
            rule=self._rule,
            mode=AllocationMode.CAPACITY_FRAME,
            now=now,
        )
        self.calls += 1
        self._limits[:] = np.inf
        index = {hid: i for i, hid in enumerate(homes.ids)}
        for hid, limit in allocation.limits.items():
            interval = limit.interval_at(now)
            if interval is not None and interval.max_import_w is not None:
                self._limits[index[hid]] = interval.max_import_w
        # A car already drawing its planned power can use any extra; another needs room
        # for its 6 A minimum to start, plus the guard's resume hysteresis (1 A) if the
        # guard paused it for lack of room.
        charging = kept >= homes.ev_min_w - SOLVER_TOLERANCE_W
        hysteresis_w = RESUME_HYSTERESIS_A * NOMINAL_VOLTAGE_V * homes.ev_phases
        paused = np.zeros(homes.count, dtype=np.bool_) if held is None else held
        start_w = homes.ev_min_w + np.where(paused, hysteresis_w, 0.0)
        minimum = np.where((ev_want > 0) & ~charging, start_w, 0.0)
        self._round_to_charger_minimums(floor, minimum, ev_want)
        return self._limits

    def _round_to_charger_minimums(
        self, floor: FloatArray, minimum: FloatArray, ev_want: FloatArray
    ) -> None:
        """A car given less than its 6 A pauses, wasting its share: pool such shares
        into whole minimums for the cars that want the most (the allocation's total,
        and so the cap, is kept)."""
        held = np.isfinite(self._limits)
        share = np.clip(self._limits[held] - floor[held], 0.0, None)
        rounded = round_to_minimums(share, minimum[held], ev_want[held])
        self._limits[held] = floor[held] + rounded
