"""Splitting a members' budget by rule: hand-checked cases, floors, infeasible budgets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbewust_core.allocation.model import SharingRule
from netbewust_core.allocation.split import split_budget

# Three homes: minimum 1, 1 and 2 kW; flexible 6, 2 and 0 kW (demand 7, 3, 2 kW).
DEMAND = np.array([7000.0, 3000.0, 2000.0])
FLOOR = np.array([1000.0, 1000.0, 2000.0])
CEILING = np.full(3, 17250.0)
COST = np.array([0.10, 0.05, 0.20])


def split(rule: SharingRule, budget_w: float) -> tuple[list[float], float]:
    result = split_budget(rule, budget_w, DEMAND, floor_w=FLOOR, ceiling_w=CEILING, cost=COST)
    return [round(value, 6) for value in result.limits_w.tolist()], result.shortfall_w


def test_equal_share_gives_every_home_the_same_flexible_power() -> None:
    # 8 kW to shed of 8 kW flexible... budget 8 kW leaves 4 kW flexible: levels 2 and 2.
    limits, shortfall = split(SharingRule.EQUAL_SHARE, 8000.0)
    assert limits == [3000.0, 3000.0, 2000.0]
    assert shortfall == 0.0


def test_equal_share_leaves_small_users_alone() -> None:
    # 11 kW: 7 kW flexible allowed; the 2 kW home keeps all of it, the big one gets 5 kW.
    limits, _ = split(SharingRule.EQUAL_SHARE, 11000.0)
    assert limits == [6000.0, 3000.0, 2000.0]


def test_pro_rata_sheds_the_same_fraction_of_flexible_power() -> None:
    # 12 kW demand, 10 kW budget: shed 2 of 8 kW flexible = 25 % of each home's flexibility.
    limits, _ = split(SharingRule.PRO_RATA_FLEXIBLE, 10000.0)
    assert limits == [5500.0, 2500.0, 2000.0]


def test_merit_order_curtails_the_cheapest_first() -> None:
    # Home 2 (0.05 EUR/kWh) gives up its 2 kW first, then home 1 the remaining 1 kW.
    limits, _ = split(SharingRule.MERIT_ORDER, 9000.0)
    assert limits == [6000.0, 1000.0, 2000.0]


def test_budget_above_demand_is_shared_as_equal_headroom() -> None:
    limits, shortfall = split(SharingRule.PRO_RATA_FLEXIBLE, 15000.0)
    assert limits == [8000.0, 4000.0, 3000.0]
    assert shortfall == 0.0


def test_headroom_stops_at_the_connection() -> None:
    result = split_budget(
        SharingRule.EQUAL_SHARE,
        100_000.0,
        DEMAND,
        floor_w=FLOOR,
        ceiling_w=np.array([8000.0, 4000.0, 20000.0]),
        cost=COST,
    )
    assert result.limits_w.tolist() == [8000.0, 4000.0, 20000.0]


@pytest.mark.parametrize("rule", list(SharingRule))
def test_infeasible_budget_holds_everyone_at_the_minimum_and_says_by_how_much(
    rule: SharingRule,
) -> None:
    limits, shortfall = split(rule, 3000.0)
    assert limits == FLOOR.tolist()
    assert shortfall == pytest.approx(1000.0)


@pytest.mark.parametrize("rule", list(SharingRule))
def test_negative_budget_is_infeasible_not_a_crash(rule: SharingRule) -> None:
    limits, shortfall = split(rule, -500.0)
    assert limits == FLOOR.tolist()
    assert shortfall == pytest.approx(4500.0)


def test_no_homes_is_an_empty_split() -> None:
    empty = np.zeros(0)
    result = split_budget(
        SharingRule.EQUAL_SHARE, 1000.0, empty, floor_w=empty, ceiling_w=empty, cost=empty
    )
    assert result.limits_w.size == 0
    assert result.shortfall_w == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(SharingRule)),
    st.lists(
        st.tuples(st.floats(0, 5000), st.floats(0, 11000), st.floats(0, 1), st.floats(0, 5000)),
        min_size=1,
        max_size=30,
    ),
    st.floats(0, 1.5),
)
def test_limits_respect_floors_ceilings_and_add_up_to_the_budget(
    rule: SharingRule,
    homes: list[tuple[float, float, float, float]],
    budget_fraction: float,
) -> None:
    floor = np.array([h[0] for h in homes])
    demand = floor + np.array([h[1] for h in homes])
    ceiling = demand + np.array([h[3] for h in homes])
    cost = np.array([h[2] for h in homes])
    budget = float(floor.sum() + budget_fraction * (ceiling.sum() - floor.sum()))
    result = split_budget(rule, budget, demand, floor_w=floor, ceiling_w=ceiling, cost=cost)
    assert (result.limits_w >= floor - 1e-6).all()
    assert (result.limits_w <= ceiling + 1e-6).all()
    assert result.shortfall_w == 0.0
    assert result.limits_w.sum() == pytest.approx(min(budget, ceiling.sum()), abs=1e-3)
    # Nobody is cut below its demand unless the budget is below the summed demand.
    if budget >= demand.sum():
        assert (result.limits_w >= demand - 1e-6).all()
