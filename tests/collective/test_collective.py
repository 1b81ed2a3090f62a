"""The collective planner: hand-checked optima, the cap, fairness, infeasible caps."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from netbewust_core.collective.planner import CollectiveStatus, plan_collective
from netbewust_core.collective.problem import CollectiveError, CollectiveProblem, SharingRule
from netbewust_core.limits import ExternalLimit, LimitSource
from netbewust_core.planning.problem import PlanBattery

from .conftest import START, community, ev, home, synthetic_problem
from .reference import reference_cost

PRICES = [0.10, 0.20, 0.30, 0.40]


def two_evs(**kwargs: object) -> CollectiveProblem:
    """Two cars of 1 kWh, 4 kW each; alone both charge in the cheap first quarter hour."""
    homes = [
        home("a", [0.0] * 4, envelopes=(ev(1000, 0, 4),)),
        home("b", [0.0] * 4, envelopes=(ev(1000, 0, 4),)),
    ]
    return community(homes, PRICES, **{"cap_w": 6000.0, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_two_cars_share_the_cheap_quarter_hour_as_computed_by_hand(chunk_size: int) -> None:
    result = plan_collective(replace(two_evs(), chunk_size=chunk_size))

    # 6 kW x 0.25 h = 1.5 kWh at 0.10, the last 0.5 kWh at 0.20: 0.25 EUR; alone 0.20.
    assert result.cost_eur == pytest.approx(0.25, abs=1e-9)
    assert result.cost_alone_eur == pytest.approx(0.20, abs=1e-9)
    assert result.members_w[0] == pytest.approx(6000.0, abs=1e-3)
    assert result.members_w[1] == pytest.approx(2000.0, abs=1e-3)
    assert result.members_alone_w[0] == pytest.approx(8000.0)  # the secondary peak
    assert result.binding_steps == (0,)
    assert result.status is (
        CollectiveStatus.OPTIMAL if chunk_size == 2 else CollectiveStatus.COORDINATED
    )
    for outcome in result.households:
        assert sum(outcome.envelope_w[0]) * 0.25 == pytest.approx(1000.0, abs=1e-3)
        # Equal share: each pays its 0.10 alone plus half the 0.05 the cap costs.
        assert outcome.settled_cost_eur == pytest.approx(0.125, abs=1e-9)


def limit_series(limit: ExternalLimit, steps: int) -> list[float | None]:
    """The limit's max import per quarter hour from START (None: not limited)."""
    series: list[float | None] = [None] * steps
    for interval in limit.intervals:
        first = (interval.start - START) // timedelta(minutes=15)
        last = (interval.end - START) // timedelta(minutes=15)
        series[first:last] = [interval.max_import_w] * (last - first)
    return series


def test_limits_hold_the_plan_where_the_cap_binds_and_add_up_to_the_cap() -> None:
    result = plan_collective(two_evs(issued_at=START, limit_validity=timedelta(minutes=30)))

    totals = np.zeros(4)
    for outcome in result.households:
        limit = outcome.limit
        assert limit.source is LimitSource.COMMUNITY
        assert limit.issued_at == START
        assert limit.expires_at == START + timedelta(minutes=30)
        assert all(interval.max_export_w is None for interval in limit.intervals)
        series = limit_series(limit, 4)
        assert None not in series  # every step: either could move into any of them
        assert series[0] == pytest.approx(outcome.grid_w[0], abs=0.1)  # the binding step
        assert all(v >= g - 1e-6 for v, g in zip(series, outcome.grid_w, strict=True))  # type: ignore[operator]
        totals += np.array(series, dtype=float)
    # Whatever each car does within its limit, the two together stay within the cap.
    assert totals == pytest.approx([6000.0] * 4, abs=0.2)


def test_steps_where_the_cap_absorbs_every_deviation_are_not_limited() -> None:
    # From step 2 on the cap has room for both cars at full power at once.
    result = plan_collective(two_evs(cap_w=[6000.0, 6000.0, 10_000.0, 10_000.0]))

    assert result.binding_steps == (0,)
    for outcome in result.households:
        series = limit_series(outcome.limit, 4)
        assert series[0] == pytest.approx(outcome.grid_w[0], abs=0.1)
        assert series[1] is not None
        assert series[1] > outcome.grid_w[1]
        assert series[2:] == [None, None]


def test_limit_expiry_never_passes_the_horizon() -> None:
    result = plan_collective(two_evs(limit_validity=timedelta(days=3)))
    assert all(o.limit.expires_at == START + timedelta(hours=1) for o in result.households)


