"""An independent full MILP of a home with a thermally modelled heat pump, from the equations.

Built here with scipy.optimize.milp, without netbewust_core.planning.milp: grid import and
export (never both: a binary per step), the pump's electric power, a hybrid's boiler heat,
the 1R1C indoor temperature, the soft comfort band, the comfort budget of no intervention,
the money budget (never dearer than no intervention), for an on/off pump its block
windows (default lengths) and for a modulating one its restarts per day (off, or at least
its minimum power or the shared share of its maximum). Only the constants (penalties,
tie-break, that share) and no intervention (its run and its cost) are shared with the
engine, so the two must agree on the optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from netbewust_core.planning.baseline import baseline_schedule, schedule_cost
from netbewust_core.planning.grid_caps import step_caps
from netbewust_core.planning.heat import no_intervention
from netbewust_core.planning.milp import (
    COMFORT_BUDGET_PENALTY_EUR_PER_KH,
    COMFORT_PENALTY_EUR_PER_KH,
    MONEY_BUDGET_PENALTY,
    RUNNING_MIN_FRACTION,
    TIE_BREAK_FRACTION,
)
from netbewust_core.planning.problem import HeatPumpControl, PlanningProblem
from netbewust_core.thermal import degree_hours_below


@dataclass(frozen=True)
class Reference:
    objective_eur: float  # money + comfort penalties + tie-break
    money_eur: float


def tie_break(problem: PlanningProblem) -> float:
    imp = np.abs(problem.import_price_eur_per_kwh).mean()
    exp = np.abs(problem.export_price_eur_per_kwh).mean()
    return TIE_BREAK_FRACTION * max(float(imp + exp) / 2, 0.01) * problem.step_hours


def objective_of(
    problem: PlanningProblem,
    *,
    import_w: np.ndarray,
    export_w: np.ndarray,
    boiler_w: np.ndarray,
    indoor_c: np.ndarray,
    blocked: np.ndarray | None,
) -> float:
    """The model's objective for a schedule, recomputed from its quantities.

    Without the two budgets' slacks: no intervention is feasible, so an optimum never
    uses them, and recomputed from temperatures that carry the solver's feasibility
    tolerance (1e-6 per row) their penalty of 1000 would turn that noise into cents.
    """
    (hp,) = problem.thermal_heat_pumps
    dt = problem.step_hours
    imp_price = np.asarray(problem.import_price_eur_per_kwh)
    exp_price = np.asarray(problem.export_price_eur_per_kwh)
    money = float(imp_price @ import_w - exp_price @ export_w) * dt / 1000
    if hp.boiler is not None:
        money += float(boiler_w.sum()) * dt / 1000 * hp.boiler.heat_price_eur_per_kwh
    lower = np.asarray(hp.comfort.lower_c)
    upper = np.asarray(hp.comfort.upper_c)
    below = np.clip(lower - indoor_c, 0, None)
    above = np.clip(indoor_c - upper, 0, None)
    penalty = COMFORT_PENALTY_EUR_PER_KH * dt * float(below.sum() + above.sum())
    if blocked is not None:
        setpoint = np.asarray(hp.comfort.setpoint_c)
        floor = setpoint - (setpoint - lower) * blocked
        penalty += COMFORT_PENALTY_EUR_PER_KH * dt * float(np.clip(floor - indoor_c, 0, None).sum())
    peaks = tie_break(problem) * (float(import_w.max()) + float(export_w.max())) / 1000
    return money + penalty + peaks


def reference_optimum(problem: PlanningProblem) -> Reference:
    (hp,) = problem.thermal_heat_pumps
    n = problem.n_steps
    dt = problem.step_hours
    caps = step_caps(problem)
    imp_price = np.asarray(problem.import_price_eur_per_kwh)
    exp_price = np.asarray(problem.export_price_eur_per_kwh)
    outdoor = np.asarray(hp.outdoor_temperature_c)
    cop = np.array([hp.cop.cop(t) for t in outdoor])
    dhw = np.zeros(n) if hp.dhw_w is None else np.asarray(hp.dhw_w) / 1000
    p_max = np.clip(hp.max_power_w / 1000 - dhw, 0, None)
    boiler_max = 0.0 if hp.boiler is None else hp.boiler.max_heat_w / 1000
    gas = 0.0 if hp.boiler is None else hp.boiler.heat_price_eur_per_kwh
    lower = np.asarray(hp.comfort.lower_c)
    upper = np.asarray(hp.comfort.upper_c)
    setpoint = np.asarray(hp.comfort.setpoint_c)
    on_off = hp.control is HeatPumpControl.ON_OFF
    a = hp.thermal.decay(dt)
    r = hp.thermal.resistance_k_per_kw
    budget = degree_hours_below(no_intervention(hp, dt).indoor_c, lower, dt)

    # Column blocks, each n long unless noted.
    names = ["imp", "exp", "z", "p", "g", "T", "below", "above", "blk", "start"]
    if on_off:
        names += ["short"]
    col = {name: np.arange(i * n, (i + 1) * n) for i, name in enumerate(names)}
    extra = len(names) * n
    peak_imp, peak_exp, slack, money_slack = extra, extra + 1, extra + 2, extra + 3
    size = extra + 4
    cost = np.zeros(size)
    lo = np.zeros(size)
    hi = np.full(size, np.inf)
    integ = np.zeros(size, dtype=np.uint8)
    cost[col["imp"]] = imp_price * dt
    cost[col["exp"]] = -exp_price * dt
    hi[col["imp"]] = caps.import_kw
    hi[col["exp"]] = caps.export_kw
    hi[col["z"]] = 1
    integ[col["z"]] = 1
    hi[col["p"]] = p_max
    hi[col["g"]] = boiler_max
    cost[col["g"]] = gas * dt
    lo[col["T"]] = -np.inf
    cost[col["below"]] = COMFORT_PENALTY_EUR_PER_KH * dt
    cost[col["above"]] = COMFORT_PENALTY_EUR_PER_KH * dt
    cost[[peak_imp, peak_exp]] = tie_break(problem)
    cost[slack] = COMFORT_BUDGET_PENALTY_EUR_PER_KH
    cost[money_slack] = MONEY_BUDGET_PENALTY
    hi[col["blk"]] = 1
    integ[col["blk"]] = 1
    hi[col["start"]] = 1
    if on_off:
        cost[col["short"]] = COMFORT_PENALTY_EUR_PER_KH * dt
    # A modulating pump outside its off windows runs at least this (kW).
    running = np.minimum((hp.min_power_w or RUNNING_MIN_FRACTION * hp.max_power_w) / 1000, p_max)

    rows: list[np.ndarray] = []
    lows: list[float] = []
    highs: list[float] = []

    def row(coefs: dict[int, float], low: float, high: float) -> None:
        line = np.zeros(size)
        for index, value in coefs.items():
            line[index] += value
        rows.append(line)
        lows.append(low)
        highs.append(high)

    load = (np.asarray(problem.base_load_w) - np.asarray(problem.pv_w)) / 1000 + dhw
    for k in range(n):
        imp, exp, z = col["imp"][k], col["exp"][k], col["z"][k]
        p, g, t = col["p"][k], col["g"][k], col["T"][k]
        row({imp: 1, exp: -1, p: -1}, load[k], load[k])
        row({imp: 1, z: -caps.import_kw[k]}, -np.inf, 0)
        row({exp: 1, z: caps.export_kw[k]}, -np.inf, caps.export_kw[k])
        row({imp: 1, peak_imp: -1}, -np.inf, 0)
        row({exp: 1, peak_exp: -1}, -np.inf, 0)
        drive = (1 - a) * (outdoor[k] + r * hp.thermal.internal_gain_kw)
        dyn = {t: 1.0, p: -(1 - a) * r * cop[k], g: -(1 - a) * r}
        if k == 0:
            drive += a * hp.indoor_temperature_c
        else:
            dyn[col["T"][k - 1]] = -a
        row(dyn, drive, drive)
        row({t: 1, col["below"][k]: 1}, lower[k], np.inf)
        row({t: 1, col["above"][k]: -1}, -np.inf, upper[k])
        blk = col["blk"][k]
        row({p: 1, blk: p_max[k]}, -np.inf, p_max[k])
        if on_off:  # start[k]: a block window begins at step k
            row({t: 1, col["short"][k]: 1, blk: setpoint[k] - lower[k]}, setpoint[k], np.inf)
            starts = {col["start"][k]: 1.0, blk: -1.0}
            if k:
                starts[col["blk"][k - 1]] = 1.0
            row(starts, 0, np.inf)
        else:  # start[k]: the pump restarts at step k after an off window
            row({p: 1, blk: running[k]}, running[k], np.inf)
            if k:
                row({col["start"][k]: 1.0, blk: 1.0, col["blk"][k - 1]: -1.0}, 0, np.inf)
    row({**dict.fromkeys(col["below"], dt), slack: -1}, -np.inf, budget)
    money_row = {int(c): float(v) for c, v in zip(col["imp"], imp_price * dt, strict=True)}
    money_row |= {int(c): float(-v) for c, v in zip(col["exp"], exp_price * dt, strict=True)}
    money_row |= {int(c): gas * dt for c in col["g"]}
    money_row[money_slack] = -1.0
    row(money_row, -np.inf, schedule_cost(problem, baseline_schedule(problem)).total_eur)
    per_day = round(24 / dt)
    for first in range(0, n, per_day):
        row(
            dict.fromkeys(col["start"][first : first + per_day], 1.0),
            -np.inf,
            hp.max_windows_per_day,
        )
    result = milp(
        cost,
        integrality=integ,
        bounds=Bounds(lo, hi),
        constraints=LinearConstraint(sparse.csr_array(np.array(rows)), lows, highs),
        options={"mip_rel_gap": 1e-10},
    )
    assert result.x is not None, result.message
    x = result.x
    money = float(imp_price @ x[col["imp"]] - exp_price @ x[col["exp"]]) * dt
    money += float(x[col["g"]].sum()) * dt * gas
    # Recomputed from the schedule: the solver's own figure carries its tolerances
    # (a slack at -1e-6 times a penalty of 1000) into the comparison.
    objective = objective_of(
        problem,
        import_w=x[col["imp"]] * 1000,
        export_w=x[col["exp"]] * 1000,
        boiler_w=x[col["g"]] * 1000,
        indoor_c=x[col["T"]],
        blocked=np.round(x[col["blk"]]) if on_off else None,
    )
    return Reference(objective_eur=objective, money_eur=money)
