"""The live allocation under a day-ahead plan: planned power kept, blocked cars not funded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from netbewust_core.allocation.allocator import LiveAllocator
from netbewust_core.allocation.model import (
    Allocation,
    AllocationConfig,
    AllocationError,
    AllocationMode,
    CapSeries,
    HouseholdState,
    NonMemberLoad,
    SharingRule,
)
from netbewust_core.allocation.plan_rules import plan_request
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource

T0 = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
CONNECTION_W = 17_250.0
EV_MIN_W = 1380.0  # 6 A on one phase
# No margin, no feedback: the limits add up to the budget exactly, checkable by hand.
EXACT = AllocationConfig(margin=0.0, integral_per_s=0.0)


def plan(import_w: float, *, start: datetime = T0) -> ExternalLimit:
    end = start + timedelta(minutes=15)
    return ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=T0 - timedelta(hours=12),
        expires_at=end,
        intervals=(LimitInterval(start, end, max_import_w=import_w),),
    )


def home(household_id: str, **changes: object) -> HouseholdState:
    fields: dict[str, object] = {
        "household_id": household_id,
        "measured_w": 1000.0,
        "guaranteed_min_w": 1000.0,
        "flexible_w": 7000.0,
        "connection_limit_w": CONNECTION_W,
    }
    fields.update(changes)
    return HouseholdState(**fields)  # type: ignore[arg-type]


def allocate(states: list[HouseholdState], cap_w: float) -> dict[str, float]:
    allocation = run(states, cap_w)
    limits: dict[str, float] = {}
    for hid, limit in allocation.limits.items():
        interval = limit.interval_at(T0)
        assert interval is not None
        assert interval.max_import_w is not None
        limits[hid] = interval.max_import_w
    return limits


def run(states: list[HouseholdState], cap_w: float) -> Allocation:
    cap = CapSeries((LimitInterval(T0, T0 + timedelta(hours=1), max_import_w=cap_w),))
    return LiveAllocator(EXACT).allocate(
        cap,
        NonMemberLoad(estimate_w=0.0),
        states,
        rule=SharingRule.EQUAL_SHARE,
        mode=AllocationMode.CAPACITY_FRAME,
        now=T0,
    )


def test_a_planned_car_keeps_its_planned_power_under_a_binding_cap() -> None:
    # A: base 1000 W, plan gives its car 4000 W (limit 8000 W incl. catch-up room).
    # B: base 1000 W, no plan. Cap 7000 W. Floors 5000 + 1000, the 1000 W left is
    # shared equally over the flexible beyond them: A 5000 + 500, B 1000 + 500.
    planned = home("a", planned_limit=plan(8000.0), planned_flexible_w=4000.0)
    limits = allocate([planned, home("b")], 7000.0)
    assert limits == {"a": pytest.approx(5500.0), "b": pytest.approx(1500.0)}
    # Without the rule the equal share would cut A to 3500 W, below its plan.
    unkept = allocate([home("a", planned_limit=plan(8000.0)), home("b")], 7000.0)
    assert unkept["a"] == pytest.approx(3500.0)


def test_a_car_blocked_by_its_plan_is_not_funded_a_minimum() -> None:
    # A's plan leaves 800 W above its base load: less than its car's 6 A minimum, so it
    # asks for nothing and all 3000 W above the floors go to B, whose car can use them.
    blocked = home("a", planned_limit=plan(1800.0), min_flexible_w=EV_MIN_W)
    limits = allocate([blocked, home("b", min_flexible_w=EV_MIN_W)], 5000.0)
    assert limits == {"a": pytest.approx(1000.0), "b": pytest.approx(4000.0)}
    # Without a minimum A would be handed 800 W its charger cannot draw.
    funded = allocate([home("a", planned_limit=plan(1800.0)), home("b")], 5000.0)
    assert funded["a"] == pytest.approx(1800.0)


def test_planned_power_is_kept_only_while_the_plan_is_in_force() -> None:
    later = home(
        "a", planned_limit=plan(8000.0, start=T0 + timedelta(hours=1)), planned_flexible_w=4000.0
    )
    limits = allocate([later, home("b")], 7000.0)
    assert limits == {"a": pytest.approx(3500.0), "b": pytest.approx(3500.0)}


def test_planned_power_beyond_the_request_is_not_kept() -> None:
    # The car wants 2000 W though the plan gave it 4000 W: only 2000 W is kept.
    state = home("a", flexible_w=2000.0, planned_limit=plan(8000.0), planned_flexible_w=4000.0)
    assert state.request_at(T0) == pytest.approx((3000.0, 3000.0))


def test_a_planned_charger_keeps_room_for_whole_amperes() -> None:
    # A: base 200 W, the plan gives its three-phase car 11,000 W (15.9 A; 1 A = 690 W).
    # The guard gives a charger the whole amperes of its room: a limit of base + 11,000 W
    # charges it at 15 A (10,350 W), 162 Wh behind its plan every quarter hour. Kept
    # rounded up to 16 A (11,040 W), the 1,960 W left go to B; the budget still holds.
    car = home(
        "a",
        guaranteed_min_w=200.0,
        flexible_w=11_000.0,
        planned_limit=plan(11_500.0),
        planned_flexible_w=11_000.0,
        min_flexible_w=6 * 690.0,
        flexible_increment_w=690.0,
    )
    limits = allocate([car, home("b")], 13_200.0)
    assert limits["a"] - 200.0 >= 16 * 690.0
    assert limits == {"a": pytest.approx(11_240.0), "b": pytest.approx(1960.0)}
    # Any power (no increment): exactly the plan.
    any_power = allocate([replace(car, flexible_increment_w=0.0), home("b")], 13_200.0)
    assert any_power["a"] == pytest.approx(11_200.0)


def test_whole_amperes_are_kept_only_within_the_plan_in_force() -> None:
    # The plan's limit leaves 11,010 W above the base: rounding up stops there.
    request = plan_request(
        np.array([200.0, 200.0]),
        np.array([11_000.0, 5000.0]),
        planned_limit_w=np.array([200.0 + 11_010.0, 200.0 + 5000.0]),
        planned_flexible_w=np.array([11_000.0, 4140.2]),
        min_flexible_w=4140.0,
        connection_w=CONNECTION_W,
        increment_w=690.0,
    )
    # A plan a solver's hair above 6 A is 6 A, not 7.
    assert request.kept_w.tolist() == pytest.approx([11_010.0, 4140.2])
    assert request.flexible_w.tolist() == pytest.approx([0.0, 859.8])


def test_the_fleet_and_the_single_household_agree() -> None:
    states = [
        home("a", planned_limit=plan(8000.0), planned_flexible_w=4000.0),
        home("b", planned_limit=plan(1800.0), min_flexible_w=EV_MIN_W),
        home("c", measured_w=9000.0, planned_limit=plan(6000.0)),
        home("d"),
    ]
    allocation = run(states, 9000.0)
    assert [share.demand_w for share in allocation.shares] == pytest.approx(
        [state.demand_w(T0) for state in states]
    )
    assert [share.demand_w for share in allocation.shares] == pytest.approx(
        [8000.0, 1000.0, 6000.0, 8000.0]
    )


def test_without_a_plan_or_minimum_the_request_is_unchanged() -> None:
    request = plan_request(
        np.array([1000.0, 0.0]),
        np.array([7000.0, 300.0]),
        planned_limit_w=np.array([np.inf, np.inf]),
        planned_flexible_w=np.array([4000.0, 0.0]),
        min_flexible_w=0.0,
        connection_w=CONNECTION_W,
    )
    assert request.floor_w.tolist() == [1000.0, 0.0]
    assert request.flexible_w.tolist() == [7000.0, 300.0]
    assert request.kept_w.tolist() == [0.0, 0.0]


def test_a_room_a_solver_hair_below_the_minimum_counts_as_the_minimum() -> None:
    request = plan_request(
        1000.0,
        5000.0,
        planned_limit_w=1000.0 + EV_MIN_W - 0.5,
        planned_flexible_w=EV_MIN_W,
        min_flexible_w=EV_MIN_W,
        connection_w=CONNECTION_W,
    )
    assert float(request.floor_w) == pytest.approx(1000.0 + EV_MIN_W - 0.5)
    assert float(request.flexible_w) == 0.0


@pytest.mark.parametrize(
    "field_name", ["planned_flexible_w", "min_flexible_w", "flexible_increment_w"]
)
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_plan_figures_are_a_clear_error(field_name: str, value: float) -> None:
    with pytest.raises(AllocationError, match=field_name):
        home("a", **{field_name: value})
