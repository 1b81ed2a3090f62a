"""Shares of the cap rounded to what chargers and on/off heat pumps can really draw."""

from __future__ import annotations

import numpy as np
import pytest

from netbewust_core.collective.minimums import round_to_minimums
from netbewust_core.collective.planner import plan_collective
from netbewust_core.collective.problem import CollectiveError, ShiftableEnergy

from .conftest import START, community, home

MIN_W = 1400.0


def test_small_shares_are_pooled_into_whole_minimums_for_the_most_owed() -> None:
    # Three cars get 1,000 W each: 3,000 W pooled gives two of them 1,400 W; the fourth
    # car gives up 1,200 W of its 5,000 W to complete the third.
    rounded = round_to_minimums(
        np.array([1000.0, 1000.0, 1000.0, 5000.0]),
        np.array([MIN_W, MIN_W, MIN_W, MIN_W]),
        owed=np.array([1.0, 3.0, 2.0, 0.0]),
    )
    assert rounded.tolist() == pytest.approx([MIN_W, MIN_W, MIN_W, 3800.0])
    assert rounded.sum() == pytest.approx(8000.0)


def test_a_minimum_that_cannot_be_completed_goes_to_zero() -> None:
    rounded = round_to_minimums(np.array([1000.0, 1500.0]), np.array([MIN_W] * 2), np.zeros(2))
    assert rounded.tolist() == [0.0, 1500.0]


def test_spare_room_rounds_up_and_shares_at_the_minimum_stay() -> None:
    rounded = round_to_minimums(
        np.array([700.0, MIN_W - 0.5, 0.0]), np.array([MIN_W] * 3), np.zeros(3), spare_w=700.0
    )
    assert rounded.tolist() == [MIN_W, MIN_W - 0.5, 0.0]


@pytest.mark.parametrize(
    ("share", "minimum", "spare"),
    [
        ([-1.0], [MIN_W], 0.0),
        ([np.nan], [MIN_W], 0.0),
        ([1.0], [MIN_W, 1.0], 0.0),
        ([1.0], [1.0], -1.0),
    ],
)
def test_bad_input_is_rejected(share: list[float], minimum: list[float], spare: float) -> None:
    with pytest.raises(ValueError, match=r"shape|finite|>= 0"):
        round_to_minimums(np.array(share), np.array(minimum), np.zeros(len(share)), spare)


def test_an_envelope_minimum_above_its_maximum_is_rejected() -> None:
    with pytest.raises(CollectiveError):
        ShiftableEnergy(
            name="ev",
            energy_wh=1.0,
            max_power_w=1000.0,
            min_power_w=1400.0,
            start_step=0,
            end_step=1,
        )


def _car(minimum_w: float) -> ShiftableEnergy:
    return ShiftableEnergy(
        name="ev",
        energy_wh=500.0,
        max_power_w=4000.0,
        min_power_w=minimum_w,
        start_step=0,
        end_step=2,
    )


def test_binding_limits_leave_each_car_nothing_or_its_minimum_within_the_cap() -> None:
    # Three cars, 0.5 kWh each, cap 3 kW: the LP can split each step 1 kW a car, which
    # no car can use; the limits give whole 1.4 kW minimums instead, within the cap.
    cars = [home(f"h{i}", [0.0, 0.0], envelopes=(_car(MIN_W),)) for i in range(3)]
    result = plan_collective(community(cars, [0.10, 0.20], cap_w=3000.0))

    totals = np.zeros(2)
    granted = np.zeros(3)
    for index, outcome in enumerate(result.households):
        for interval in outcome.limit.intervals:
            step = int((interval.start - START).total_seconds() // 900)
            assert interval.max_import_w is not None
            assert interval.max_import_w == 0.0 or interval.max_import_w >= MIN_W - 1.0
            totals[step] += interval.max_import_w
            granted[index] += interval.max_import_w * 0.25
    assert set(result.binding_steps) == {0, 1}
    assert (totals <= 3000.0 + 0.3).all()
    # Two minimums fit each step; over both steps every car gets at least one.
    assert (granted >= MIN_W * 0.25 - 1.0).all()


def _usable_energy_wh(limit_w: list[float | None]) -> float:
    """What a car with a 1.4 kW minimum can charge under these quarter-hour limits."""
    return sum(min(w, 4000.0) * 0.25 for w in limit_w if w is not None and w >= MIN_W - 1.0)


def test_energy_rounding_takes_from_a_car_is_placed_where_the_cap_has_room() -> None:
    # The two cheap steps hold exactly the three cars' 1.5 kWh as 1 kW each; whole
    # minimums fit only twice per step there (2.8 kW), so 0.1 kWh must go to step 2,
    # dearer but with room under its 10 kW cap.
    cars = [home(f"h{i}", [0.0] * 3, envelopes=(_car3(),)) for i in range(3)]
    problem = community(cars, [0.10, 0.20, 0.40], cap_w=[3000.0, 3000.0, 10_000.0])
    result = plan_collective(problem)

    assert set(result.binding_steps) == {0, 1}
    totals = np.zeros(3)
    for outcome in result.households:
        assert outcome.shortfall_wh == pytest.approx(0.0, abs=1e-6)
        series: list[float | None] = [None] * 3
        for interval in outcome.limit.intervals:
            step = int((interval.start - START).total_seconds() // 900)
            series[step] = interval.max_import_w
        assert _usable_energy_wh(series) >= 500.0 - 1e-6
        totals += np.array([0.0 if w is None else w for w in series])
        # The suggested schedule is rounded too: nothing between zero and the minimum.
        (schedule,) = outcome.envelope_w
        assert all(w < 1e-6 or w >= MIN_W - 1.0 for w in schedule)
        assert sum(schedule) * 0.25 >= 500.0 - 1e-6
    assert (np.asarray(result.members_w)[:2] <= 3000.0 + 1e-6).all()
    assert (totals[:2] <= 3000.0 + 0.3).all()


def _car3() -> ShiftableEnergy:
    return ShiftableEnergy(
        name="ev", energy_wh=500.0, max_power_w=4000.0, min_power_w=MIN_W, start_step=0, end_step=3
    )
