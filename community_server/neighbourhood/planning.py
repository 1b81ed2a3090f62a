"""The planning engines applied to a scenario.

- `household_requests`: every home's own planner (`netbewust_core.planning.planner.plan`)
  on the prices and its profile forecast; the plan's charger, heat-pump, boiler and
  battery powers become the requests the real-time layer follows. Alone, a home plans
  the whole period at once (its car sessions, battery and its heat pump on the
  building's thermal model, `PlanThermalHeatPump`); under community limits it plans
  day by day (local noon to noon), its heat pump's schedule fixed.
- `heat_pump_schedules`: each heat pump's own thermal plan for the period (no car),
  which the collective plan takes as fixed load for an on/off pump.
- `collective_plan` (`collective_limits`: its limits): the collective day-ahead planner
  (`plan_collective`) on the members' baselines (forecast base load, PV), envelopes
  (EV sessions), batteries and each modulating pump as a leaky thermal store (the
  protocol's `HeatPumpFlexibility`, as a member sends it), against the cap less
  `PLANNING_MARGIN`, a day at a time looking `LOOKAHEAD_DAYS` ahead; each home's limit
  for the day is its planned power plus `FORECAST_ERROR_SIGMAS` of its base-load noise,
  and its pump runs the plan's heat.

A heat pump's own plan is the engine's: never dearer than its own thermostat and never
colder below the comfort band, by the home's own model (`planning.planner`); the
collective plan keeps each home in its band by the same model (comfort below it is
priced above a car's energy).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from community_server.heat_pump_stores import thermal_store
from netbewust_core.collective.planner import plan_collective
from netbewust_core.collective.problem import (
    CollectiveHousehold,
    CollectiveProblem,
    ShiftableEnergy,
)
from netbewust_core.model import Connection
from netbewust_core.planning.planner import plan
from netbewust_core.planning.problem import (
    HeatPumpControl,
    PlanBattery,
    PlanCharger,
    PlanEvSession,
    PlanningProblem,
    PlanThermalHeatPump,
)
from netbewust_core.protocol.session import ThermalPump, heat_pump_flexibility
from netbewust_core.thermal import ComfortBand
from netbewust_core.units import NOMINAL_VOLTAGE_V

from .scenario import STEPS_PER_DAY, day_parts
from .spec import PumpControl

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from netbewust_core.collective.problem import ThermalStore
    from netbewust_core.limits import ExternalLimit

    from .scenario import EvSession, Scenario

    FloatArray = NDArray[np.float64]

DayLimits = dict[int, "ExternalLimit"]  # home index -> its community limit for the day
# The day-ahead plan keeps this share of the cap free: the live allocation aims 3 %
# below the cap and the real base load scatters around its forecast.
PLANNING_MARGIN = 0.05
# A home's limit sits this many standard deviations of its minute base load above its
# planned power: otherwise base load above its forecast eats the car's share, and a car
# planned at its 6 A minimum pauses altogether. The planning margin pays for the few
# homes above forecast at once; the live allocation holds the cap regardless.
FORECAST_ERROR_SIGMAS = 3.0
# Days the collective plan looks beyond the day it limits.
LOOKAHEAD_DAYS = 1


@dataclass(frozen=True, slots=True)
class HomePlans:
    """What the homes' plans ask, W per home and step (homes x steps)."""

    ev_w: FloatArray
    hp_w: FloatArray
    battery_w: FloatArray  # + charges
    boiler_w: FloatArray  # a hybrid's planned boiler heat


