"""One LP for a group of households under a shared import/export cap, solved by HiGHS.

Units inside: kW, kWh, hours, EUR, as in the household planner, whose COO builder and
battery model this reuses. Per household and step: grid import and export, envelope
power, battery charge/discharge/level, each heat pump's power, a hybrid's boiler heat
and the stored heat (within the band; below it, priced, only where full heat cannot
keep it); per
envelope an undelivered-energy slack; per
step a slack beyond the group's import and export cap (separate rows, so any shares
stay feasible). The slacks are priced far above any tariff, so they are used only when
the need or the cap is physically impossible, and then they say by how much. The cap
rows' duals are the group's marginal value of cap per step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from ..planning.milp import SHORTFALL_PENALTY_EUR_PER_KWH, _battery, _Builder, _Draws

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..planning.milp import StorageVars
    from ..planning.problem import PlanBattery
    from .problem import CollectiveHousehold, ThermalStore

    FloatArray = NDArray[np.float64]
    IntArray = NDArray[np.int64]

# EUR per kWh above the cap: ten times the shortfall price, so the plan drops an EV's
# energy before it overloads the transformer.
CAP_PENALTY_EUR_PER_KWH = 10 * SHORTFALL_PENALTY_EUR_PER_KWH
# EUR per kWh of heat below a home's band, per hour it stays below: cutting a pump for a
# quarter hour leaves its home short for hours, so comfort comes before a car's energy.
COMFORT_PENALTY_EUR_PER_KWH_H = SHORTFALL_PENALTY_EUR_PER_KWH
TIME_LIMIT_S = 60.0
MIN_PLANNED_CAPACITY_WH = 1.0  # a smaller battery is planned idle (`_as_planned`)


class GroupSolveError(RuntimeError):
    """HiGHS returned no solution (it should not: every slack keeps the LP feasible)."""


@dataclass(frozen=True, slots=True)
class GroupModel:
    """A group's LP; the cap rows are kept apart, since only their bounds change."""

    households: tuple[CollectiveHousehold, ...]
    cost: FloatArray
    bounds: FloatArray  # (variables, 2)
    eq_matrix: sparse.csr_array
    eq_rhs: FloatArray
    import_matrix: sparse.csr_array  # per step: members' net power less the import slack
    export_matrix: sparse.csr_array  # per step: members' net export less the export slack
    grid_import: IntArray  # (households, steps)
    grid_export: IntArray
    envelopes: tuple[tuple[int, IntArray, IntArray], ...]  # (household row, steps, cols)
    batteries: tuple[tuple[int, StorageVars], ...]
    stores: tuple[tuple[int, StoreVars], ...]
    shortfalls: IntArray  # one per envelope, in `envelopes` order
    over_import: IntArray
    over_export: IntArray
    import_price: FloatArray
    export_price: FloatArray
    dt: float


@dataclass(frozen=True, slots=True)
class StoreVars:
    """A thermal store's columns per step: pump power, boiler heat (empty for a full
    pump), stored heat from the band's bottom up; the heat below the band at the steps
    `short` where full heat cannot keep it."""

    power: IntArray
    boiler: IntArray
    within: IntArray
    below: IntArray
    short: IntArray


@dataclass(frozen=True, slots=True)
class StorePlan:
    """A thermal store's plan per step: pump kW, boiler heat kW, stored heat kWh at the
    step's end, and heat below the band (kWh)."""

    power_kw: FloatArray
    boiler_kw: FloatArray
    stored_kwh: FloatArray
    below_kwh: FloatArray


@dataclass(frozen=True, slots=True)
class GroupSolution:
    grid_kw: FloatArray  # (households, steps), + import
    envelope_kw: tuple[tuple[FloatArray, ...], ...]  # per household, per envelope: (steps,)
    battery_kw: tuple[tuple[FloatArray, ...], ...]  # per household, per battery: + charge
    stores: tuple[tuple[StorePlan, ...], ...]  # per household, per thermal store
    shortfall_kwh: FloatArray  # per household
    cap_excess_kw: FloatArray  # per step: + above import cap, - beyond export cap
    cost_eur: FloatArray  # per household, electricity and gas only (no penalties)
    objective_eur: float  # the group's LP objective: energy plus the slacks' penalties
    import_value: FloatArray  # per step, EUR per kW of extra import cap (>= 0)
    export_value: FloatArray  # per step, EUR per kW of extra export cap (>= 0)


