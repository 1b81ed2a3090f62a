"""The household planner: `plan(problem) -> Plan`, exact and fast.

Binaries are only needed where the LP relaxation breaks a rule (simultaneous import
and export, charge and discharge, or charging below the minimum power). Complementarity
binaries start on every step where prices make burning energy pay (negative prices,
export above import); on a day without such steps the first round is the LP relaxation
of everything. Each round imposes integrality on the steps that broke a rule and
re-solves until no rule is broken. Each round solves a relaxation of the full MILP, so a
round whose answer breaks no rule (with the on/off pumps' windows integer) is optimal for
the full MILP: the result is exact. After a few rounds we impose every binary at once,
which bounds the work.

Thermally modelled heat pumps are planned on their 1R1C model (LP for modulating and
hybrid pumps, binaries only for on/off pumps, or for a modulating pump whose LP plan
restarts it more often than its daily budget or runs it below its minimum). Their "no
intervention" run is priced with the same cost function; when the optimum is not
cheaper, or keeps comfort less well, that run is the plan (the pumps get no request).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from scipy.optimize import (
    Bounds,
    LinearConstraint,
    milp,
)

from ..model import BatterySetpoint, ChargerSetpoint, HeatPumpSetpoint, PvSetpoint
from .baseline import Schedule, baseline_schedule, heat_figure_steps, schedule_cost
from .grid_caps import step_caps
from .heat import comfort_shortfall_kh, heat_figures
from .milp import BinarySteps, Model, StorageVars, build_model, running_min_kw
from .problem import (
    BatteryStep,
    ChargerStep,
    HeatPumpControl,
    HeatPumpStep,
    Plan,
    PlanningProblem,
    PlanStatus,
    PlanStep,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..model import Setpoint
    from .problem import PlanThermalHeatPump

_LOGGER = logging.getLogger(__name__)

# kW below which a value counts as zero when checking the rules (HiGHS works to 1e-7).
RULE_TOLERANCE_KW = 1e-5
INCREMENTAL_ROUNDS = 4
# The exactness bound. At 1e-7 the peak tie-break alone made HiGHS enumerate a flat
# price's equal schedules: a car with a 6 A minimum and a battery, 52 steps, took 54 s CPU
# (0.7 s at 1e-6).
MIP_REL_GAP = 1e-6
TIME_LIMIT_S = 30.0
# A plan may cost this much (relative, and EUR) above no intervention: solver tolerance.
NO_INTERVENTION_TOLERANCE = 1e-7
COMFORT_TOLERANCE_KH = 1e-6
NOT_PROVEN = "time limit reached: the best plan found, not proven optimal"
INFEASIBLE = "the planning problem is infeasible within the limits"
# HiGHS options (bench/planner_vs_reference.py, CPU time). Its local-search heuristics only
# look for incumbents (branch and bound still proves the optimum) and cost time here.
HIGHS_OPTIONS: dict[str, float | bool] = {
    "mip_rel_gap": MIP_REL_GAP,
    "time_limit": TIME_LIMIT_S,
    "mip_heuristic_effort": 0.0,
    "mip_heuristic_run_feasibility_jump": False,
    "mip_heuristic_run_root_reduced_cost": False,
}
# A MILP with up to this many integer columns (a day) is proven optimal within a second or
# two; there the sub-MIP heuristics (RINS, RENS) cost 2-3x the time of an on/off pump's
# day and strong branching on one candidate suffices (23 % less CPU on seven such days).
# A larger one (an on/off week) may reach the time limit, and then its sub-MIPs find the
# better plan (week 0: 47.72 against 48.05 EUR without them after 30 s).
SMALL_MILP_INTEGERS = 300
SMALL_MILP_OPTIONS: dict[str, float | bool] = HIGHS_OPTIONS | {
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_pscost_minreliable": 1,
}


def plan(problem: PlanningProblem, *, pv_device_id: str | None = None) -> Plan:
    """The cheapest schedule within every limit; a fallback plan if none can be found.

    `pv_device_id`, when given, receives a `PvSetpoint` in each step (curtailment).
    """
    # Complementarity binaries start where burning energy pays (negative prices): the LP
    # relaxation burns there on nearly every such day (27 of 28 sampled in the bench's
    # year). Without such steps the first round relaxes every binary: an LP that finds
    # where a limit forces a rule to break.
    binaries = BinarySteps.where_losses_pay(problem)
    relaxed = binaries.count() == 0
    rounds = 0
    while True:
        rounds += 1
        model = build_model(problem, binaries)
        solution = _solve(model, relaxed=relaxed)
        if solution is None:
            return fallback_plan(problem, INFEASIBLE)
        broken = _impose_broken_rules(problem, model, solution, binaries)
        # A relaxed round with integer columns (on/off pumps) proves nothing yet.
        if not broken and not (relaxed and model.integrality.any()):
            break
        relaxed = False
        if rounds == INCREMENTAL_ROUNDS:
            binaries = BinarySteps.all(problem)
    result = _plan_from_solution(
        problem,
        model=model,
        x=solution,
        rounds=rounds,
        binaries_used=binaries.count(),
        pv_device_id=pv_device_id,
    )
    if not model.proven_optimal:
        result = replace(result, reason="; ".join(filter(None, (result.reason, NOT_PROVEN))))
    if problem.thermal_heat_pumps and not _beats_no_intervention(problem, model, solution, result):
        return fallback_plan(
            problem,
            "no intervention: nothing is cheaper with comfort kept",
            status=PlanStatus.OPTIMAL,
        )
    return result


def _beats_no_intervention(
    problem: PlanningProblem, model: Model, x: NDArray[np.float64], result: Plan
) -> bool:
    """Whether the plan costs no more than doing nothing and keeps comfort as well.

    Doing nothing that breaks an import limit is no alternative: the plan then stands.
    """
    schedule = baseline_schedule(problem)
    caps = step_caps(problem)
    if (np.clip(schedule.net_w, 0.0, None) / 1000 > caps.import_kw + 1e-9).any():
        return True
    baseline = schedule_cost(problem, schedule).total_eur
    assert result.expected_cost_eur is not None
    margin = NO_INTERVENTION_TOLERANCE * (1 + abs(baseline))
    if result.expected_cost_eur > baseline + margin:
        return False
    dt = problem.step_hours
    for heat_pump, pump_vars, run in zip(
        problem.thermal_heat_pumps, model.thermal_pumps, schedule.thermal_runs, strict=True
    ):
        planned = comfort_shortfall_kh(heat_pump, x[pump_vars.indoor], dt)
        if planned > comfort_shortfall_kh(heat_pump, run.indoor_c, dt) + COMFORT_TOLERANCE_KH:
            return False
    return True


def fallback_plan(
    problem: PlanningProblem,
    reason: str,
    *,
    priced: bool = True,
    status: PlanStatus = PlanStatus.FALLBACK,
) -> Plan:
    """The simple rule: cars charge at full power on arrival, batteries run their own
    mode, heat pumps run as without Netbewust (no request; the guard has the last word).

    `priced` False: the problem's prices are placeholders, so every cost is unknown
    (None). Hosts log the fallback once per outage; here it is only a debug line.
    `status` OPTIMAL: this rule is the optimum (no intervention was cheapest).
    """
    _LOGGER.debug("Planner uses the simple rule: %s", reason)
    schedule = baseline_schedule(problem)
    thermal_rows = _thermal_baseline_rows(problem, schedule)
    cost = schedule_cost(problem, schedule) if priced else None
    steps = []
    for t in range(problem.n_steps):
        setpoints: dict[str, Setpoint] = {
            b.device_id: BatterySetpoint(None) for b in problem.batteries
        }
        chargers: dict[str, ChargerStep] = {}
        for index, charger in enumerate(problem.chargers):
            power = float(schedule.charger_w[index][t])
            chargers[charger.device_id] = ChargerStep(power, 0.0, 0.0)
            setpoints[charger.device_id] = _charger_setpoint(problem, charger.phases, power)
        heat_pumps: dict[str, HeatPumpStep] = {}
        for index, heat_pump in enumerate(problem.heat_pumps):
            on = bool(schedule.heat_pump_on[index][t])
            heat_pumps[heat_pump.device_id] = HeatPumpStep(on, heat_pump.rated_power_w * on)
        for device_id, power_w, boiler_w, indoor_c in thermal_rows:
            heat_pumps[device_id] = HeatPumpStep(
                bool(power_w[t] > 0), float(power_w[t]), float(boiler_w[t]), float(indoor_c[t])
            )
        net = float(schedule.net_w[t])
        steps.append(
            PlanStep(
                start=problem.step_start(t),
                import_w=max(net, 0.0),
                export_w=max(-net, 0.0),
                base_load_w=problem.base_load_w[t],
                pv_w=problem.pv_w[t],
                pv_curtailed_w=0.0,
                import_price_eur_per_kwh=problem.import_price_eur_per_kwh[t] if priced else None,
                export_price_eur_per_kwh=problem.export_price_eur_per_kwh[t] if priced else None,
                batteries={},
                chargers=chargers,
                heat_pumps=heat_pumps,
                setpoints=setpoints,
            )
        )
    return Plan(
        status=status,
        steps=tuple(steps),
        expected_cost_eur=cost.total_eur if cost else None,
        energy_cost_eur=cost.energy_eur if cost else None,
        peak_cost_eur=cost.peak_eur if cost else None,
        baseline_cost_eur=cost.total_eur if cost else None,
        reason=reason,
    )


def _thermal_baseline_rows(
    problem: PlanningProblem, schedule: Schedule
) -> list[tuple[str, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]]:
    """(device id, electric W incl. hot water, boiler heat W, indoor degC) per thermal pump."""
    rows = []
    for heat_pump, run in zip(problem.thermal_heat_pumps, schedule.thermal_runs, strict=True):
        dhw_kw = heat_figures(heat_pump).dhw_kw
        rows.append(
            (
                heat_pump.device_id,
                (run.electric_kw + dhw_kw) * 1000,
                run.boiler_heat_kw * 1000,
                run.indoor_c,
            )
        )
    return rows


def _solve(model: Model, *, relaxed: bool = False) -> NDArray[np.float64] | None:
    """HiGHS on the model; `relaxed`: as an LP (semi-continuous columns may then be 0)."""
    lower = model.lower
    integrality: NDArray[np.uint8] | None = model.integrality
    integers = int(np.count_nonzero(model.integrality))
    options = SMALL_MILP_OPTIONS if integers <= SMALL_MILP_INTEGERS else HIGHS_OPTIONS
    if relaxed or integers == 0:
        lower = np.where(model.integrality == 2, np.minimum(lower, 0.0), lower)
        integrality = None
    with warnings.catch_warnings():
        # HiGHS options scipy does not list are passed on verbatim, with a warning.
        warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
        result = milp(
            model.cost,
            integrality=integrality,
            bounds=Bounds(lower, model.upper),
            constraints=LinearConstraint(model.matrix, model.row_lower, model.row_upper),
            # scipy's stubs list only the options it documents; HiGHS takes the rest.
            options=cast("Any", options),
        )
    if result.x is None:
        _LOGGER.debug("HiGHS found no solution: %s", result.message)
        return None
    if int(result.status) != 0:  # the time limit: the best plan found, not proven optimal
        _LOGGER.debug("HiGHS stopped early: %s", result.message)
        model.proven_optimal = False
    return np.asarray(result.x, dtype=float)


def _impose_broken_rules(
    problem: PlanningProblem, model: Model, x: NDArray[np.float64], binaries: BinarySteps
) -> bool:
    """Mark the steps whose solution breaks a rule; whether any was new."""
    pairs = [(binaries.grid, (model.grid_import, model.grid_export))]
    for storage, mask in zip(model.batteries, binaries.batteries, strict=True):
        pairs.append((mask, (storage.charge, storage.discharge)))
    for sessions, masks in zip(model.sessions, binaries.sessions, strict=True):
        for storage, mask in zip(sessions, masks, strict=True):
            pairs.append((mask, (storage.charge, storage.discharge)))
    broken = False
    for mask, (first, second) in pairs:
        broken |= _mark(mask, _both_on(x, first, second))
    for charger, sessions, minimums in zip(
        problem.chargers, model.sessions, binaries.min_power, strict=True
    ):
        minimum_kw = charger.min_power_w / 1000
        for storage, minimum in zip(sessions, minimums, strict=True):
            if minimum_kw > 0:
                broken |= _mark(minimum, _below_minimum(x, storage, minimum_kw))
    for heat_pump, pump_vars, windows in zip(
        problem.thermal_heat_pumps, model.thermal_pumps, binaries.pump_windows, strict=True
    ):
        modulating = heat_pump.control is HeatPumpControl.MODULATING
        if modulating and not windows.any():
            windows[:] = _breaks_off_windows(heat_pump, x[pump_vars.power], problem.step_hours)
            broken |= bool(windows.any())
    return broken


def _breaks_off_windows(
    heat_pump: PlanThermalHeatPump, power_kw: NDArray[np.float64], dt: float
) -> bool:
    """Whether a modulating pump's plan needs its off windows imposed as binaries: a step
    below its running minimum, or more restarts in a day than allowed. Otherwise the plan
    already keeps the start budget and no binary is needed."""
    off = power_kw <= RULE_TOLERANCE_KW
    running = running_min_kw(heat_pump, heat_figures(heat_pump).space_max_kw)
    if (~off & (power_kw < running - RULE_TOLERANCE_KW)).any():
        return True
    restarts = np.flatnonzero(off[:-1] & ~off[1:]) + 1
    per_day = round(24 / dt)
    return bool(np.bincount(restarts // per_day, minlength=1).max() > heat_pump.max_windows_per_day)


def _mark(mask: NDArray[np.bool_], broken: NDArray[np.bool_]) -> bool:
    new = broken & ~mask
    np.logical_or(mask, new, out=mask)
    return bool(new.any())


def _both_on(
    x: NDArray[np.float64], first: NDArray[np.int64], second: NDArray[np.int64]
) -> NDArray[np.bool_]:
    if len(second) == 0:
        return np.zeros(len(first), dtype=bool)
    return np.minimum(x[first], x[second]) > RULE_TOLERANCE_KW


def _below_minimum(
    x: NDArray[np.float64], storage: StorageVars, minimum_kw: float
) -> NDArray[np.bool_]:
    broken = np.zeros(len(storage.charge), dtype=bool)
    for cols in (storage.charge, storage.discharge):
        if len(cols):
            values = x[cols]
            broken |= (values > RULE_TOLERANCE_KW) & (values < minimum_kw - RULE_TOLERANCE_KW)
    return broken


def _plan_from_solution(
    problem: PlanningProblem,
    *,
    model: Model,
    x: NDArray[np.float64],
    rounds: int,
    binaries_used: int,
    pv_device_id: str | None,
) -> Plan:
    n = problem.n_steps
    dt = problem.step_hours
    w = np.clip(x, 0.0, None) * 1000.0  # every planned quantity is >= 0; drop solver noise
    import_w = w[model.grid_import]
    export_w = w[model.grid_export]
    curtailed = np.zeros(n)
    curtailed[model.curtail_steps] = w[model.curtail]

    battery_rows = []
    for battery, storage in zip(problem.batteries, model.batteries, strict=True):
        charge = w[storage.charge]
        discharge = w[storage.discharge] if len(storage.discharge) else np.zeros(n)
        soc = x[storage.level] * 100_000.0 / battery.capacity_wh
        battery_rows.append((battery.device_id, charge, discharge, soc))

    charger_rows = []
    for charger, sessions in zip(problem.chargers, model.sessions, strict=True):
        charge, discharge, energy = np.zeros(n), np.zeros(n), np.zeros(n)
        for storage in sessions:
            charge[storage.steps] = w[storage.charge]
            if len(storage.discharge):
                discharge[storage.steps] = w[storage.discharge]
            energy[storage.steps] = x[storage.level] * 1000.0
        charger_rows.append((charger, charge, discharge, energy))

    heat_rows = [
        (hp.device_id, hp.rated_power_w, x[hp_vars.on] > 0.5, heat_figure_steps(hp, n))
        for hp, hp_vars in zip(problem.heat_pumps, model.heat_pumps, strict=True)
    ]

    thermal_rows = []
    for heat_pump, pump_vars in zip(problem.thermal_heat_pumps, model.thermal_pumps, strict=True):
        space_w = w[pump_vars.power]
        boiler_w = w[pump_vars.boiler] if len(pump_vars.boiler) else np.zeros(n)
        dhw_w = heat_figures(heat_pump).dhw_kw * 1000
        blocked = x[pump_vars.blocked] > 0.5 if len(pump_vars.blocked) else np.zeros(n, bool)
        thermal_rows.append((heat_pump, space_w, dhw_w, boiler_w, x[pump_vars.indoor], blocked))

    steps = []
    for t in range(n):
        setpoints: dict[str, Setpoint] = {}
        batteries: dict[str, BatteryStep] = {}
        for device_id, charge, discharge, soc in battery_rows:
            batteries[device_id] = BatteryStep(float(charge[t]), float(discharge[t]), float(soc[t]))
            setpoints[device_id] = BatterySetpoint(float(charge[t] - discharge[t]))
        chargers: dict[str, ChargerStep] = {}
        for charger, charge, discharge, energy in charger_rows:
            chargers[charger.device_id] = ChargerStep(
                float(charge[t]), float(discharge[t]), float(energy[t])
            )
            setpoints[charger.device_id] = _charger_setpoint(
                problem, charger.phases, float(charge[t] - discharge[t])
            )
        heat_pumps: dict[str, HeatPumpStep] = {}
        for device_id, rated_w, on, steered in heat_rows:
            heat_pumps[device_id] = HeatPumpStep(bool(on[t]), rated_w * bool(on[t]))
            if steered[t]:  # without a heat figure the pump follows its own thermostat
                setpoints[device_id] = HeatPumpSetpoint(bool(on[t]))
        for heat_pump, space_w, dhw_w, boiler_w, indoor_c, blocked in thermal_rows:
            space = float(space_w[t])
            power = space + float(dhw_w[t])
            heat_pumps[heat_pump.device_id] = HeatPumpStep(
                power > RULE_TOLERANCE_KW * 1000, power, float(boiler_w[t]), float(indoor_c[t])
            )
            setpoints[heat_pump.device_id] = _thermal_setpoint(heat_pump, power, bool(blocked[t]))
        if pv_device_id is not None:
            limit = problem.pv_w[t] - curtailed[t] if curtailed[t] > 1.0 else None
            setpoints[pv_device_id] = PvSetpoint(limit)
        steps.append(
            PlanStep(
                start=problem.step_start(t),
                import_w=float(import_w[t]),
                export_w=float(export_w[t]),
                base_load_w=problem.base_load_w[t],
                pv_w=problem.pv_w[t],
                pv_curtailed_w=float(curtailed[t]),
                import_price_eur_per_kwh=problem.import_price_eur_per_kwh[t],
                export_price_eur_per_kwh=problem.export_price_eur_per_kwh[t],
                batteries=batteries,
                chargers=chargers,
                heat_pumps=heat_pumps,
                setpoints=setpoints,
            )
        )

    energy_cost = float(
        np.dot(problem.import_price_eur_per_kwh, import_w)
        - np.dot(problem.export_price_eur_per_kwh, export_w)
    ) * (dt / 1000)
    for heat_pump, _, _, boiler_w, _, _ in thermal_rows:
        if heat_pump.boiler is not None:
            heat_kwh = float(boiler_w.sum()) * dt / 1000
            energy_cost += heat_kwh * heat_pump.boiler.heat_price_eur_per_kwh
    peak_cost = _peak_cost(problem, float(import_w.max()))
    baseline = schedule_cost(problem, baseline_schedule(problem))
    shortfall_wh = _shortfalls(problem, model, x)
    reason = "; ".join(f"{device} short of {wh:.0f} Wh" for device, wh in shortfall_wh.items())
    return Plan(
        status=PlanStatus.OPTIMAL,
        steps=tuple(steps),
        expected_cost_eur=energy_cost + peak_cost,
        energy_cost_eur=energy_cost,
        peak_cost_eur=peak_cost,
        baseline_cost_eur=baseline.total_eur,
        reason=reason,
        solver_rounds=rounds,
        binaries_used=binaries_used,
    )


def _thermal_setpoint(
    heat_pump: PlanThermalHeatPump, power_w: float, blocked: bool
) -> HeatPumpSetpoint:
    """A modulating pump gets its planned power as a limit (hot water's reserve included);
    an on/off pump is blocked (off: SG-Ready block) or left to its thermostat (on)."""
    if heat_pump.control is HeatPumpControl.ON_OFF:
        return HeatPumpSetpoint(not blocked)
    return HeatPumpSetpoint(power_w > RULE_TOLERANCE_KW * 1000, power_w)


def _peak_cost(problem: PlanningProblem, peak_w: float) -> float:
    tariff = problem.tariff
    return tariff.peak_price_eur_per_kw * max(0.0, peak_w - tariff.peak_already_w) / 1000


def _shortfalls(problem: PlanningProblem, model: Model, x: NDArray[np.float64]) -> dict[str, float]:
    """Energy the plan could not deliver (Wh, device id -> amount), when a need is impossible."""
    short: dict[str, float] = {}
    for charger, sessions in zip(problem.chargers, model.sessions, strict=True):
        total = sum(x[s.shortfall] for s in sessions if s.shortfall is not None) * 1000
        if total > 1.0:
            short[charger.device_id] = float(total)
    for heat_pump, hp_vars in zip(problem.heat_pumps, model.heat_pumps, strict=True):
        total = float(x[hp_vars.shortfalls].sum()) * 1000
        if total > 1.0:
            short[heat_pump.device_id] = total
    return short


def _charger_setpoint(
    problem: PlanningProblem, phases: tuple[int, ...], power_w: float
) -> ChargerSetpoint:
    """Current per phase for a power; negative means discharging (V2G)."""
    volts = problem.connection.nominal_voltage_v
    return ChargerSetpoint(current_a=power_w / (volts * len(phases)), phases=len(phases))