def _sessions_by_day(scenario: Scenario) -> dict[tuple[int, int], list[EvSession]]:
    """Each home's sessions per day, cut at the days' ends (`day_parts`)."""
    by_day: dict[tuple[int, int], list[EvSession]] = defaultdict(list)
    for part in day_parts(scenario.homes.sessions, STEPS_PER_DAY):
        by_day[part.home, part.start_step // STEPS_PER_DAY].append(part)
    return by_day


def thermal_pump(scenario: Scenario, home: int, window: slice) -> PlanThermalHeatPump | None:
    """The home's heat pump on its building's model over `window`, from the set point."""
    buildings = scenario.homes.buildings
    model = None if buildings is None else buildings.models[home]
    if buildings is None or model is None:
        return None
    band = model.comfort
    phases = (1, 2, 3) if scenario.homes.phases[home] == 3 else (1,)
    return PlanThermalHeatPump(
        device_id="hp",
        thermal=model.thermal,
        cop=model.cop,
        max_power_w=model.max_power_w,
        min_power_w=model.min_power_w,
        outdoor_temperature_c=tuple(buildings.outdoor_c[window].tolist()),
        comfort=ComfortBand(band.setpoint_c[window], band.lower_c[window], band.upper_c[window]),
        indoor_temperature_c=float(buildings.initial_c[home]),
        control=(
            HeatPumpControl.ON_OFF
            if model.control is PumpControl.ON_OFF
            else HeatPumpControl.MODULATING
        ),
        boiler=model.boiler,
        phases=phases,
    )


def _problem(
    scenario: Scenario,
    home: int,
    window: slice,
    sessions: list[EvSession],
    limit: ExternalLimit | None,
    *,
    fixed_heat_w: FloatArray | None = None,
) -> PlanningProblem:
    """The home over `window` (steps); `fixed_heat_w` (W per step of the window): the
    heat pump keeps that schedule and is load, not a device to plan."""
    homes = scenario.homes
    offset = window.start
    # The real-time layer holds a home's total within its connection (its phases
    # balanced), so the plan sees every device on all of the home's phases too.
    phases = (1, 2, 3) if homes.phases[home] == 3 else (1,)
    chargers: tuple[PlanCharger, ...] = ()
    if sessions:
        chargers = (
            PlanCharger(
                device_id="ev",
                max_power_w=float(homes.ev_max_w[home]),
                min_power_w=float(homes.ev_min_w[home]),
                phases=phases if homes.ev_phases[home] == 3 else (1,),
                sessions=tuple(
                    PlanEvSession(
                        start_step=session.start_step - offset,
                        end_step=session.end_step - offset,
                        energy_wh=session.energy_wh,
                        max_power_w=session.max_w,
                    )
                    for session in sessions
                ),
            ),
        )
    pump = thermal_pump(scenario, home, window) if fixed_heat_w is None else None
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
        thermal_heat_pumps=() if pump is None else (pump,),
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


def _solve(problem: PlanningProblem) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(EV, heat pump, battery, boiler heat) W per step of the home's plan."""
    result = plan(problem)
    ev = np.array([s.chargers["ev"].charge_w if "ev" in s.chargers else 0.0 for s in result.steps])
    pump = [s.heat_pumps.get("hp") for s in result.steps]
    hp = np.array([0.0 if p is None else p.power_w for p in pump])
    boiler = np.array([0.0 if p is None else p.boiler_heat_w for p in pump])
    battery = np.array(
        [
            s.batteries["battery"].charge_w - s.batteries["battery"].discharge_w
            if "battery" in s.batteries
            else 0.0
            for s in result.steps
        ]
    )
    return ev, hp, battery, boiler


def household_requests(
    scenario: Scenario,
    limits: list[DayLimits] | None = None,
    heat: HomePlans | None = None,
) -> HomePlans:
    """Every flexible home's own plan: EV, heat-pump, battery and boiler W per step.

    Without limits each home plans the whole period at once. With `limits` (per day) it
    plans each day under that day's limit, and the heat pumps keep `heat` (by default
    `heat_pump_schedules`, the ones the collective plan was made with) instead of
    re-planning them under the limits: a pump moved to where the limits only left room
    for a car takes that car's room, and outside the cars' windows nothing limits it, so
    moved pumps pile up. A pump's plan also needs the whole period: a day planned alone
    would start from the set point, not from where the day before left the home."""
    homes = scenario.homes
    if limits is not None and heat is None:
        heat = heat_pump_schedules(scenario)
    days = 1 if limits is None else scenario.days
    span = scenario.n_steps // days
    by_day: dict[tuple[int, int], list[EvSession]] = defaultdict(list)
    for session in day_parts(homes.sessions, span):
        by_day[session.home, session.start_step // span].append(session)
    jobs: list[tuple[int, slice, PlanningProblem]] = []
    for day in range(days):
        window = slice(day * span, (day + 1) * span)
        for home in range(homes.count):
            sessions = by_day.get((home, day), [])
            flexible = homes.hp_electric_w[home] > 0 or homes.battery_wh[home] > 0
            if not sessions and not flexible:
                continue
            limit = None if limits is None else limits[day].get(home)
            fixed = None if heat is None else heat.hp_w[home, window]
            jobs.append(
                (
                    home,
                    window,
                    _problem(scenario, home, window, sessions, limit, fixed_heat_w=fixed),
                )
            )
    shape = (homes.count, scenario.n_steps)
    ev, battery = np.zeros(shape), np.zeros(shape)
    hp = np.zeros(shape) if heat is None else heat.hp_w.copy()
    boiler = np.zeros(shape) if heat is None else heat.boiler_w.copy()
    for home, window, problem in jobs:
        ev_w, hp_w, battery_w, boiler_w = _solve(problem)
        ev[home, window], battery[home, window] = ev_w, battery_w
        if heat is None:
            hp[home, window], boiler[home, window] = hp_w, boiler_w
    return HomePlans(ev, hp, battery, boiler)


def heat_pump_schedules(scenario: Scenario) -> HomePlans:
    """Each heat pump's own plan for the period (W per step), made without the car.

    The collective plan takes it as inflexible load: the household's own schedule (on
    its thermal model, never dearer or colder than its thermostat) is what the limits
    leave room for; the cars and batteries carry the coordination."""
    homes = scenario.homes
    shape = (homes.count, scenario.n_steps)
    hp, boiler = np.zeros(shape), np.zeros(shape)
    everything = slice(0, scenario.n_steps)
    for home in np.flatnonzero(homes.hp_electric_w > 0):
        _, hp[home], _, boiler[home] = _solve(_problem(scenario, int(home), everything, [], None))
    return HomePlans(np.zeros(shape), hp, np.zeros(shape), boiler)


@dataclass(frozen=True, slots=True)
class CollectivePlan:
    """The collective plan as the homes receive it: per day each home's limit, the
    members' planned peak per day (W), and the heat each pump is to deliver: the
    plan's own for a modulating pump, the home's own schedule for an on/off one."""

    limits: list[DayLimits]
    peaks: list[float]
    heat: HomePlans


def _store(
    scenario: Scenario, home: int, window: slice, indoor_c: float
) -> tuple[ThermalStore, float]:
    """The home's pump over `window` as the protocol describes it (`HeatPumpFlexibility`,
    what a real member sends) and as the collective planner takes it; also the reference
    temperature its stored heat counts from."""
    pump = thermal_pump(scenario, home, window)
    if pump is None:
        raise ValueError(f"home {home} has no thermal model")
    pump = replace(pump, indoor_temperature_c=indoor_c)
    start = scenario.step_start(window.start)
    flexibility = heat_pump_flexibility(ThermalPump(start=start, row=pump))
    steps = window.stop - window.start
    return thermal_store(flexibility, start, steps, "hp"), min(pump.comfort.lower_c)


def collective_plan(scenario: Scenario, heat: HomePlans | None = None) -> CollectivePlan:
    """The collective plan day by day, every modulating heat pump in it as its home's
    leaky thermal store (each day from where the plan left the home the day before).

    `heat`: the pumps' own schedules (`heat_pump_schedules`, computed if None when the
    street has on/off pumps), which the plan takes as load for on/off pumps: only the
    home's planner can keep an on/off pump's integer starts."""
    homes = scenario.homes
    sessions = _sessions_by_day(scenario)
    models = () if homes.buildings is None else homes.buildings.models
    stores = [
        home
        for home, model in enumerate(models)
        if model is not None and model.control is PumpControl.MODULATING
    ]
    on_off = [home for home, model in enumerate(models) if model is not None and home not in stores]
    shape = (homes.count, scenario.n_steps)
    fixed_w = np.zeros(shape)
    if on_off:
        own = heat_pump_schedules(scenario) if heat is None else heat
        fixed_w[on_off] = own.hp_w[on_off]
        planned = HomePlans(np.zeros(shape), own.hp_w.copy(), np.zeros(shape), own.boiler_w.copy())
    else:
        planned = HomePlans(np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape))
    indoor = {} if homes.buildings is None else dict(enumerate(homes.buildings.initial_c))
    per_day: list[DayLimits] = []
    peaks: list[float] = []
    for day in range(scenario.days):
        offset = day * STEPS_PER_DAY
        # The day's plan looks a day further, so it does not leave the homes at their
        # band's bottom (or the cars' room used) for a colder day to pay for.
        window = slice(offset, min(offset + (1 + LOOKAHEAD_DAYS) * STEPS_PER_DAY, scenario.n_steps))
        steps = window.stop - window.start
        envelopes: dict[int, list[ShiftableEnergy]] = defaultdict(list)
        for home in range(homes.count):
            day_sessions = [
                s for d in range(day, day + 1 + LOOKAHEAD_DAYS) for s in sessions.get((home, d), ())
            ]
            for number, session in enumerate(day_sessions):
                envelopes[home].append(
                    ShiftableEnergy(
                        name=f"ev-{number}",
                        energy_wh=session.energy_wh,
                        max_power_w=float(
                            homes.ev_max_w[home] if session.max_w is None else session.max_w
                        ),
                        min_power_w=float(homes.ev_min_w[home]),
                        start_step=session.start_step - offset,
                        end_step=session.end_step - offset,
                    )
                )
        thermal = {home: _store(scenario, home, window, float(indoor[home])) for home in stores}
        baseline = homes.base_forecast_w[:, window] + fixed_w[:, window] - homes.pv_w[:, window]
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
                thermal_stores=(thermal[home][0],) if home in thermal else (),
            )
            for home in range(homes.count)
        )
        caps = (scenario.cap_w * (1 - PLANNING_MARGIN),) * steps
        result = plan_collective(
            CollectiveProblem(
                start=scenario.step_start(offset),
                import_price_eur_per_kwh=tuple(scenario.import_price[window].tolist()),
                export_price_eur_per_kwh=tuple(scenario.export_price[window].tolist()),
                transformer_import_cap_w=caps,
                transformer_export_cap_w=caps,
                non_member_load_w=tuple(scenario.non_member_w[window].tolist()),
                households=households,
                sharing_rule=scenario.spec.sharing_rule,
            )
        )
        today = slice(offset, offset + STEPS_PER_DAY)
        for home, (_, reference_c) in thermal.items():
            outcome = result.households[home]
            planned.hp_w[home, today] = outcome.heat_pump_w[0][:STEPS_PER_DAY]
            planned.boiler_w[home, today] = outcome.boiler_heat_w[0][:STEPS_PER_DAY]
            model = models[home]
            assert model is not None  # a store is only made for a modelled home
            capacity = model.thermal.capacitance_kwh_per_k
            end_kwh = outcome.stored_heat_kwh[0][STEPS_PER_DAY - 1]
            indoor[home] = reference_c + end_kwh / capacity
        per_day.append(
            {
                home: outcome.limit
                for home, outcome in enumerate(result.households)
                if outcome.limit.intervals
            }
        )
        members = np.add(result.members_w[:STEPS_PER_DAY], scenario.non_member_w[today])
        peaks.append(float(np.max(members)))
    return CollectivePlan(per_day, peaks, planned)


def collective_limits(
    scenario: Scenario, heat: HomePlans | None = None
) -> tuple[list[DayLimits], list[float]]:
    """The collective plan's limits per day, and the planned members' peak per day (W)
    (`collective_plan`)."""
    plan_ = collective_plan(scenario, heat)
    return plan_.limits, plan_.peaks
