"""The planner with a thermally modelled heat pump: never worse than doing nothing, yet saving.

"Doing nothing" is the pump as its own thermostat runs it (Plan.baseline_cost_eur). The
exactness check compares with an independent MILP built from the model's equations.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbewust_core.model import Connection, HeatPumpSetpoint
from netbewust_core.planning.heat import no_intervention
from netbewust_core.planning.planner import fallback_plan, plan
from netbewust_core.planning.problem import (
    HeatPumpControl,
    PlanningProblem,
    PlanStatus,
    PlanThermalHeatPump,
)
from netbewust_core.thermal import (
    ComfortBand,
    CopModel,
    GasBoiler,
    ThermalParameters,
    comfort_band,
    degree_hours_below,
)

from .thermal_reference import objective_of, reference_optimum

START = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)
ONE_PHASE = Connection(phases=1, fuse_current_a=35.0)


def _pump(n: int, **overrides: object) -> PlanThermalHeatPump:
    hours = np.arange(n) / 4
    values: dict[str, object] = {
        "device_id": "hp",
        "thermal": ThermalParameters(resistance_k_per_kw=1000 / 280, capacitance_kwh_per_k=10.0),
        "cop": CopModel(constant=3.2),
        "max_power_w": 4900.0,
        "outdoor_temperature_c": tuple(
            np.where(hours < 24, 0.0, -2.0) - 3 * np.cos(2 * np.pi * (hours - 15) / 24)
        ),
        "comfort": comfort_band(START, n),
        "indoor_temperature_c": 20.0,
    } | overrides
    return PlanThermalHeatPump(**values)  # type: ignore[arg-type]


def _problem(
    pump: PlanThermalHeatPump, import_price: np.ndarray, **kwargs: object
) -> PlanningProblem:
    n = len(import_price)
    values: dict[str, object] = {
        "start": START,
        "connection": ONE_PHASE,
        "import_price_eur_per_kwh": tuple(float(p) for p in import_price),
        "export_price_eur_per_kwh": tuple(float(p) - 0.15 for p in import_price),
        "base_load_w": (300.0,) * n,
        "pv_w": (0.0,) * n,
        "pv_curtailment_allowed": False,
        "thermal_heat_pumps": (pump,),
    } | kwargs
    return PlanningProblem(**values)  # type: ignore[arg-type]


def _day_ahead(n: int) -> np.ndarray:
    """Cheap nights, an expensive evening peak: a Dutch winter day's shape."""
    hours = np.mod(np.arange(n) / 4, 24)
    return (
        0.25 + 0.08 * np.sin(2 * np.pi * (hours - 13) / 24) + 0.05 * ((hours > 17) & (hours < 21))
    )


def _series(result: object, name: str) -> np.ndarray:
    return np.array([getattr(s.heat_pumps["hp"], name) for s in result.steps])  # type: ignore[attr-defined]


def _comfort_kh(pump: PlanThermalHeatPump, indoor: np.ndarray) -> float:
    return degree_hours_below(indoor, np.asarray(pump.comfort.lower_c), 0.25)


@pytest.mark.parametrize("control", [HeatPumpControl.MODULATING, HeatPumpControl.ON_OFF])
def test_one_home_file_pump_saves_with_comfort_kept_and_no_wasted_heat(
    control: HeatPumpControl,
) -> None:
    """The issue's pump: 4900 W, COP 3.2, 280 W/K, two days at 0 and -2 degC means."""
    n = 192
    pump = _pump(n, control=control)
    result = plan(_problem(pump, _day_ahead(n)))
    assert result.status is PlanStatus.OPTIMAL
    assert result.expected_cost_eur is not None
    assert result.baseline_cost_eur is not None
    assert result.expected_cost_eur < 0.98 * result.baseline_cost_eur  # strictly cheaper
    indoor = _series(result, "indoor_temperature_c")
    run = no_intervention(pump, 0.25)
    assert _comfort_kh(pump, indoor) <= _comfort_kh(pump, run.indoor_c) + 1e-6
    # Heat need / COP is the thermostat's electricity: the plan wastes at most 5 %.
    planned_kwh = _series(result, "power_w").sum() * 0.25 / 1000
    assert planned_kwh <= 1.05 * run.electric_kw.sum() * 0.25