def build_group(
    households: tuple[CollectiveHousehold, ...],
    import_price: FloatArray,
    export_price: FloatArray,
    dt: float,
) -> GroupModel:
    n = len(import_price)
    count = len(households)
    b = _Builder()
    import_limit = np.array([h.import_limit_w for h in households]) / 1000
    export_limit = np.array([h.export_limit_w for h in households]) / 1000
    grid_import = b.variables(
        count * n, 0.0, np.repeat(import_limit, n), np.tile(import_price * dt, count)
    ).reshape(count, n)
    grid_export = b.variables(
        count * n, 0.0, np.repeat(export_limit, n), np.tile(-export_price * dt, count)
    ).reshape(count, n)
    baseline_kw = np.array([h.baseline_w for h in households], dtype=float) / 1000
    # Balance: import - export - flexible draws = baseline.
    balance = b.rows(count * n, baseline_kw.ravel(), baseline_kw.ravel()).reshape(count, n)
    b.entries(balance, grid_import, 1.0)
    b.entries(balance, grid_export, -1.0)

    envelopes = []
    for row, household in enumerate(households):
        for envelope in household.envelopes:
            steps = np.arange(envelope.start_step, envelope.end_step, dtype=np.int64)
            cols = b.variables(len(steps), 0.0, envelope.max_power_w / 1000)
            b.entries(balance[row, steps], cols, -1.0)
            envelopes.append((row, steps, cols))
    shortfalls = b.variables(len(envelopes), 0.0, np.inf, SHORTFALL_PENALTY_EUR_PER_KWH)
    energy_wh = [e.energy_wh for h in households for e in h.envelopes]
    energy_rows = b.rows(len(envelopes), np.divide(energy_wh, 1000), np.divide(energy_wh, 1000))
    for energy_row, shortfall, (_, _, cols) in zip(energy_rows, shortfalls, envelopes, strict=True):
        b.entries(np.array([energy_row]), cols, dt)
        b.entries(np.array([energy_row]), np.array([shortfall]), 1.0)

    batteries = []
    for row, household in enumerate(households):
        for battery in household.batteries:
            draws = _Draws()
            storage = _battery(b, draws, _as_planned(battery, household), n, dt)
            for cols, steps, coef in zip(draws.cols, draws.steps, draws.coefs, strict=True):
                b.entries(balance[row, steps], cols, -coef)
            batteries.append((row, storage))

    stores = []
    for row, household in enumerate(households):
        for store in household.thermal_stores:
            storage_vars = _thermal_store(b, store, dt)
            b.entries(balance[row], storage_vars.power, -1.0)
            stores.append((row, storage_vars))

    over_import = b.variables(n, 0.0, np.inf, CAP_PENALTY_EUR_PER_KWH * dt)
    over_export = b.variables(n, 0.0, np.inf, CAP_PENALTY_EUR_PER_KWH * dt)
    n_eq = b.n_rows
    # Members' net power less the import slack <= import share; negated for export.
    import_rows = b.rows(n, -np.inf, np.inf)
    export_rows = b.rows(n, -np.inf, np.inf)
    for rows, sign, slack in ((import_rows, 1.0, over_import), (export_rows, -1.0, over_export)):
        b.entries(np.broadcast_to(rows, (count, n)), grid_import, sign)
        b.entries(np.broadcast_to(rows, (count, n)), grid_export, -sign)
        b.entries(rows, slack, -1.0)

    cost, lower, upper, _, matrix, row_lower, _ = b.arrays()
    return GroupModel(
        households=households,
        cost=cost,
        bounds=np.column_stack((lower, upper)),
        eq_matrix=matrix[:n_eq],
        eq_rhs=row_lower[:n_eq],
        import_matrix=matrix[import_rows[0] : import_rows[-1] + 1],
        export_matrix=matrix[export_rows[0] : export_rows[-1] + 1],
        grid_import=grid_import,
        grid_export=grid_export,
        envelopes=tuple(envelopes),
        batteries=tuple(batteries),
        stores=tuple(stores),
        shortfalls=shortfalls,
        over_import=over_import,
        over_export=over_export,
        import_price=import_price,
        export_price=export_price,
        dt=dt,
    )


