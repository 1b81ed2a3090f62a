"""The planning engines applied to a scenario, day by day (local noon to noon).

- `household_requests`: every home's own planner (`netbewust_core.planning.planner.plan`) on the
  day's prices and its profile forecast, optionally under a community limit; the plan's
  charger, heat-pump and battery powers become the requests the real-time layer follows.
- `heat_pump_schedules`: each heat pump's own on/off plan (two starts a day at most),
  which the collective plan takes as fixed load.
- `collective_limits`: the collective day-ahead planner (`plan_collective`) on the
  members' baselines (forecast base load, heat-pump schedule, PV) and envelopes (EV
  sessions, batteries), against the cap less `PLANNING_MARGIN`; each home's limit for
  the day is its planned power plus `FORECAST_ERROR_SIGMAS` of its base-load noise.

A heat pump's day is cut into blocks of `heat_shift_hours`: within a block the planner
may move heat (the building's thermal mass), across blocks it may not, so comfort holds;
the blocks share the day's two starts (`PlanHeatPump.max_starts_total`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from netbewust_core.collective.planner import plan_collective
from netbewust_core.collective.problem import (
    CollectiveHousehold,
    CollectiveProblem,
    ShiftableEnergy,
)
from netbewust_core.model import Connection
from netbewust_core.planning.planner import plan
from netbewust_core.planning.problem import (
    HeatPumpDay,
    PlanBattery,
    PlanCharger,
    PlanEvSession,
    PlanHeatPump,
    PlanningProblem,
)
from netbewust_core.units import NOMINAL_VOLTAGE_V

from .scenario import STEP_H, STEPS_PER_DAY

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from netbewust_core.limits import ExternalLimit

    from .scenario import EvSession, Scenario

    FloatArray = NDArray[np.float64]

DayLimits = dict[int, "ExternalLimit"]  # home index -> its community limit for the day
# A block's heat need is kept just inside what the pump can deliver (solver tolerance).
HEAT_NEED_MARGIN = 0.999
# The product rule: a heat pump starts at most twice a day (the blocks share this budget).
HEAT_STARTS_PER_DAY = 2
# The day-ahead plan keeps this share of the cap free: the live allocation aims 3 %
# below the cap and the real base load scatters around its forecast.
PLANNING_MARGIN = 0.05
# A home's limit sits this many standard deviations of its minute base load above its
# planned power: otherwise base load above its forecast eats the car's share, and a car
# planned at its 6 A minimum pauses altogether. The planning margin pays for the few
# homes above forecast at once; the live allocation holds the cap regardless.
FORECAST_ERROR_SIGMAS = 3.0


def _sessions_by_day(scenario: Scenario) -> dict[tuple[int, int], EvSession]:
    return {(s.home, s.start_step // STEPS_PER_DAY): s for s in scenario.homes.sessions}


def _heat_blocks(scenario: Scenario, home: int, day: int) -> list[tuple[int, int, float]]:
    """(start, end, electric energy in Wh) per block of the day, relative steps."""
    homes = scenario.homes
    rated = float(homes.hp_electric_w[home])
    if rated <= 0:
        return []
    cop = float(homes.hp_cop[home])
    size = scenario.heat_block_steps
    offset = day * STEPS_PER_DAY
    blocks = []
    for start in range(0, STEPS_PER_DAY, size):
        heat_wh = float(homes.heat_demand_w[home, offset + start : offset + start + size].sum())
        electric_wh = min(heat_wh * STEP_H / cop, rated * size * STEP_H * HEAT_NEED_MARGIN)
        blocks.append((start, start + size, electric_wh))
    return blocks


def _problem(
    scenario: Scenario,
    home: int,
    day: int,
    session: EvSession | None,
    limit: ExternalLimit | None,
    *,
    fixed_heat_w: FloatArray | None = None,
) -> PlanningProblem:
    """The home's day; `fixed_heat_w` (the day's W per step): the heat pump keeps that
    schedule and is load, not a device to plan."""
    homes = scenario.homes
    offset = day * STEPS_PER_DAY
    window = slice(offset, offset + STEPS_PER_DAY)
    # The real-time layer holds a home's total within its connection (its phases
    # balanced), so the plan sees every device on all of the home's phases too.
    phases = (1, 2, 3) if homes.phases[home] == 3 else (1,)
    chargers: tuple[PlanCharger, ...] = ()
    if session is not None:
        chargers = (
            PlanCharger(
                device_id="ev",
                max_power_w=float(homes.ev_max_w[home]),
                min_power_w=float(homes.ev_min_w[home]),
                phases=phases if homes.ev_phases[home] == 3 else (1,),
                sessions=(
                    PlanEvSession(
                        start_step=session.start_step - offset,
                        end_step=session.end_step - offset,
                        energy_wh=session.energy_wh,
                    ),
                ),
            ),
        )
    cop = float(homes.hp_cop[home])
    blocks = [] if fixed_heat_w is not None else _heat_blocks(scenario, home, day)
    heat_pumps: tuple[PlanHeatPump, ...] = ()
    if blocks:
        heat_pumps = (
            PlanHeatPump(
                device_id="hp",
                rated_power_w=float(homes.hp_electric_w[home]),
                cop=cop,
                phases=phases,
                days=tuple(
                    HeatPumpDay(
                        start_step=start,
                        end_step=end,
                        heat_need_wh=energy * cop,
                        max_starts=HEAT_STARTS_PER_DAY,
                    )
                    for start, end, energy in blocks
                ),
                max_starts_total=HEAT_STARTS_PER_DAY,
            ),
        )
    return PlanningProblem(
        start=scenario.step_start(offset),
        connection=Connection(
            phases=int(homes.phases[home]),
            fuse_current_a=float(homes.limit_w[home] / homes.phases[home] / NOMINAL_VOLTAGE_V),
        ),
        import_price_eur_per_kwh=tuple(scenario.import_price[window].tolist()),
        export_price_eur_per_kwh=tuple(scenario.export_price[window].tolist()),
        base_load_w=tuple(
            (
                homes.base_forecast_w[home, window]
                + (0.0 if fixed_heat_w is None else fixed_heat_w)
            ).tolist()
        ),
        pv_w=tuple(homes.pv_w[home, window].tolist()),
        chargers=chargers,
        heat_pumps=heat_pumps,
        batteries=_batteries(scenario, home),
        external_limits=() if limit is None else (limit,),
    )


def _batteries(scenario: Scenario, home: int) -> tuple[PlanBattery, ...]:
    homes = scenario.homes
    if homes.battery_wh[home] <= 0:
        return ()
    power = float(homes.battery_w[home])
    # Each day ends where it began, so days can be planned one at a time.
    return (
        PlanBattery(
            device_id="battery",
            capacity_wh=float(homes.battery_wh[home]),
            max_charge_w=power,
            max_discharge_w=power,
            soc_final_min_pct=50.0,
        ),
    )


def _solve(problem: PlanningProblem) -> tuple[FloatArray, FloatArray, FloatArray]:
    result = plan(problem)
    ev = np.array([s.chargers["ev"].charge_w if "ev" in s.chargers else 0.0 for s in result.steps])
    hp = np.array(
        [s.heat_pumps["hp"].power_w if "hp" in s.heat_pumps else 0.0 for s in result.steps]
    )
    battery = np.array(
        [
            s.batteries["battery"].charge_w - s.batteries["battery"].discharge_w
            if "battery" in s.batteries
            else 0.0
            for s in result.steps
        ]
    )
    return ev, hp, battery


def household_requests(
    scenario: Scenario,
    limits: list[DayLimits] | None = None,
    heat_w: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Every flexible home's own plan, per day: EV, heat-pump and battery W per step.

    `heat_w` (homes x steps): the heat pumps keep these schedules (the ones the
    collective plan was made with) instead of re-planning them under the limits: a pump
    moved to where the limits only left room for a car takes that car's room, and
    outside the cars' windows nothing limits it, so moved pumps pile up."""
    homes = scenario.homes
    sessions = _sessions_by_day(scenario)
    jobs: list[tuple[int, int, PlanningProblem]] = []
    for day in range(scenario.days):
        for home in range(homes.count):
            session = sessions.get((home, day))
            flexible = homes.hp_electric_w[home] > 0 or homes.battery_wh[home] > 0
            if session is None and not flexible:
                continue
            limit = None if limits is None else limits[day].get(home)
            window = slice(day * STEPS_PER_DAY, (day + 1) * STEPS_PER_DAY)
            fixed = None if heat_w is None else heat_w[home, window]
            jobs.append(
                (home, day, _problem(scenario, home, day, session, limit, fixed_heat_w=fixed))
            )
    shape = (homes.count, scenario.n_steps)
    ev, battery = np.zeros(shape), np.zeros(shape)
    hp = np.zeros(shape) if heat_w is None else heat_w.copy()
    results = [_solve(problem) for _, _, problem in jobs]
    for (home, day, _), (ev_w, hp_w, battery_w) in zip(jobs, results, strict=True):
        window = slice(day * STEPS_PER_DAY, (day + 1) * STEPS_PER_DAY)
        ev[home, window], battery[home, window] = ev_w, battery_w
        if heat_w is None:
            hp[home, window] = hp_w
    return ev, hp, battery


