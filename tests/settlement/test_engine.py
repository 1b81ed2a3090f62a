"""The settlement engine: quarter figures, gaps, baselines, flexibility, money that adds up."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbewust_core.settlement.baseline import BaselineCommitment, gate_closure
from netbewust_core.settlement.quarters import (
    Period,
    figures_from_sums,
    month_period,
    period_of,
    telemetry_parts,
)
from netbewust_core.settlement.rules import (
    PeriodInput,
    SavingSplit,
    SettlementRules,
    apportion,
    settle,
    settlement_timeline,
)
from netbewust_core.settlement.shapley import (
    CostModel,
    coalition_saving,
    exact_shapley,
    group_costs,
    sampled_shapley,
    shapley_saving,
)

ZONE = ZoneInfo("Europe/Amsterdam")
# One local day: Wednesday 2026-11-25 (a weekday), after 28 days of look-back.
DAY = date(2026, 11, 25)
DAY_START = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
ONE_DAY = Period("2026-11-25", DAY_START, DAY_START + timedelta(days=1))
COSTS = CostModel(0.25, 0.05, 4.0)


def test_a_report_is_split_over_the_quarters_it_overlaps() -> None:
    parts = telemetry_parts(datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC), 60, 3600.0, True)
    assert [(p.start.minute, p.import_wh, p.covered_s) for p in parts] == [
        (45, 30.0, 30.0),
        (0, 30.0, 30.0),
    ]
    (export,) = telemetry_parts(datetime(2026, 11, 22, 12, 10, tzinfo=UTC), 10, -720.0, False)
    assert (export.import_wh, export.export_wh, export.paused_s) == (0.0, 2.0, 10.0)
    for bad in (0, -5, 901, math.nan):
        with pytest.raises(ValueError, match="telemetry window"):
            telemetry_parts(DAY_START, bad, 100.0, True)


def test_a_quarter_counts_from_ninety_percent_coverage_and_overlaps_are_scaled() -> None:
    short = figures_from_sums(
        "h", DAY_START, import_wh=100, export_wh=0, covered_s=800, paused_s=0, limit_w=None
    )
    assert not short.counts
    assert short.covered == pytest.approx(800 / 900)
    doubled = figures_from_sums(
        "h", DAY_START, import_wh=400, export_wh=0, covered_s=1800, paused_s=5, limit_w=2000
    )
    assert doubled.counts
    assert doubled.paused
    assert doubled.import_kwh == pytest.approx(0.2)
    assert doubled.limit_kwh == pytest.approx(0.5)


def test_a_month_is_local_and_follows_dst() -> None:
    march, october = month_period("2026-03", ZONE), month_period("2026-10", ZONE)
    assert march.start == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    assert march.quarters == 31 * 96 - 4  # spring forward
    assert october.quarters == 31 * 96 + 4  # fall back
    assert month_period("2026-12", ZONE).end == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert period_of(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), ZONE).key == "2026-12"
    for bad in ("2026-13", "2026-1", "26-01", "x" * 100, "2026-00", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_period(bad, ZONE)


def test_gate_closure_is_noon_local_the_day_before() -> None:
    assert gate_closure(DAY, ZONE) == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert gate_closure(date(2026, 7, 1), ZONE) == datetime(2026, 6, 30, 10, 0, tzinfo=UTC)


def _input(households: int, *, base_kwh: float = 0.5) -> PeriodInput:
    """`households` that imported `base_kwh` every quarter of the look-back."""
    timeline = settlement_timeline(ONE_DAY, ZONE, SettlementRules(version=1).baseline)
    shape = (households, timeline.quarters)
    return PeriodInput(
        period=ONE_DAY,
        timeline=timeline,
        households=tuple(f"h{i}" for i in range(households)),
        import_kwh=np.full(shape, base_kwh),
        export_kwh=np.zeros(shape),
        limit_kwh=np.full(shape, np.nan),
        covered=np.ones(shape),
        paused=np.zeros(shape, dtype=bool),
        commitments={},
    )


def _window(data: PeriodInput) -> slice:
    return slice(data.timeline.index_of(ONE_DAY.start), data.timeline.index_of(ONE_DAY.end))


def _commit(power_w: float, at: datetime, quarters: int = 96) -> BaselineCommitment:
    return BaselineCommitment(day=DAY, committed_at=at, power_w=(power_w,) * quarters)


ON_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_delivered_flexibility_is_clipped_to_what_was_asked_and_shortfall_counted() -> None:
    data = _input(3)
    window = _window(data)
    data.limit_kwh[:, window] = 0.25  # 1 kW asked for the whole day
    data.import_kwh[0, window] = 0.1  # held back more than asked
    data.import_kwh[1, window] = 0.4  # held back some
    data.import_kwh[2, window] = 0.6  # above the limit and above its baseline
    data = replace(
        data, commitments={"h0": [_commit(2000, ON_TIME)], "h1": [_commit(2000, ON_TIME)]}
    )
    result = settle(data, SettlementRules(version=1, saving_split=SavingSplit.NONE))
    h0, h1, h2 = result.statements
    # h0 and h1 committed 0.5 kWh a quarter (2 kW); history caps at 0.5*1.1+0.05 = 0.6.
    assert h0.asked_kwh == pytest.approx(96 * 0.25)
    assert h0.delivered_kwh == pytest.approx(96 * 0.25)  # clipped to asked
    assert h1.delivered_kwh == pytest.approx(96 * 0.1)
    assert h0.shortfall_kwh == 0.0
    assert h1.shortfall_kwh == pytest.approx(96 * 0.15)
    assert h2.delivered_kwh == 0.0
    assert h2.shortfall_kwh == pytest.approx(96 * 0.35)
    assert h2.baseline_days.history == 1
    assert h0.baseline_days.committed == 1
    assert h0.flex_cents == round(96 * 0.25 * 0.10 * 100)
    assert h0.limited_quarters == 96


def test_an_inflated_baseline_earns_nothing_beyond_the_homes_own_history() -> None:
    data = _input(1)
    window = _window(data)
    data.limit_kwh[:, window] = 0.25
    data.import_kwh[:, window] = 0.25
    data = replace(data, commitments={"h0": [_commit(20_000, ON_TIME)]})  # 5 kWh a quarter
    (statement,) = settle(data, SettlementRules(version=1)).statements
    assert statement.baseline_days.capped_quarters == 96
    assert statement.delivered_kwh == pytest.approx(96 * (0.6 - 0.25))


def test_a_late_or_malformed_commitment_falls_back_to_comparable_days() -> None:
    late = datetime(2026, 11, 24, 11, 0, 1, tzinfo=UTC)
    for commitment, kind in ((_commit(400, late), "late"), (_commit(400, ON_TIME, 95), "invalid")):
        data = _input(1)
        window = _window(data)
        data.limit_kwh[:, window] = 0.25
        data.import_kwh[:, window] = 0.25
        data = replace(data, commitments={"h0": [commitment]})
        (statement,) = settle(data, SettlementRules(version=1)).statements
        assert getattr(statement.baseline_days, kind) == 1
        assert statement.delivered_kwh == pytest.approx(96 * 0.25)  # mean history 0.5


def test_without_enough_history_there_is_no_baseline_and_no_credit() -> None:
    data = _input(1)
    window = _window(data)
    data.covered[:, : window.start] = 0.0  # the look-back unmeasured
    data.limit_kwh[:, window] = 0.25
    data.import_kwh[:, window] = 0.0
    data = replace(data, commitments={"h0": [_commit(2000, ON_TIME)]})
    (statement,) = settle(data, SettlementRules(version=1)).statements
    assert statement.delivered_kwh == 0.0
    assert statement.flex_cents == 0


def test_uncovered_and_paused_quarters_earn_no_credit_and_no_shortfall() -> None:
    data = _input(1)
    window = _window(data)
    data.limit_kwh[:, window] = 0.25
    data.import_kwh[:, window] = 1.0  # far above the limit
    data.covered[0, window.start : window.start + 10] = 0.5
    data.paused[0, window.start + 10 : window.start + 30] = True
    data.import_kwh[0, window.start : window.start + 30] = 0.0  # would be credit if counted
    (statement,) = settle(data, SettlementRules(version=1)).statements
    assert statement.uncovered_quarters == 10
    assert statement.uncovered_limited_quarters == 10
    assert statement.paused_quarters == 20
    assert statement.delivered_kwh == 0.0
    assert statement.shortfall_kwh == pytest.approx(66 * 0.75)


def _profiles(rng: np.random.Generator, n: int, quarters: int = 192) -> np.ndarray:
    load = rng.gamma(2.0, 0.1, (n, quarters))
    sun = np.clip(np.sin(np.linspace(0, 2 * np.pi, quarters)), 0, None)
    return load - sun * rng.uniform(0, 0.8, (n, 1))


def _brute_force(profiles: np.ndarray, model: CostModel) -> list[float]:
    """Shapley by its definition, on coalitions built one by one."""
    n = len(profiles)

    def value(members: tuple[int, ...]) -> float:
        if not members:
            return 0.0
        alone = sum(float(group_costs(profiles[i], model)) for i in members)
        return alone - float(group_costs(profiles[list(members)].sum(axis=0), model))

    result = []
    for player in range(n):
        others = [i for i in range(n) if i != player]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in itertools.combinations(others, size):
                total += weight * (value((*coalition, player)) - value(coalition))
        result.append(total)
    return result


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_exact_shapley_matches_the_definition(n: int) -> None:
    profiles = _profiles(np.random.default_rng(n), n, 96)
    assert exact_shapley(profiles, COSTS) == pytest.approx(_brute_force(profiles, COSTS), abs=1e-9)


@pytest.mark.parametrize("n", [2, 4, 7, 10, 12])
def test_sampled_shapley_is_within_one_percent_of_the_exact_split(n: int) -> None:
    profiles = _profiles(np.random.default_rng(100 + n), n)
    exact = exact_shapley(profiles, COSTS)
    sampled = sampled_shapley(profiles, COSTS, permutations=2000)
    saving = coalition_saving(profiles, COSTS)
    assert saving > 0
    assert np.all(exact >= -1e-9)
    assert float(np.abs(sampled - exact).max()) <= 0.01 * saving
    assert float(sampled.sum()) == pytest.approx(saving, rel=1e-9)  # adds up exactly
    # A fixed seed: the same figures every time.
    assert np.array_equal(sampled, sampled_shapley(profiles, COSTS, permutations=2000))


def test_large_groups_are_sampled_and_still_add_up() -> None:
    profiles = _profiles(np.random.default_rng(7), 30, 96)
    shares = shapley_saving(profiles, COSTS)
    assert float(shares.sum()) == pytest.approx(coalition_saving(profiles, COSTS), rel=1e-9)


def test_energy_only_prices_drop_quarters_without_both_directions() -> None:
    model = CostModel(0.25, 0.05, 0.0)
    profiles = _profiles(np.random.default_rng(3), 6, 96)
    assert exact_shapley(profiles, model) == pytest.approx(_brute_force(profiles, model), abs=1e-9)


def test_bad_cost_models_are_refused() -> None:
    for args in ((0.1, 0.2, 0.0), (-1.0, 0.0, 0.0), (math.inf, 0.0, 0.0), (0.1, 0.0, math.nan)):
        with pytest.raises(ValueError, match="price"):
            CostModel(*args)


@given(
    total=st.integers(min_value=-5, max_value=10_000_000),
    weights=st.lists(
        st.one_of(st.floats(min_value=-1.0, max_value=1e6), st.sampled_from([math.nan, math.inf])),
        min_size=1,
        max_size=50,
    ),
)
def test_apportion_always_adds_up(total: int, weights: list[float]) -> None:
    parts = apportion(total, weights)
    positive = any(math.isfinite(w) and w > 0 for w in weights)
    assert sum(parts) == (total if total > 0 and positive else 0)
    assert all(part >= 0 for part in parts)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**16),
    split=st.sampled_from(list(SavingSplit)),
    fee=st.floats(min_value=0, max_value=10),
    penalty=st.floats(min_value=0, max_value=2),
)
def test_every_rule_adds_up(seed: int, split: SavingSplit, fee: float, penalty: float) -> None:
    rng = np.random.default_rng(seed)
    data = _input(4)
    window = _window(data)
    data.import_kwh[:] = rng.uniform(0, 1, data.import_kwh.shape)
    data.export_kwh[:, window] = rng.uniform(0, 0.5, (4, 96))
    data.limit_kwh[:, window] = np.where(rng.uniform(size=(4, 96)) < 0.3, 0.3, np.nan)
    rules = SettlementRules(
        version=2, saving_split=split, participation_fee_eur=fee, shortfall_eur_per_kwh=penalty
    )
    result = settle(data, rules)
    statements = result.statements
    assert result.credit_cents == sum(
        s.flex_cents + s.saving_cents - s.fee_cents - s.penalty_cents for s in statements
    )
    weighted = any(s.saving_weight > 0 for s in statements)
    assert result.distributed_cents == (result.pool_cents if weighted else 0)
    assert result.pool_cents <= math.floor(result.saving_eur * 100 + 1e-6)
    assert result.to_document()["retained_cents"] >= 0


def test_rules_from_documents_refuse_bad_input() -> None:
    rules = SettlementRules(version=3, saving_split=SavingSplit.PRO_RATA)
    assert SettlementRules.from_document(rules.to_document()) == rules
    bad: list[object] = [
        [],
        {"version": "1"},
        {"version": True},
        {"version": 0},
        {"version": 1, "shape": "x"},
        {"version": 1, "saving_split": "all"},
        {"version": 1, "costs": {"import_eur_per_kwh": "1"}},
        {"version": 1, "costs": {"import_eur_per_kwh": 0.1}},
        {"version": 1, "saving_fraction": 2},
        {"version": 1, "flex_eur_per_kwh": math.inf},
        {"version": 1, "baseline": {"min_history_days": 50}},
        {"flex_eur_per_kwh": 0.1},
    ]
    for document in bad:
        with pytest.raises(ValueError, match=r"\w"):
            SettlementRules.from_document(document)


def test_a_limit_every_weekday_evening_takes_its_baseline_from_the_weekends() -> None:
    data = _input(1)
    timeline = data.timeline
    evening = timeline.slot == 72  # 18:00 local
    weekday = np.array(
        [(timeline.first_day + timedelta(days=int(d))).weekday() < 5 for d in timeline.day_index]
    )
    data.limit_kwh[:, evening & weekday] = 0.25
    data.import_kwh[:, evening & ~weekday] = 0.8  # weekend evenings: unlimited, 3.2 kW
    data.import_kwh[:, evening & weekday] = 0.25  # weekday evenings: held to the limit
    (statement,) = settle(data, SettlementRules(version=1)).statements
    assert statement.limited_quarters == 1
    assert statement.delivered_kwh == pytest.approx(0.8 - 0.25)
    # With no unlimited evening measured at all, there is no baseline and no credit.
    data.import_kwh[:, evening & ~weekday] = 0.0
    data.covered[:, evening & ~weekday] = 0.0
    (statement,) = settle(data, SettlementRules(version=1)).statements
    assert statement.delivered_kwh == 0.0