def _thermal_store(b: _Builder, store: ThermalStore, dt: float) -> StoreVars:
    """The store's rows: S[k] - a S[k-1] - (1 - a) tau (cop P[k] + B[k]) = -(1 - a) tau
    loss[k] (equality rows only: the group's row block is all equalities).

    S = within - below, `within` in [band bottom, U], U the band's top or, where the
    home drifts above it with its pump off, that drift; `below` (priced) only where even
    full heat cannot reach the band's bottom, down to what full heat reaches. Doing
    nothing and heating flat out both stay feasible, so no other slack is needed, and
    no plan pre-heats above the band."""
    n = store.steps
    tau = store.time_constant_h
    a = float(np.exp(-dt / tau))
    gain = (1 - a) * tau
    low = np.asarray(store.stored_heat_min_kwh, dtype=float)
    high = np.asarray(store.stored_heat_max_kwh, dtype=float)
    loss = np.asarray(store.heat_loss_kw, dtype=float)
    cop = np.asarray(store.cop, dtype=float)
    hybrid_kw = 0.0 if store.hybrid_heat_w is None else store.hybrid_heat_w / 1000
    full_kw = cop * store.max_power_w / 1000 + hybrid_kw
    top, bottom = np.empty(n), np.empty(n)
    up = down = store.stored_heat_kwh
    for k in range(n):  # the drift with no heat, and the most heat can reach
        up = max(float(high[k]), a * up - gain * float(loss[k]))
        down = min(float(low[k]), a * down + gain * float(full_kw[k] - loss[k]))
        top[k], bottom[k] = up, down
    power = b.variables(n, 0.0, store.max_power_w / 1000)
    boiler = (
        b.variables(n, 0.0, hybrid_kw, store.gas_eur_per_kwh_heat * dt)
        if store.hybrid_heat_w is not None and store.gas_eur_per_kwh_heat is not None
        else power[:0]
    )
    within = b.variables(n, low, top)
    short = np.flatnonzero(bottom < low - 1e-9)
    below = b.variables(len(short), 0.0, (low - bottom)[short], COMFORT_PENALTY_EUR_PER_KWH_H * dt)
    rhs = -gain * loss
    rhs[0] += a * store.stored_heat_kwh
    rows = b.rows(n, rhs, rhs)
    b.entries(rows, within, 1.0)
    b.entries(rows[1:], within[:-1], -a)
    b.entries(rows[short], below, -1.0)
    later = short < n - 1
    b.entries(rows[short[later] + 1], below[later], a)
    b.entries(rows, power, -gain * cop)
    if len(boiler):
        b.entries(rows, boiler, -gain)
    return StoreVars(power, boiler, within, below, short)


def solve_group(
    model: GroupModel, import_cap_kw: FloatArray, export_cap_kw: FloatArray
) -> GroupSolution:
    """Solve with members' net power in [-export_cap_kw, import_cap_kw] per step (inf: none)."""
    capped_import = np.isfinite(import_cap_kw)
    capped_export = np.isfinite(export_cap_kw)
    rows = sparse.vstack(
        (model.import_matrix[capped_import], model.export_matrix[capped_export]), format="csr"
    )
    rhs = np.concatenate((import_cap_kw[capped_import], export_cap_kw[capped_export]))
    result = linprog(  # type: ignore[call-overload]  # the stubs omit sparse matrices
        model.cost,
        A_ub=rows if rows.shape[0] else None,
        b_ub=rhs if rows.shape[0] else None,
        A_eq=model.eq_matrix,
        b_eq=model.eq_rhs,
        bounds=model.bounds,
        method="highs",
        options={"time_limit": TIME_LIMIT_S},
    )
    if result.x is None:
        raise GroupSolveError(f"HiGHS found no solution: {result.message}")
    x = np.asarray(result.x, dtype=float)
    n = len(model.import_price)
    import_value = np.zeros(n)
    export_value = np.zeros(n)
    if rows.shape[0]:
        marginals = -np.asarray(result.ineqlin.marginals, dtype=float)
        import_value[capped_import] = marginals[: int(capped_import.sum())]
        export_value[capped_export] = marginals[int(capped_import.sum()) :]
    return _solution(model, x, float(result.fun), (import_value, export_value))