def heat_pump_schedules(scenario: Scenario) -> FloatArray:
    """Each heat pump's own on/off schedule (W per step), planned without the car.

    The collective plan takes it as inflexible load: a continuous share of a heat pump
    in a limit cannot be used by a pump that runs at rated power with two starts a day,
    so the household's own schedule (which keeps those rules) is what the limits leave
    room for; the cars and batteries carry the coordination."""
    homes = scenario.homes
    heat = np.zeros((homes.count, scenario.n_steps))
    for day in range(scenario.days):
        window = slice(day * STEPS_PER_DAY, (day + 1) * STEPS_PER_DAY)
        for home in np.flatnonzero(homes.hp_electric_w > 0):
            _, heat[home, window], _ = _solve(_problem(scenario, int(home), day, None, None))
    return heat


def collective_limits(
    scenario: Scenario, heat_w: FloatArray | None = None
) -> tuple[list[DayLimits], list[float]]:
    """The collective plan's limits per day, and the planned members' peak per day (W).

    `heat_w`: the heat pumps' own schedules (`heat_pump_schedules`, computed if None)."""
    homes = scenario.homes
    sessions = _sessions_by_day(scenario)
    if heat_w is None:
        heat_w = heat_pump_schedules(scenario)
    per_day: list[DayLimits] = []
    peaks: list[float] = []
    for day in range(scenario.days):
        offset = day * STEPS_PER_DAY
        window = slice(offset, offset + STEPS_PER_DAY)
        envelopes: dict[int, list[ShiftableEnergy]] = defaultdict(list)
        for home in range(homes.count):
            session = sessions.get((home, day))
            if session is not None:
                envelopes[home].append(
                    ShiftableEnergy(
                        name="ev",
                        energy_wh=session.energy_wh,
                        max_power_w=float(homes.ev_max_w[home]),
                        min_power_w=float(homes.ev_min_w[home]),
                        start_step=session.start_step - offset,
                        end_step=session.end_step - offset,
                    )
                )
        baseline = homes.base_forecast_w[:, window] + heat_w[:, window] - homes.pv_w[:, window]
        headroom_w = (
            FORECAST_ERROR_SIGMAS * homes.noise * homes.base_forecast_w[:, window].max(axis=1)
        )
        households = tuple(
            CollectiveHousehold(
                household_id=homes.ids[home],
                baseline_w=tuple(
                    np.clip(baseline[home], -homes.limit_w[home], homes.limit_w[home]).tolist()
                ),
                import_limit_w=float(homes.limit_w[home]),
                export_limit_w=float(homes.limit_w[home]),
                envelopes=tuple(envelopes[home]),
                batteries=_batteries(scenario, home),
                limit_headroom_w=float(headroom_w[home]),
            )
            for home in range(homes.count)
        )
        caps = (scenario.cap_w * (1 - PLANNING_MARGIN),) * STEPS_PER_DAY
        result = plan_collective(
            CollectiveProblem(
                start=scenario.step_start(offset),
                import_price_eur_per_kwh=tuple(scenario.import_price[window].tolist()),
                export_price_eur_per_kwh=tuple(scenario.export_price[window].tolist()),
                transformer_import_cap_w=caps,
                transformer_export_cap_w=caps,
                non_member_load_w=(scenario.non_member_w,) * STEPS_PER_DAY,
                households=households,
                sharing_rule=scenario.spec.sharing_rule,
            )
        )
        per_day.append(
            {
                home: outcome.limit
                for home, outcome in enumerate(result.households)
                if outcome.limit.intervals
            }
        )
        peaks.append(max(result.members_w) + scenario.non_member_w)
    return per_day, peaks