def test_a_hybrid_trades_gas_against_electricity() -> None:
    """Expensive electricity: the boiler takes over; cheap: the pump runs at its cap."""
    n = 96
    boiler = GasBoiler(max_heat_w=20000, gas_price_eur_per_m3=1.40)
    pump = _pump(n, max_power_w=800.0, boiler=boiler)
    gas_per_kwh_heat = boiler.heat_price_eur_per_kwh
    cheap = plan(_problem(pump, np.full(n, 0.5 * 3.2 * gas_per_kwh_heat)))
    dear = plan(_problem(pump, np.full(n, 2.0 * 3.2 * gas_per_kwh_heat)))
    assert _series(cheap, "power_w").sum() > _series(dear, "power_w").sum() + 1000
    assert _series(dear, "boiler_heat_w").sum() > _series(cheap, "boiler_heat_w").sum()
    assert dear.expected_cost_eur is not None
    assert dear.baseline_cost_eur is not None
    assert dear.expected_cost_eur <= dear.baseline_cost_eur


def test_hot_water_keeps_its_reserve() -> None:
    n = 96
    dhw = np.zeros(n)
    dhw[24:28] = 2000.0  # 06:00-07:00, legionella included
    pump = _pump(n, dhw_w=tuple(dhw))
    result = plan(_problem(pump, _day_ahead(n)))
    power = _series(result, "power_w")
    assert (power[24:28] >= 2000.0 - 1e-6).all()


def test_without_prices_the_pump_runs_as_without_netbewust() -> None:
    n = 96
    pump = _pump(n)
    result = fallback_plan(_problem(pump, np.zeros(n)), "no prices", priced=False)
    assert result.status is PlanStatus.FALLBACK
    assert result.expected_cost_eur is None
    assert all("hp" not in step.setpoints for step in result.steps)
    indoor = _series(result, "indoor_temperature_c")
    assert np.allclose(indoor, no_intervention(pump, 0.25).indoor_c)


def test_a_home_starting_below_its_band_still_gets_a_plan() -> None:
    n = 96
    pump = _pump(n, indoor_temperature_c=12.0)
    result = plan(_problem(pump, _day_ahead(n)))
    assert result.status is PlanStatus.OPTIMAL
    indoor = _series(result, "indoor_temperature_c")
    assert (
        _comfort_kh(pump, indoor) <= _comfort_kh(pump, no_intervention(pump, 0.25).indoor_c) + 1e-6
    )


homes = st.fixed_dictionaries(
    {
        "heat_loss_w_per_k": st.floats(60, 350),
        "capacitance_kwh_per_k": st.floats(3, 25),
        "indoor_c": st.floats(14, 23),
        "outdoor_c": st.floats(-10, 15),
        "max_power_w": st.floats(400, 6000),
        "hybrid": st.booleans(),
        "gas_price": st.floats(0.5, 2.5),
        "setpoint_c": st.floats(17, 22),
        "below_k": st.floats(0, 2),
        "pv_w": st.floats(0, 5000),
    }
)
prices = st.lists(st.floats(-0.5, 1.0), min_size=48, max_size=48)


def _random_problem(
    home: dict[str, float], price: list[float], control: HeatPumpControl
) -> PlanningProblem:
    n = len(price)
    hours = np.arange(n) / 4
    outdoor = home["outdoor_c"] - 3 * np.cos(2 * np.pi * (hours - 15) / 24)
    setpoint = np.full(n, home["setpoint_c"])
    band = ComfortBand(tuple(setpoint), tuple(setpoint - home["below_k"]), tuple(setpoint + 1.0))
    boiler = (
        GasBoiler(max_heat_w=15000, gas_price_eur_per_m3=home["gas_price"])
        if home["hybrid"]
        else None
    )
    pump = _pump(
        n,
        thermal=ThermalParameters(
            resistance_k_per_kw=1000 / home["heat_loss_w_per_k"],
            capacitance_kwh_per_k=home["capacitance_kwh_per_k"],
        ),
        cop=CopModel.rated(4.0),
        max_power_w=home["max_power_w"],
        outdoor_temperature_c=tuple(outdoor),
        comfort=band,
        indoor_temperature_c=home["indoor_c"],
        boiler=boiler,
        control=control,
    )
    pv = home["pv_w"] * np.clip(np.sin(np.pi * (hours - 8) / 8), 0, None)
    return _problem(pump, np.asarray(price), pv_w=tuple(pv))


