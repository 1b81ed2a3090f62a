"""Plans when the engine is unsure: no prices (fallback) or no heat forecast.

Heat pumps then run as without Netbewust (the plan asks nothing of them), cars still
get their energy by departure, and costs are unknown rather than priced at 0.
"""

from __future__ import annotations

from datetime import UTC, datetime

from netbewust_core.model import ChargerSetpoint, Connection, HeatPumpSetpoint
from netbewust_core.planning.planner import fallback_plan, plan
from netbewust_core.planning.problem import (
    HeatPumpDay,
    PlanCharger,
    PlanEvSession,
    PlanHeatPump,
    PlanningProblem,
    PlanStatus,
)

START = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
STEPS = 96
CONNECTION = Connection(phases=1, fuse_current_a=25.0)
CAR = PlanCharger(
    device_id="ev",
    max_power_w=3680.0,
    min_power_w=1380.0,
    sessions=(PlanEvSession(start_step=0, end_step=28, energy_wh=10_000.0),),  # by 07:00
)


def problem(*heat_pumps: PlanHeatPump, price: float = 0.0) -> PlanningProblem:
    return PlanningProblem(
        start=START,
        connection=CONNECTION,
        import_price_eur_per_kwh=(price,) * STEPS,
        export_price_eur_per_kwh=(price,) * STEPS,
        base_load_w=(400.0,) * STEPS,
        pv_w=(0.0,) * STEPS,
        chargers=(CAR,),
        heat_pumps=heat_pumps,
    )


def test_without_prices_pumps_run_freely_cars_charge_and_costs_are_unknown() -> None:
    # December, no prices and no temperature forecast: no heat figure at all.
    pump = PlanHeatPump(device_id="hp", rated_power_w=2000.0)
    result = fallback_plan(problem(pump), "no day-ahead prices", priced=False)
    assert result.status is PlanStatus.FALLBACK
    assert len(result.steps) == STEPS
    assert all("hp" not in step.setpoints for step in result.steps)  # never blocked
    assert result.expected_cost_eur is None
    assert result.baseline_cost_eur is None
    assert result.steps[0].import_price_eur_per_kwh is None
    # Full power from arrival: the car has its 10 kWh long before its 07:00 departure.
    delivered_wh = sum(step.chargers["ev"].charge_w * 0.25 for step in result.steps[:28])
    assert delivered_wh >= 10_000.0
    assert result.steps[0].setpoints["ev"] == ChargerSetpoint(16.0, 1)


def test_a_fallback_with_prices_still_prices_itself() -> None:
    pump = PlanHeatPump(
        device_id="hp",
        rated_power_w=2000.0,
        days=(HeatPumpDay(start_step=0, end_step=STEPS, heat_need_wh=7_000.0),),
    )
    result = fallback_plan(problem(pump, price=0.3), "infeasible")
    assert result.expected_cost_eur is not None
    assert result.expected_cost_eur > 0
    assert all("hp" not in step.setpoints for step in result.steps)


def test_an_optimal_plan_steers_a_pump_only_where_it_has_a_heat_figure() -> None:
    # A heat figure for the first 12 hours only (the forecast ends there).
    pump = PlanHeatPump(
        device_id="hp",
        rated_power_w=2000.0,
        days=(HeatPumpDay(start_step=0, end_step=48, heat_need_wh=3_500.0),),
    )
    result = plan(problem(pump, price=0.3))
    assert result.status is PlanStatus.OPTIMAL
    steered = [step.setpoints.get("hp") for step in result.steps[:48]]
    assert all(isinstance(setpoint, HeatPumpSetpoint) for setpoint in steered)
    assert any(setpoint == HeatPumpSetpoint(on=False) for setpoint in steered)
    assert all("hp" not in step.setpoints for step in result.steps[48:])