def _solution(
    model: GroupModel, x: FloatArray, objective: float, values: tuple[FloatArray, FloatArray]
) -> GroupSolution:
    count, n = model.grid_import.shape
    grid_import = np.clip(x[model.grid_import], 0.0, None)
    grid_export = np.clip(x[model.grid_export], 0.0, None)
    envelope_kw: list[list[FloatArray]] = [[] for _ in range(count)]
    shortfall = np.zeros(count)
    for (row, steps, cols), slack in zip(model.envelopes, model.shortfalls, strict=True):
        power = np.zeros(n)
        power[steps] = np.clip(x[cols], 0.0, None)
        envelope_kw[row].append(power)
        shortfall[row] += max(float(x[slack]), 0.0)
    battery_kw: list[list[FloatArray]] = [[] for _ in range(count)]
    for row, storage in model.batteries:
        net = np.clip(x[storage.charge], 0.0, None)
        if len(storage.discharge):
            net = net - np.clip(x[storage.discharge], 0.0, None)
        battery_kw[row].append(net)
    stores: list[list[StorePlan]] = [[] for _ in range(count)]
    for row, store in model.stores:
        boiler = np.clip(x[store.boiler], 0.0, None) if len(store.boiler) else np.zeros(n)
        below = np.zeros(n)
        below[store.short] = np.clip(x[store.below], 0.0, None)
        stores[row].append(
            StorePlan(
                power_kw=np.clip(x[store.power], 0.0, None),
                boiler_kw=boiler,
                stored_kwh=x[store.within] - below,
                below_kwh=below,
            )
        )
    cost = (grid_import @ model.import_price - grid_export @ model.export_price) * model.dt
    for (row, store), plans in zip(model.stores, (p for ps in stores for p in ps), strict=True):
        cost[row] += float(plans.boiler_kw[: len(store.boiler)] @ model.cost[store.boiler])
    return GroupSolution(
        grid_kw=grid_import - grid_export,
        envelope_kw=tuple(tuple(powers) for powers in envelope_kw),
        battery_kw=tuple(tuple(powers) for powers in battery_kw),
        stores=tuple(tuple(plans) for plans in stores),
        shortfall_kwh=shortfall,
        cap_excess_kw=np.clip(x[model.over_import], 0, None)
        - np.clip(x[model.over_export], 0, None),
        cost_eur=cost,
        objective_eur=objective,
        import_value=np.clip(values[0], 0.0, None),
        export_value=np.clip(values[1], 0.0, None),
    )


def priced_objective(model: GroupModel, net_price_eur_per_kw: FloatArray) -> float:
    """The group's least LP objective without a cap but paying `net_price_eur_per_kw`
    (per step) on its members' net import: its part of a Lagrangian bound."""
    cost = model.cost.copy()
    cost[model.grid_import] += net_price_eur_per_kw
    cost[model.grid_export] -= net_price_eur_per_kw
    result = linprog(  # type: ignore[call-overload]  # the stubs omit sparse matrices
        cost,
        A_eq=model.eq_matrix,
        b_eq=model.eq_rhs,
        bounds=model.bounds,
        method="highs",
        options={"time_limit": TIME_LIMIT_S},
    )
    if result.x is None:
        raise GroupSolveError(f"HiGHS found no solution: {result.message}")
    return float(result.fun)


def _as_planned(battery: PlanBattery, household: CollectiveHousehold) -> PlanBattery:
    """The battery as the LP can plan it, rather than an infeasible plan.

    One below 1 Wh moves nothing a plan can see, and its coefficients fall below the
    solver's tolerance: it is planned idle. One outside its SoC window is brought back at
    full power (`_battery`) unless its connection cannot carry that power over the
    baseline's extreme; then it is only kept from going further out.
    """
    if battery.capacity_wh < MIN_PLANNED_CAPACITY_WH:
        return replace(battery, max_charge_w=0.0, max_discharge_w=0.0)
    initial = battery.soc_initial_pct
    if initial < battery.soc_min_pct:
        spare_w = household.import_limit_w - max(household.baseline_w, default=0.0)
        if spare_w < battery.max_charge_w:
            return replace(battery, soc_min_pct=initial)
    if initial > battery.soc_max_pct:
        spare_w = household.export_limit_w + min(household.baseline_w, default=0.0)
        if spare_w < battery.max_discharge_w:
            return replace(battery, soc_max_pct=initial)
    return battery
