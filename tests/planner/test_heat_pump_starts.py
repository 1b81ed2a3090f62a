"""A heat pump's start budget over the whole horizon (`max_starts_total`), by hand.

Three 2-step comfort blocks each need one quarter hour on (2 kW, COP 2: 1 kWh of heat);
prices 0.1 / 0.5 alternate, so on-time costs 0.05 or 0.25 EUR per quarter hour."""

from __future__ import annotations

import pytest

from netbewust_core.planning.planner import plan
from netbewust_core.planning.problem import HeatPumpDay, PlanHeatPump, PlanningError

from .conftest import make_problem

PRICES = [0.1, 0.5, 0.1, 0.5, 0.1, 0.5]


def _pump(max_starts_total: int | None) -> PlanHeatPump:
    return PlanHeatPump(
        device_id="hp",
        rated_power_w=2000.0,
        cop=2.0,
        days=tuple(
            HeatPumpDay(start_step=start, end_step=start + 2, heat_need_wh=1000.0)
            for start in (0, 2, 4)
        ),
        max_starts_total=max_starts_total,
    )


# No budget: the cheap step of each block (3 starts). Two starts: one run must bridge
# two blocks through a dear step ({0}, {3, 4} or {1, 2}, {4}). One start: a single run
# from block 1 to block 3 (steps 1-4).
@pytest.mark.parametrize(
    ("total", "starts", "on_steps", "cost"),
    [(None, 3, 3, 0.15), (3, 3, 3, 0.15), (2, 2, 3, 0.35), (1, 1, 4, 0.60)],
)
def test_blocks_share_the_start_budget(
    total: int | None, starts: int, on_steps: int, cost: float
) -> None:
    result = plan(make_problem(PRICES, heat_pumps=(_pump(total),)))
    on = [s.heat_pumps["hp"].on for s in result.steps]
    made = sum(1 for before, now in zip([False, *on], on, strict=False) if now and not before)
    assert made == starts
    assert sum(on) == on_steps
    for start in (0, 2, 4):
        assert any(on[start : start + 2]), "every block gets its heat"
    assert result.expected_cost_eur == pytest.approx(cost)


def test_running_at_start_needs_no_start() -> None:
    pump = PlanHeatPump(
        device_id="hp",
        rated_power_w=2000.0,
        cop=2.0,
        running_at_start=True,
        days=(HeatPumpDay(start_step=0, end_step=6, heat_need_wh=1000.0),),
        max_starts_total=0,
    )
    result = plan(make_problem(PRICES, heat_pumps=(pump,)))
    on = [s.heat_pumps["hp"].on for s in result.steps]
    # Without a start the only way to run is to keep running from the first step.
    assert on[0]
    assert on == sorted(on, reverse=True)


def test_negative_budget_is_refused() -> None:
    with pytest.raises(PlanningError, match="max_starts_total"):
        _pump(-1)