def _check_never_worse(problem: PlanningProblem) -> None:
    result = plan(problem)
    assert result.status is PlanStatus.OPTIMAL
    assert result.expected_cost_eur is not None
    assert result.baseline_cost_eur is not None
    base = result.baseline_cost_eur
    assert result.expected_cost_eur <= base + 1e-6 * max(1.0, abs(base))
    (pump,) = problem.thermal_heat_pumps
    indoor = _series(result, "indoor_temperature_c")
    assert (
        _comfort_kh(pump, indoor) <= _comfort_kh(pump, no_intervention(pump, 0.25).indoor_c) + 1e-6
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(home=homes, price=prices)
def test_never_worse_than_doing_nothing_modulating_and_hybrid(
    home: dict[str, float], price: list[float]
) -> None:
    _check_never_worse(_random_problem(home, price, HeatPumpControl.MODULATING))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(home=homes, price=prices)
def test_never_worse_than_doing_nothing_on_off(home: dict[str, float], price: list[float]) -> None:
    _check_never_worse(_random_problem(home, price, HeatPumpControl.ON_OFF))


def _planned_objective(problem: PlanningProblem) -> float:
    result = plan(problem)
    (pump,) = problem.thermal_heat_pumps
    blocked = None
    if pump.control is HeatPumpControl.ON_OFF:
        setpoints = [s.setpoints["hp"] for s in result.steps]
        assert all(isinstance(sp, HeatPumpSetpoint) for sp in setpoints)
        blocked = np.array([0.0 if sp.on else 1.0 for sp in setpoints])  # type: ignore[union-attr]
    return objective_of(
        problem,
        import_w=np.array([s.import_w for s in result.steps]),
        export_w=np.array([s.export_w for s in result.steps]),
        boiler_w=_series(result, "boiler_heat_w"),
        indoor_c=_series(result, "indoor_temperature_c"),
        blocked=blocked,
    )


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(home=homes, price=prices)
def test_the_optimum_agrees_with_an_independent_full_milp(
    home: dict[str, float], price: list[float]
) -> None:
    problem = _random_problem(home, price, HeatPumpControl.MODULATING)
    reference = reference_optimum(problem)
    planned = _planned_objective(problem)
    # 1e-6 relative; for objectives below ~1 EUR an absolute 5e-5 EUR: on degenerate
    # cases (zero prices, the pump at its cap) HiGHS's tolerances (1e-7 on rows with
    # penalties of 10 EUR/Kh) leave that much between two optimal LP vertices.
    assert planned == pytest.approx(reference.objective_eur, rel=1e-6, abs=5e-5)


def test_on_off_optimum_agrees_with_an_independent_full_milp() -> None:
    n = 48
    problem = _problem(_pump(n, control=HeatPumpControl.ON_OFF), _day_ahead(n))
    reference = reference_optimum(problem)
    assert _planned_objective(problem) == pytest.approx(reference.objective_eur, rel=1e-6)


def _restarts_per_day(power_w: np.ndarray, per_day: int = 96) -> list[int]:
    """Steps where the pump runs again after an off step (step 0 is the pump's own)."""
    off = power_w <= 1.0
    restarts = np.flatnonzero(off[:-1] & ~off[1:]) + 1
    counts = np.bincount(restarts // per_day, minlength=len(power_w) // per_day)
    return [int(count) for count in counts]


@pytest.mark.parametrize(("hybrid", "min_power_w"), [(False, 0.0), (True, 0.0), (False, 1500.0)])
def test_a_modulating_pump_restarts_within_its_daily_budget(
    hybrid: bool, min_power_w: float
) -> None:
    """Prices that alternate every hour: the LP switches the pump off in every dear hour
    (about 12 restarts a day); the plan restarts it at most twice a day and runs it at
    least at its minimum (or a tenth of its maximum), at the full MILP's optimum."""
    n = 96
    prices = np.where(np.arange(n) // 4 % 2 == 0, 0.10, 0.80)
    boiler = GasBoiler(max_heat_w=15000, gas_price_eur_per_m3=1.4) if hybrid else None
    pump = _pump(
        n,
        max_power_w=800.0 if hybrid else 4900.0,
        min_power_w=min_power_w,
        boiler=boiler,
        outdoor_temperature_c=(5.0,) * n,
    )
    problem = _problem(pump, prices)
    result = plan(problem)
    assert result.status is PlanStatus.OPTIMAL
    assert not result.reason.startswith("no intervention")
    power = _series(result, "power_w")
    assert _restarts_per_day(power) <= [pump.max_windows_per_day]
    assert power[power > 1.0].min() >= (min_power_w or 0.1 * pump.max_power_w) - 0.01
    reference = reference_optimum(problem)
    assert _planned_objective(problem) == pytest.approx(reference.objective_eur, rel=1e-6)