def test_a_household_without_flexibility_is_never_limited() -> None:
    homes = [
        home("a", [0.0] * 4, envelopes=(ev(1000, 0, 4),)),
        home("b", [0.0] * 4, envelopes=(ev(1000, 0, 4),)),
        home("fixed", [1000.0] * 4),
    ]
    result = plan_collective(community(homes, PRICES, cap_w=7000.0))

    fixed = result.households[2]
    assert result.binding_steps == (0,)
    assert fixed.limit.intervals == ()
    assert fixed.grid_w == pytest.approx((1000.0,) * 4)
    assert result.cost_eur == pytest.approx(reference_cost(community(homes, PRICES, cap_w=7000.0)))


def test_a_cap_that_does_not_bind_changes_nothing() -> None:
    result = plan_collective(two_evs(cap_w=20_000.0))

    assert result.status is CollectiveStatus.OPTIMAL
    assert result.binding_steps == ()
    assert result.cost_eur == result.cost_alone_eur == pytest.approx(0.20)
    for outcome in result.households:
        assert outcome.limit.intervals == ()
        assert outcome.cost_eur == outcome.settled_cost_eur == outcome.cost_alone_eur


def test_non_member_load_takes_its_part_of_the_cap() -> None:
    result = plan_collective(two_evs(cap_w=8000.0, non_member_w=[2000.0] * 4))
    assert result.members_import_cap_w == pytest.approx((6000.0,) * 4)
    assert result.cost_eur == pytest.approx(0.25)


