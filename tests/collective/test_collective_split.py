"""Splitting the cap between groups: shares add up to the cap, re-splits never hurt."""

from __future__ import annotations

import numpy as np
import pytest

from netbewust_core.collective.split import initial_shares, reshare


def test_over_the_cap_every_group_keeps_the_same_fraction_of_its_flexible_use() -> None:
    usage = np.array([[10.0, 4.0], [6.0, 2.0]])  # two groups, two steps
    floor = np.array([[2.0, 1.0], [2.0, 1.0]])
    # Step 0: 16 kW wanted, cap 10: flexible use 8 + 4, room above the floors 6 -> half each.
    shares = initial_shares(usage, floor, np.array([10.0, 10.0]), np.array([1.0, 3.0]))

    assert shares[:, 0] == pytest.approx([2.0 + 4.0, 2.0 + 2.0])
    # Step 1 fits (6 of 10): the spare 4 kW goes by flexible size (1 : 3).
    assert shares[:, 1] == pytest.approx([4.0 + 1.0, 2.0 + 3.0])


def test_below_the_floors_the_shares_still_add_up_to_the_cap() -> None:
    usage = np.array([[5.0], [5.0]])
    floor = np.array([[4.0], [4.0]])
    shares = initial_shares(usage, floor, np.array([6.0]), np.array([1.0, 1.0]))
    assert shares.sum() == pytest.approx(6.0)
    assert (shares < floor).all()  # the groups' slacks will show the 2 kW


def test_unused_room_goes_to_the_groups_that_value_it() -> None:
    shares = np.array([[5.0, 5.0], [5.0, 5.0]])
    used = np.array([[3.0, 5.0], [5.0, 5.0]])  # group 0 leaves 2 kW in step 0
    values = np.array([[0.0, 0.0], [0.2, 0.0]])  # group 1 wants more in step 0

    new, gains = reshare(shares, used, values, np.array([10.0, 10.0]))

    assert new[:, 0] == pytest.approx([3.0, 7.0])
    assert new[:, 1] == pytest.approx([5.0, 5.0])
    assert gains.tolist() == [False, True]


@pytest.mark.parametrize("seed", range(20))
def test_random_splits_add_up_and_keep_every_group_feasible(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups, steps = 5, 8
    floor = rng.uniform(-3, 3, (groups, steps))
    usage = floor + rng.uniform(0, 6, (groups, steps))
    available = usage.sum(axis=0) * rng.uniform(0.5, 1.5, steps)
    shares = initial_shares(usage, floor, available, rng.uniform(0.1, 5, groups))
    assert shares.sum(axis=0) == pytest.approx(available)
    feasible = usage.sum(axis=0) <= available
    assert (shares[:, feasible] >= usage[:, feasible] - 1e-9).all()
    assert (shares[:, ~feasible] >= floor[:, ~feasible] - 1e-9).all()

    used = np.minimum(usage, shares) - rng.uniform(0, 1, (groups, steps))
    values = np.where(
        rng.uniform(size=(groups, steps)) < 0.3, rng.uniform(0, 1, (groups, steps)), 0
    )
    new, _ = reshare(shares, used, values, available)
    assert new.sum(axis=0) == pytest.approx(available)
    assert (new >= np.minimum(used, shares) - 1e-9).all()  # old solutions stay feasible
