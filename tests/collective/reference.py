"""An independent, dense monolithic LP of the collective problem, for tiny test cases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linprog

if TYPE_CHECKING:
    from netbewust_core.collective.problem import CollectiveProblem


def reference_cost(problem: CollectiveProblem) -> float:
    """The optimal summed energy cost in EUR, straight from the problem's definition."""
    n = problem.n_steps
    dt = problem.step_hours
    columns: list[tuple[float, float, float]] = []  # (cost, lower, upper)

    def add(
        count: int, cost: float | np.ndarray, lower: float, upper: float | np.ndarray
    ) -> np.ndarray:
        first = len(columns)
        costs = np.broadcast_to(cost, count)
        uppers = np.broadcast_to(upper, count)
        columns.extend((float(c), lower, float(u)) for c, u in zip(costs, uppers, strict=True))
        return np.arange(first, first + count)

    import_price = np.asarray(problem.import_price_eur_per_kwh)
    export_price = np.asarray(problem.export_price_eur_per_kwh)
    eq_rows: list[tuple[dict[int, float], float]] = []
    members_net: list[dict[int, float]] = [{} for _ in range(n)]
    for household in problem.households:
        imp = add(n, import_price * dt, 0.0, household.import_limit_w / 1000)
        exp = add(n, -export_price * dt, 0.0, household.export_limit_w / 1000)
        balance: list[dict[int, float]] = [{int(imp[t]): 1.0, int(exp[t]): -1.0} for t in range(n)]
        for t in range(n):
            members_net[t][int(imp[t])] = 1.0
            members_net[t][int(exp[t])] = -1.0
        for envelope in household.envelopes:
            window = np.zeros(n)
            window[envelope.start_step : envelope.end_step] = envelope.max_power_w / 1000
            power = add(n, 0.0, 0.0, window)
            for t in range(n):
                balance[t][int(power[t])] = -1.0
            eq_rows.append(({int(p): dt for p in power}, envelope.energy_wh / 1000))
        for battery in household.batteries:
            capacity = battery.capacity_wh / 1000
            charge = add(n, 0.0, 0.0, battery.max_charge_w / 1000)
            discharge = add(n, 0.0, 0.0, battery.max_discharge_w / 1000)
            level_upper = np.full(n, battery.soc_max_pct / 100 * capacity)
            level = add(n, 0.0, 0.0, level_upper)
            for t in range(n):
                columns[int(level[t])] = (0.0, battery.soc_min_pct / 100 * capacity, level_upper[t])
                balance[t][int(charge[t])] = -1.0
                balance[t][int(discharge[t])] = 1.0
                row = {
                    int(level[t]): 1.0,
                    int(charge[t]): -battery.charge_efficiency * dt,
                    int(discharge[t]): dt / battery.discharge_efficiency,
                }
                if t:
                    row[int(level[t - 1])] = -1.0
                initial = battery.soc_initial_pct / 100 * capacity
                eq_rows.append((row, initial if t == 0 else 0.0))
            if battery.soc_final_min_pct is not None:
                final = battery.soc_final_min_pct / 100 * capacity
                cost, _, upper = columns[int(level[-1])]
                columns[int(level[-1])] = (cost, final, upper)
        for t in range(n):
            eq_rows.append((balance[t], household.baseline_w[t] / 1000))

    size = len(columns)
    a_eq = np.zeros((len(eq_rows), size))
    b_eq = np.zeros(len(eq_rows))
    for index, (row, rhs) in enumerate(eq_rows):
        for column, value in row.items():
            a_eq[index, column] = value
        b_eq[index] = rhs
    a_ub = np.zeros((2 * n, size))
    non_member = np.asarray(problem.non_member_load_w) / 1000
    b_ub = np.concatenate(
        (
            np.asarray(problem.transformer_import_cap_w) / 1000 - non_member,
            np.asarray(problem.transformer_export_cap_w) / 1000 + non_member,
        )
    )
    for t in range(n):
        for column, value in members_net[t].items():
            a_ub[t, column] = value
            a_ub[n + t, column] = -value
    result = linprog(
        [c for c, _, _ in columns],
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=[(lower, upper) for _, lower, upper in columns],
        method="highs",
    )
    assert result.status == 0, result.message
    assert result.fun is not None
    return float(result.fun)