def test_export_cap_is_met_by_storing_pv_in_a_battery() -> None:
    battery = PlanBattery(
        device_id="battery",
        capacity_wh=4000.0,
        max_charge_w=3000.0,
        max_discharge_w=3000.0,
        soc_min_pct=0.0,
        soc_max_pct=100.0,
        soc_initial_pct=0.0,
        charge_efficiency=1.0,
        discharge_efficiency=1.0,
    )
    homes = [
        home("pv", [-5000.0, -5000.0, 500.0, 500.0], batteries=(battery,)),
        home("x", [-1000.0] * 4),
    ]
    problem = community(homes, PRICES, export_price=[0.05] * 4, cap_w=20_000.0, export_cap_w=3000.0)
    result = plan_collective(problem)

    assert result.status is CollectiveStatus.OPTIMAL
    assert min(result.members_w) >= -3000.0 - 1e-3
    assert result.households[0].battery_w[0][0] == pytest.approx(3000.0, abs=1e-3)
    limit = result.households[0].limit
    assert [i.max_export_w for i in limit.intervals] == pytest.approx([2000.0])
    assert result.cost_eur == pytest.approx(reference_cost(problem), abs=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_random_small_communities_match_the_monolithic_lp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    homes = []
    for index in range(3):
        envelopes = []
        for _ in range(int(rng.integers(0, 3))):
            start = int(rng.integers(0, n - 2))
            end = int(rng.integers(start + 2, n + 1))
            power = float(rng.uniform(1000, 5000))
            envelopes.append(
                ev(float(rng.uniform(0.1, 0.9)) * power * (end - start) / 4, start, end, power)
            )
        batteries: tuple[PlanBattery, ...] = ()
        if rng.uniform() < 0.5:
            batteries = (
                PlanBattery(
                    device_id="b",
                    capacity_wh=5000.0,
                    max_charge_w=2500.0,
                    max_discharge_w=2500.0,
                    soc_final_min_pct=50.0,
                ),
            )
        homes.append(
            home(
                f"h{index}",
                rng.uniform(-2000, 2000, n).tolist(),
                envelopes=tuple(envelopes),
                batteries=batteries,
            )
        )
    import_price = rng.uniform(0.1, 0.4, n).tolist()
    export_price = [p - float(rng.uniform(0, 0.1)) for p in import_price]
    alone = plan_collective(community(homes, import_price, export_price=export_price, cap_w=1e6))
    peak = max(alone.members_w)
    problem = community(
        homes,
        import_price,
        export_price=export_price,
        cap_w=max(peak * 0.8, 3000.0),
        export_cap_w=3000.0,
    )
    reference = reference_cost(problem)

    exact = plan_collective(replace(problem, chunk_size=3))
    split = plan_collective(replace(problem, chunk_size=1))
    certified = plan_collective(replace(problem, chunk_size=1), certify=True)

    assert exact.status is CollectiveStatus.OPTIMAL
    assert exact.cost_eur == pytest.approx(reference, abs=1e-6)
    assert exact.lower_bound_eur == exact.objective_eur == pytest.approx(exact.cost_eur)
    # One household per group is the split's worst case (groups that bind with different
    # duals do not trade room): still feasible, never below the optimum ...
    assert split.status is CollectiveStatus.COORDINATED
    assert split.cost_eur >= reference - 1e-6
    # ... and a certified plan is within 0.5 % (or solved whole), its bound below the optimum.
    assert certified.cost_alone_eur - 1e-9 <= certified.lower_bound_eur <= reference + 1e-6
    assert certified.cost_eur <= reference + 0.005 * abs(reference) + 1e-6
    assert certified.gap_bound <= 0.005 + 1e-9
    for result in (exact, split, certified):
        members = np.asarray(result.members_w)
        assert (members <= np.asarray(result.members_import_cap_w) + 1e-3).all()
        assert (members >= -np.asarray(result.members_export_cap_w) - 1e-3).all()
        assert result.cost_alone_eur <= result.cost_eur + 1e-9


@pytest.mark.parametrize("rule", list(SharingRule))
def test_every_sharing_rule_settles_exactly_the_community_cost(rule: SharingRule) -> None:
    homes = [
        home("big", [0.0] * 4, envelopes=(ev(1500, 0, 4),)),
        home("small", [0.0] * 4, envelopes=(ev(500, 0, 4),)),
        home("none", [500.0] * 4),
    ]
    result = plan_collective(community(homes, PRICES, cap_w=6000.0, sharing_rule=rule))
    none = result.households[2]
    extra = [o.settled_cost_eur - o.cost_alone_eur for o in result.households]

    assert result.cost_of_cap_eur > 0
    assert sum(o.settled_cost_eur for o in result.households) == pytest.approx(result.cost_eur)
    match rule:
        case SharingRule.EQUAL_SHARE:
            assert extra == pytest.approx([result.cost_of_cap_eur / 3] * 3)
        case SharingRule.PRO_RATA_FLEXIBLE:
            assert extra == pytest.approx(
                [0.75 * result.cost_of_cap_eur, 0.25 * result.cost_of_cap_eur, 0.0]
            )
        case SharingRule.MERIT_ORDER:
            assert [o.settled_cost_eur for o in result.households] == [
                o.cost_eur for o in result.households
            ]
    assert none.cost_eur == none.cost_alone_eur


def test_a_cap_below_the_inflexible_load_gives_a_clear_result() -> None:
    homes = [home("a", [5000.0] * 4, envelopes=(ev(500, 0, 4),)), home("b", [5000.0] * 4)]
    result = plan_collective(community(homes, PRICES, cap_w=8000.0, chunk_size=1))

    assert result.status is CollectiveStatus.CAP_INFEASIBLE
    assert result.cap_excess_w == pytest.approx((2000.0,) * 4, abs=1e-3)
    assert result.reason.startswith("the cap cannot be met in 4 steps")
    assert "1 household short of 0.5 kWh" in result.reason
    # The car is not charged on top of an overload: the transformer comes first.
    assert result.households[0].shortfall_wh == pytest.approx(500.0, abs=1e-3)
    assert all(max(o.envelope_w[0]) == pytest.approx(0.0, abs=1e-3) for o in result.households[:1])


def test_an_impossible_need_is_reported_as_shortfall() -> None:
    homes = [home("a", [0.0] * 4, envelopes=(ev(2000, 0, 4, max_power_w=4000.0),))]
    result = plan_collective(community(homes, PRICES, cap_w=1000.0))

    # 1 kW for an hour delivers 1 kWh of the 2 kWh asked.
    assert result.status is CollectiveStatus.OPTIMAL
    assert result.households[0].shortfall_wh == pytest.approx(1000.0, abs=1e-3)
    assert max(result.members_w) <= 1000.0 + 1e-3
    assert result.reason.startswith("1 household short of 1.0 kWh")
    # The penalty counts in the objective, not in the energy cost.
    assert result.objective_eur == pytest.approx(result.cost_eur + 100.0)


def test_groups_of_a_synthetic_community_stay_within_half_a_percent_of_the_full_lp() -> None:
    problem = synthetic_problem(60, seed=3)
    direct = plan_collective(replace(problem, chunk_size=60))
    grouped = plan_collective(replace(problem, chunk_size=15), certify=True)

    assert direct.status is CollectiveStatus.OPTIMAL
    assert grouped.status is CollectiveStatus.COORDINATED
    assert max(direct.members_alone_w) > max(direct.members_import_cap_w)  # secondary peak
    assert direct.cost_eur <= grouped.cost_eur <= direct.cost_eur * 1.005
    # The certified bound brackets the optimum and is tight enough to be useful.
    assert grouped.lower_bound_eur <= direct.cost_eur + 1e-6
    assert grouped.gap_bound < 0.005
    members = np.asarray(grouped.members_w)
    assert (members <= np.asarray(grouped.members_import_cap_w) + 1e-3).all()
    assert grouped.groups == 4


def test_every_schedule_honours_its_household_and_the_limits_add_up_to_the_cap() -> None:
    problem = synthetic_problem(40, seed=11)
    result = plan_collective(replace(problem, chunk_size=10))
    step = timedelta(minutes=15)
    # What the limits allot above the plans; a limit cannot ask for export, so a
    # household planned to export is allotted at least the way back to zero.
    allotted = np.zeros(problem.n_steps)
    inexpressible = np.zeros(problem.n_steps)

    for household, outcome in zip(problem.households, result.households, strict=True):
        grid = np.asarray(outcome.grid_w)
        assert (grid <= household.import_limit_w + 1e-3).all()
        assert (grid >= -household.export_limit_w - 1e-3).all()
        drawn = np.asarray(household.baseline_w) + np.sum(outcome.envelope_w, axis=0)
        drawn = drawn + np.sum(outcome.battery_w, axis=0) if outcome.battery_w else drawn
        assert grid == pytest.approx(drawn, abs=1e-3)
        delivered = 0.0
        for envelope, power in zip(household.envelopes, outcome.envelope_w, strict=True):
            power_array = np.asarray(power)
            assert (power_array <= envelope.max_power_w + 1e-3).all()
            outside = np.ones(len(power), dtype=bool)
            outside[envelope.start_step : envelope.end_step] = False
            assert np.abs(power_array[outside]).max(initial=0.0) < 1e-3
            delivered += power_array.sum() * 0.25
        needed = sum(envelope.energy_wh for envelope in household.envelopes)
        assert delivered + outcome.shortfall_wh == pytest.approx(needed, abs=1e-2)
        discharge = sum(battery.max_discharge_w for battery in household.batteries)
        for interval in outcome.limit.intervals:
            first = int((interval.start - problem.start) / step)
            last = int((interval.end - problem.start) / step)
            # Never below what the household cannot avoid (its base less its battery).
            unavoidable = max(household.baseline_w[first:last]) - discharge
            if interval.max_import_w is not None:
                assert interval.max_import_w >= unavoidable - 1e-6
                planned = grid[first:last]
                assert (interval.max_import_w >= planned - 1e-3).all()
                allotted[first:last] += interval.max_import_w - planned
                inexpressible[first:last] += np.clip(-planned, 0.0, None)
    spare = np.asarray(result.members_import_cap_w) - np.asarray(result.members_w)
    assert result.binding_steps
    assert allotted.max() > 1000.0  # limits outside the binding steps share real room
    assert (allotted <= np.clip(spare, 0.0, None) + inexpressible + 0.1 * 40).all()


def test_limit_headroom_raises_import_limits_within_the_connection_only() -> None:
    """Forecast-error headroom rides on every import limit, never above the fuse, and
    a step without a limit stays without one."""
    homes = [
        home("a", [0.0] * 4, envelopes=(ev(1000, 0, 4),), limit_headroom_w=300.0),
        home(
            "b",
            [0.0] * 4,
            envelopes=(ev(1000, 0, 4),),
            import_limit_w=3100.0,
            limit_headroom_w=500.0,
        ),
    ]
    problem = community(homes, PRICES, cap_w=[6000.0, 6000.0, 10_000.0, 10_000.0])
    plain = plan_collective(
        replace(problem, households=(replace(homes[0], limit_headroom_w=0.0), homes[1]))
    )
    raised = plan_collective(problem)

    assert raised.members_w == pytest.approx(plain.members_w)  # the plan is the same
    before = limit_series(plain.households[0].limit, 4)
    after = limit_series(raised.households[0].limit, 4)
    assert after[:2] == pytest.approx([w + 300.0 for w in before[:2]], abs=0.2)  # type: ignore[operator]
    assert after[2:] == before[2:] == [None, None]
    assert all(i.max_export_w is None for i in raised.households[0].limit.intervals)
    capped = raised.households[1]
    capped_series = limit_series(capped.limit, 4)
    assert capped_series[2:] == [None, None]
    for limit_w, planned_w in zip(capped_series[:2], capped.grid_w[:2], strict=True):
        assert limit_w is not None
        assert planned_w - 1e-6 <= limit_w <= 3100.0 + 0.1
    assert 3100.0 in capped_series  # the fuse, not plan + 500 W
    with pytest.raises(CollectiveError, match="limit_headroom_w"):
        replace(homes[0], limit_headroom_w=-1.0)
