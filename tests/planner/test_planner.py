"""The optimiser on tiny horizons whose optimum is worked out by hand (15-minute steps)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.model import (
    BatterySetpoint,
    ChargerSetpoint,
    Connection,
    PvSetpoint,
    Setpoint,
)
from netbewust_core.planning.baseline import baseline_schedule
from netbewust_core.planning.planner import plan
from netbewust_core.planning.problem import (
    HeatPumpDay,
    PlanCharger,
    PlanEvSession,
    PlanHeatPump,
    PlanningError,
    PlanningProblem,
    PlanStatus,
    Tariff,
)

from .conftest import START, full_milp_cost, lossless_battery, make_problem

QUARTER = timedelta(minutes=15)


def _battery_w(setpoint: Setpoint) -> float | None:
    assert isinstance(setpoint, BatterySetpoint)
    return setpoint.power_w


def test_battery_buys_cheap_and_covers_the_expensive_step() -> None:
    problem = make_problem([0.10, 0.30], load_w=[0, 4000], batteries=(lossless_battery(),))
    result = plan(problem)
    assert result.status is PlanStatus.OPTIMAL
    first, second = result.steps
    assert first.batteries["battery"].charge_w == pytest.approx(4000)
    assert second.batteries["battery"].discharge_w == pytest.approx(4000)
    assert second.import_w == pytest.approx(0, abs=1e-6)
    assert result.expected_cost_eur == pytest.approx(0.10)  # 1 kWh at 0.10
    assert result.baseline_cost_eur == pytest.approx(0.30)  # 1 kWh at 0.30
    assert _battery_w(first.setpoints["battery"]) == pytest.approx(4000)
    assert _battery_w(second.setpoints["battery"]) == pytest.approx(-4000)
    assert first.batteries["battery"].soc_pct == pytest.approx(25.0)


def test_negative_export_price_does_not_burn_energy_by_charging_and_discharging() -> None:
    # PV 4 kW, no load, export costs 0.50/kWh. A lossy battery could absorb 3 kW
    # "for free" by charging and discharging at once; that is not allowed.
    battery = lossless_battery(capacity_wh=500.0, charge_efficiency=0.5, discharge_efficiency=0.5)
    problem = make_problem(
        [0.5, 0.5],
        export_price=[-0.5, -0.5],
        pv_w=[4000, 4000],
        batteries=(battery,),
        pv_curtailment_allowed=False,
    )
    result = plan(problem)
    steps = result.steps
    for step in steps:
        battery_step = step.batteries["battery"]
        assert min(battery_step.charge_w, battery_step.discharge_w) <= 1e-6
        assert min(step.import_w, step.export_w) <= 1e-6
    # The battery stores 0.5 kWh from 1 kWh of PV in one step; the other 1 kWh is exported.
    assert sum(s.export_w for s in steps) * 0.25 == pytest.approx(1000)
    assert result.expected_cost_eur == pytest.approx(0.5)
    assert result.expected_cost_eur == pytest.approx(full_milp_cost(problem), abs=1e-9)
    assert result.binaries_used > 0  # the LP relaxation did try the trick


@pytest.mark.parametrize(("allowed", "cost"), [(True, 0.0), (False, 0.75)])
def test_pv_is_curtailed_at_negative_export_prices_only_when_allowed(
    allowed: bool, cost: float
) -> None:
    problem = make_problem(
        [0.5, 0.5],
        export_price=[-0.5, -0.5],
        pv_w=[4000, 4000],
        load_w=[1000, 1000],
        pv_curtailment_allowed=allowed,
    )
    result = plan(problem, pv_device_id="pv")
    assert result.expected_cost_eur == pytest.approx(cost, abs=1e-9)
    for step in result.steps:
        assert step.pv_curtailed_w == pytest.approx(3000 if allowed else 0, abs=1e-6)
        setpoint = step.setpoints["pv"]
        assert isinstance(setpoint, PvSetpoint)
        if allowed:
            assert setpoint.power_limit_w == pytest.approx(1000)
        else:
            assert setpoint.power_limit_w is None


def test_external_limit_caps_import_until_it_expires() -> None:
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=START - QUARTER,
        expires_at=START + QUARTER,  # the interval runs longer, the expiry wins
        intervals=(LimitInterval(START, START + 4 * QUARTER, max_import_w=2000.0),),
    )
    problem = make_problem(
        [0.1, 0.1, 0.3, 0.3],
        batteries=(lossless_battery(soc_final_min_pct=50.0),),  # needs 2 kWh
        external_limits=(limit,),
    )
    result = plan(problem)
    imports = [s.import_w for s in result.steps]
    assert imports[0] == pytest.approx(2000)
    assert imports[1] == pytest.approx(4000)
    assert sum(imports[2:]) == pytest.approx(2000)
    assert result.expected_cost_eur == pytest.approx(0.1 * 1.5 + 0.3 * 0.5)


@pytest.mark.parametrize(
    ("min_power_w", "expected"),
    [(0.0, (0.0, 320.0, 3680.0, 0.0)), (1380.0, (0.0, 1380.0, 2620.0, 0.0))],
)
def test_ev_charges_inside_its_window_with_or_without_the_6a_minimum(
    min_power_w: float, expected: tuple[float, ...]
) -> None:
    charger = PlanCharger(
        device_id="ev",
        max_power_w=3680.0,
        min_power_w=min_power_w,
        sessions=(PlanEvSession(start_step=1, end_step=3, energy_wh=1000.0),),
    )
    problem = make_problem([0.0, 0.2, 0.1, 0.0], chargers=(charger,))
    result = plan(problem)
    powers = [s.chargers["ev"].charge_w for s in result.steps]
    assert powers == pytest.approx(expected, abs=1e-4)
    assert result.expected_cost_eur == pytest.approx(full_milp_cost(problem), abs=1e-9)
    setpoint = result.steps[2].setpoints["ev"]
    assert isinstance(setpoint, ChargerSetpoint)
    assert setpoint.current_a == pytest.approx(expected[2] / 230)
    assert setpoint.phases == 1
    assert result.steps[-1].chargers["ev"].car_energy_wh == 0.0  # unplugged


@pytest.mark.parametrize(("need_wh", "cost"), [(0.0, 0.1), (1000.0, 0.6)])
def test_v2g_discharges_at_the_expensive_step_but_meets_its_departure_energy(
    need_wh: float, cost: float
) -> None:
    charger = PlanCharger(
        device_id="car",
        max_power_w=4000.0,
        max_discharge_w=4000.0,
        sessions=(
            PlanEvSession(
                start_step=0,
                end_step=2,
                energy_wh=need_wh,
                energy_max_wh=4000.0,
                arrival_energy_wh=2000.0,
                capacity_wh=10000.0,
            ),
        ),
    )
    problem = make_problem(
        [0.1, 0.5], export_price=[0.1, 0.5], load_w=[0, 4000], chargers=(charger,)
    )
    result = plan(problem)
    assert result.expected_cost_eur == pytest.approx(cost)
    last = result.steps[-1].chargers["car"]
    assert last.car_energy_wh >= 2000.0 + need_wh - 1e-6
    if need_wh == 0:
        assert last.discharge_w == pytest.approx(4000)
        setpoint = result.steps[-1].setpoints["car"]
        assert isinstance(setpoint, ChargerSetpoint)
        assert setpoint.current_a == pytest.approx(-4000 / 230)


@pytest.mark.parametrize(("max_starts", "cost"), [(3, 0.15), (1, 0.35)])
def test_heat_pump_meets_its_heat_need_within_its_starts(max_starts: int, cost: float) -> None:
    heat_pump = PlanHeatPump(
        device_id="hp",
        rated_power_w=2000.0,
        cop=2.0,  # 1 kWh of heat per quarter hour on
        days=(HeatPumpDay(start_step=0, end_step=6, heat_need_wh=3000.0, max_starts=max_starts),),
    )
    problem = make_problem([0.1, 0.5, 0.1, 0.5, 0.1, 0.1], heat_pumps=(heat_pump,))
    result = plan(problem)
    on = [s.heat_pumps["hp"].on for s in result.steps]
    starts = sum(1 for before, now in zip([False, *on], on, strict=False) if now and not before)
    assert sum(on) == 3
    assert starts <= max_starts
    assert result.expected_cost_eur == pytest.approx(cost)


@pytest.mark.parametrize(("already_w", "peak_w", "cost"), [(0.0, 2000, 2.25), (3000.0, 3000, 0.15)])
def test_capacity_tariff_spreads_import(already_w: float, peak_w: float, cost: float) -> None:
    problem = make_problem(
        [0.1, 0.1, 0.3],
        batteries=(lossless_battery(soc_final_min_pct=37.5),),  # 1.5 kWh
        tariff=Tariff(peak_price_eur_per_kw=1.0, peak_already_w=already_w),
    )
    result = plan(problem)
    assert max(s.import_w for s in result.steps) == pytest.approx(peak_w)
    assert result.expected_cost_eur == pytest.approx(cost)
    assert result.expected_cost_eur == pytest.approx(full_milp_cost(problem), abs=1e-9)


def test_tie_break_flattens_grid_use_when_cost_is_indifferent() -> None:
    problem = make_problem([0.1] * 4, batteries=(lossless_battery(soc_final_min_pct=25.0),))
    result = plan(problem)
    assert [s.import_w for s in result.steps] == pytest.approx([1000.0] * 4, abs=1e-3)


def test_per_phase_limit_of_a_three_phase_connection() -> None:
    # 5 kW of base load on L1 leaves 750 W of the 5750 W phase for a battery on L1.
    problem = make_problem(
        [0.1, 0.1],
        load_w=[5000, 5000],
        connection=Connection(phases=3, fuse_current_a=25.0),
        base_load_phases=(1,),
        batteries=(lossless_battery(capacity_wh=10000.0, soc_final_min_pct=3.75),),
    )
    result = plan(problem)
    assert [s.batteries["battery"].charge_w for s in result.steps] == pytest.approx([750, 750])


def test_impossible_limits_give_a_fallback_plan_that_says_why() -> None:
    problem = make_problem([0.1, 0.1], load_w=[8000, 8000], batteries=(lossless_battery(),))
    result = plan(problem)
    assert result.status is PlanStatus.FALLBACK
    assert "infeasible" in result.reason
    assert result.steps[0].setpoints["battery"] == BatterySetpoint(None)


def test_impossible_ev_need_is_charged_as_far_as_possible_and_reported() -> None:
    charger = PlanCharger(
        device_id="ev",
        max_power_w=4000.0,
        sessions=(PlanEvSession(start_step=0, end_step=1, energy_wh=5000.0),),
    )
    result = plan(make_problem([0.1], chargers=(charger,)))
    assert result.status is PlanStatus.OPTIMAL
    assert result.steps[0].chargers["ev"].charge_w == pytest.approx(4000)
    assert "ev short of 4000 Wh" in result.reason


def test_guaranteed_minimum_charge_comes_before_the_cheap_hours() -> None:
    charger = PlanCharger(
        device_id="ev",
        max_power_w=4000.0,
        sessions=(
            PlanEvSession(
                start_step=0,
                end_step=4,
                energy_wh=2000.0,
                guaranteed_wh=500.0,
                guaranteed_by_step=2,
            ),
        ),
    )
    result = plan(make_problem([0.5, 0.5, 0.1, 0.1], chargers=(charger,)))
    energy = [s.chargers["ev"].car_energy_wh for s in result.steps]
    assert energy[1] == pytest.approx(500)
    assert energy[3] == pytest.approx(2000)
    assert result.expected_cost_eur == pytest.approx(0.5 * 0.5 + 0.1 * 1.5)


def _random_problem(rng: np.random.Generator, min_power_w: float) -> PlanningProblem:
    n = int(rng.integers(6, 14))
    spot = rng.normal(0.05, 0.15, n)
    start = int(rng.integers(0, n // 2))
    energy_wh = float(rng.uniform(0, 3000))
    charger = PlanCharger(
        device_id="ev",
        max_power_w=3700.0,
        min_power_w=min_power_w,
        sessions=(
            # Some slack above the need keeps the 1380 W minimum feasible.
            PlanEvSession(
                start_step=start, end_step=n, energy_wh=energy_wh, energy_max_wh=energy_wh + 1000
            ),
        ),
    )
    return make_problem(
        list(spot + 0.15),
        export_price=list(spot if rng.random() < 0.7 else spot + 0.2),  # sometimes export > import
        load_w=list(rng.uniform(200, 2500, n)),
        pv_w=list(np.clip(rng.normal(2000, 1500, n), 0, None)),
        batteries=(
            lossless_battery(charge_efficiency=0.9, discharge_efficiency=0.9, soc_initial_pct=50.0),
        ),
        chargers=(charger,),
        pv_curtailment_allowed=bool(rng.random() < 0.5),
    )


@pytest.mark.parametrize("min_power_w", [0.0, 1380.0])
def test_lp_first_solve_matches_the_plain_full_milp(
    rng: np.random.Generator, min_power_w: float
) -> None:
    for _ in range(15):
        problem = _random_problem(rng, min_power_w)
        result = plan(problem)
        assert result.status is PlanStatus.OPTIMAL
        reference = full_milp_cost(problem)
        assert result.expected_cost_eur == pytest.approx(reference, rel=1e-4, abs=1e-6)
        for step in result.steps:
            assert min(step.import_w, step.export_w) <= 1e-2
            assert (
                min(step.batteries["battery"].charge_w, step.batteries["battery"].discharge_w)
                <= 1e-2
            )
            ev_w = step.chargers["ev"].charge_w
            assert ev_w <= 1e-2 or ev_w >= min_power_w - 1e-2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"import_price_eur_per_kwh": (0.1, float("nan"))}, "missing or infinite"),
        ({"pv_w": (0.0,)}, "has 1 values for 2 steps"),
        ({"start": datetime(2026, 1, 5)}, "UTC"),
        ({"step_minutes": 7}, "step_minutes"),
        ({"batteries": (lossless_battery(), lossless_battery())}, "used twice"),
        ({"batteries": (lossless_battery(phases=(2,)),)}, "not on this grid"),
        (
            {
                "chargers": (
                    PlanCharger(
                        device_id="ev",
                        max_power_w=1.0,
                        sessions=(PlanEvSession(start_step=0, end_step=3, energy_wh=1.0),),
                    ),
                )
            },
            "ends after the horizon",
        ),
    ],
)
def test_bad_problems_are_rejected_with_a_clear_error(
    change: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {
        "start": START,
        "connection": Connection(phases=1, fuse_current_a=25.0),
        "import_price_eur_per_kwh": (0.1, 0.1),
        "export_price_eur_per_kwh": (0.0, 0.0),
        "base_load_w": (0.0, 0.0),
        "pv_w": (0.0, 0.0),
    } | change
    with pytest.raises(PlanningError, match=message):
        PlanningProblem(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"soc_min_pct": 60.0, "soc_max_pct": 50.0}, "SoC bounds"),
        ({"charge_efficiency": 0.0}, "efficiency"),
        ({"capacity_wh": -1.0}, "capacity"),
        ({"soc_final_min_pct": 80.0, "soc_final_max_pct": 70.0}, "final SoC"),
    ],
)
def test_bad_battery_is_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PlanningError, match=message):
        lossless_battery(**kwargs)


def test_bad_sessions_are_rejected() -> None:
    with pytest.raises(PlanningError, match="empty"):
        PlanEvSession(start_step=3, end_step=3, energy_wh=1.0)
    with pytest.raises(PlanningError, match="overlap"):
        PlanCharger(
            device_id="ev",
            max_power_w=1.0,
            sessions=(
                PlanEvSession(start_step=0, end_step=3, energy_wh=1.0),
                PlanEvSession(start_step=2, end_step=4, energy_wh=1.0),
            ),
        )
    with pytest.raises(PlanningError, match="capacity_wh"):
        PlanCharger(
            device_id="ev",
            max_power_w=1.0,
            max_discharge_w=1.0,
            sessions=(PlanEvSession(start_step=0, end_step=3, energy_wh=1.0),),
        )


def test_a_session_charges_at_most_its_own_power() -> None:
    # One 11 kW charger: the first car takes 3680 W (16 A single phase), the second all.
    charger = PlanCharger(
        device_id="ev",
        max_power_w=11_000.0,
        sessions=(
            PlanEvSession(start_step=0, end_step=2, energy_wh=1000.0, max_power_w=3680.0),
            PlanEvSession(start_step=2, end_step=4, energy_wh=1000.0),
        ),
    )
    problem = make_problem([0.1, 0.2, 0.1, 0.2], chargers=(charger,))
    powers = [s.chargers["ev"].charge_w for s in plan(problem).steps]
    assert powers == pytest.approx((3680.0, 320.0, 4000.0, 0.0), abs=1e-4)
    baseline = baseline_schedule(problem).charger_w[0]
    assert baseline.tolist() == pytest.approx([3680.0, 320.0, 4000.0, 0.0])
    with pytest.raises(PlanningError, match="below min_power_w"):
        PlanCharger(
            device_id="ev",
            max_power_w=11_000.0,
            min_power_w=4140.0,
            sessions=(PlanEvSession(start_step=0, end_step=2, energy_wh=1.0, max_power_w=3680.0),),
        )
    with pytest.raises(PlanningError, match="max_power_w must be > 0"):
        PlanEvSession(start_step=0, end_step=2, energy_wh=1.0, max_power_w=0.0)
