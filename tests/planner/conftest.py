"""Helpers for small planning problems whose optimum can be checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from netbewust_core.model import Connection
from netbewust_core.planning.milp import BinarySteps, build_model
from netbewust_core.planning.problem import PlanBattery, PlanningProblem

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
ONE_PHASE_25A = Connection(phases=1, fuse_current_a=25.0)  # 5750 W


def make_problem(
    import_price: list[float],
    *,
    export_price: list[float] | None = None,
    load_w: list[float] | None = None,
    pv_w: list[float] | None = None,
    connection: Connection = ONE_PHASE_25A,
    **kwargs: Any,
) -> PlanningProblem:
    n = len(import_price)
    return PlanningProblem(
        start=START,
        connection=connection,
        import_price_eur_per_kwh=tuple(import_price),
        export_price_eur_per_kwh=tuple(export_price if export_price is not None else [0.0] * n),
        base_load_w=tuple(load_w if load_w is not None else [0.0] * n),
        pv_w=tuple(pv_w if pv_w is not None else [0.0] * n),
        **kwargs,
    )


def lossless_battery(**overrides: Any) -> PlanBattery:
    """4 kWh, 4 kW, no losses, 0..100 %, starts empty: easy arithmetic."""
    values: dict[str, Any] = {
        "device_id": "battery",
        "capacity_wh": 4000.0,
        "max_charge_w": 4000.0,
        "max_discharge_w": 4000.0,
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
        "soc_min_pct": 0.0,
        "soc_max_pct": 100.0,
        "soc_initial_pct": 0.0,
    } | overrides
    return PlanBattery(**values)


def full_milp_cost(problem: PlanningProblem) -> float:
    """The cost optimum of the plain MILP: every binary imposed, no tie-break, needs met."""
    model = build_model(problem, BinarySteps.all(problem))
    objective = model.energy_cost.copy()
    if model.peak is not None:
        objective[model.peak] = problem.tariff.peak_price_eur_per_kw
    upper = model.upper.copy()
    for sessions in model.sessions:
        upper[[s.shortfall for s in sessions if s.shortfall is not None]] = 0.0
    for heat_pump in model.heat_pumps:
        upper[heat_pump.shortfalls] = 0.0
    result = milp(
        objective,
        integrality=model.integrality,
        bounds=Bounds(model.lower, upper),
        constraints=LinearConstraint(model.matrix, model.row_lower, model.row_upper),
        options={"mip_rel_gap": 1e-9},
    )
    assert result.x is not None, result.message
    peak_w = float(result.x[model.grid_import].max()) * 1000
    tariff = problem.tariff
    peak_cost = tariff.peak_price_eur_per_kw * max(0.0, peak_w - tariff.peak_already_w) / 1000
    return float(model.energy_cost @ result.x) + peak_cost


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(2026)
