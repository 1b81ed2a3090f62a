"""The live allocator in a closed loop: caps met, minimums kept, stable, staggered release."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from netbewust_core.allocation.allocator import LiveAllocator
from netbewust_core.allocation.model import (
    Allocation,
    AllocationConfig,
    AllocationError,
    AllocationMode,
    AllocationPhase,
    CapSeries,
    HouseholdState,
    NonMemberLoad,
    NonMemberSource,
    SharingRule,
)
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource

T0 = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)
CONNECTION_W = 17_250.0
NON_MEMBER = NonMemberLoad(estimate_w=10_000.0)


def cap_of(import_w: float | None, hours: float = 6) -> CapSeries:
    return CapSeries((LimitInterval(T0, T0 + timedelta(hours=hours), max_import_w=import_w),))


@dataclass
class Home:
    """A home whose guard obeys its limit one telemetry round later (plus an overshoot)."""

    household_id: str
    floor_w: float
    flexible_w: float
    overshoot_w: float = 0.0
    limit_w: float | None = None
    pending_w: float | None = None

    @property
    def grid_w(self) -> float:
        wanted = self.floor_w + self.flexible_w
        if self.limit_w is None or wanted <= self.limit_w:
            return wanted
        return min(wanted, max(self.limit_w, self.floor_w) + self.overshoot_w)

    def state(self, **changes: object) -> HouseholdState:
        state = HouseholdState(
            household_id=self.household_id,
            measured_w=self.grid_w,
            guaranteed_min_w=self.floor_w,
            flexible_w=self.flexible_w,
            connection_limit_w=CONNECTION_W,
        )
        return replace(state, **changes)  # type: ignore[arg-type]


@dataclass
class Loop:
    homes: list[Home]
    cap: CapSeries
    rule: SharingRule = SharingRule.PRO_RATA_FLEXIBLE
    mode: AllocationMode = AllocationMode.CAPACITY_FRAME
    allocator: LiveAllocator = field(default_factory=LiveAllocator)
    now: datetime = T0
    history: list[tuple[Allocation, float]] = field(default_factory=list)

    @property
    def aggregate_w(self) -> float:
        return sum(home.grid_w for home in self.homes)

    def step(self) -> Allocation:
        # Limits issued last round take effect now (a lag of one telemetry interval).
        for home in self.homes:
            home.limit_w = home.pending_w
        allocation = self.allocator.allocate(
            self.cap,
            NON_MEMBER,
            [home.state() for home in self.homes],
            rule=self.rule,
            mode=self.mode,
            now=self.now,
        )
        for home in self.homes:
            limit = allocation.limits.get(home.household_id)
            interval = limit.interval_at(self.now) if limit is not None else None
            home.pending_w = None if interval is None else interval.max_import_w
        self.history.append((allocation, self.aggregate_w))
        self.now += STEP
        return allocation

    def run(self, steps: int) -> list[float]:
        aggregates = []
        for _ in range(steps):
            self.step()
            aggregates.append(self.aggregate_w)
        return aggregates


def fleet(count: int = 40, *, flexible_w: float = 4000.0, overshoot_w: float = 0.0) -> list[Home]:
    return [
        Home(f"home-{i:02d}", 500.0 + 25 * i, flexible_w * (0.5 + (i % 4) / 4), overshoot_w)
        for i in range(count)
    ]


def demand_of(homes: list[Home]) -> float:
    return sum(home.floor_w + home.flexible_w for home in homes)


def test_well_below_the_cap_nobody_is_limited() -> None:
    homes = fleet()
    loop = Loop(homes, cap_of(2 * demand_of(homes) + NON_MEMBER.estimate_w))
    allocation = loop.step()
    assert allocation.phase is AllocationPhase.IDLE
    assert allocation.limits == {}
    assert allocation.curtailed == ()


@pytest.mark.parametrize("rule", list(SharingRule))
def test_closed_loop_keeps_the_aggregate_below_the_cap_and_the_minimums(rule: SharingRule) -> None:
    homes = fleet(overshoot_w=50.0)  # 2 kW in all: within the 3 % margin
    budget_w = 0.75 * demand_of(homes)
    loop = Loop(homes, cap_of(budget_w + NON_MEMBER.estimate_w), rule=rule)
    aggregates = loop.run(60)
    assert aggregates[0] > budget_w  # the first round is before any limit took effect
    assert max(aggregates[1:]) <= budget_w
    for allocation, _ in loop.history:
        assert allocation.phase is AllocationPhase.ENGAGED
        for home in homes:
            limit = allocation.limits[home.household_id].intervals[0].max_import_w
            assert limit is not None
            assert limit >= home.floor_w
    last = loop.history[-1][0]
    assert last.rule is rule
    assert last.members_budget_w == pytest.approx(budget_w)
    assert last.non_member_source is NonMemberSource.ESTIMATE
    assert len(last.curtailed) >= len(homes) // 2 or rule is SharingRule.MERIT_ORDER


def test_feedback_settles_without_oscillating() -> None:
    # Cars overshoot their allowance by 120 W, 4.8 kW in all: more than the 3 % margin,
    # so the feedforward alone would exceed the budget.
    homes = fleet(overshoot_w=120.0)
    budget_w = 0.7 * demand_of(homes)
    aim_w = budget_w * (1 - AllocationConfig().margin)
    loop = Loop(homes, cap_of(budget_w + NON_MEMBER.estimate_w))
    aggregates = loop.run(90)
    settled = aggregates[-30:]
    assert max(aggregates[1:]) <= budget_w * 1.01  # briefly, before the feedback acts
    assert max(aggregates[20:]) <= budget_w
    assert abs(settled[-1] - aim_w) <= 0.002 * aim_w  # the integral removed the bias
    assert max(settled) - min(settled) <= 0.002 * budget_w  # and nothing swings
    targets = [a.members_target_w for a, _ in loop.history[-30:]]
    assert all(t is not None for t in targets)
    assert max(targets) - min(targets) <= 0.002 * budget_w  # type: ignore[type-var,operator]


def test_integral_is_clamped_when_every_home_is_at_its_minimum() -> None:
    homes = fleet()
    floors = sum(home.floor_w for home in homes)
    loop = Loop(homes, cap_of(floors * 0.8 + NON_MEMBER.estimate_w))
    loop.run(30)
    allocation = loop.history[-1][0]
    assert not allocation.feasible
    assert allocation.shortfall_w == pytest.approx(floors * 0.2, rel=0.01)
    assert "cannot be met" in allocation.reason
    # Once the cap is raised the allocation recovers at once: no wound-up integral.
    loop.cap = cap_of(demand_of(homes) * 0.8 + NON_MEMBER.estimate_w)
    aggregates = loop.run(20)
    assert loop.history[-1][0].feasible
    assert max(aggregates[1:]) <= demand_of(homes) * 0.8
    assert aggregates[-1] >= demand_of(homes) * 0.8 * 0.95


def test_emergency_sends_every_home_to_its_minimum_at_once() -> None:
    homes = fleet()
    loop = Loop(homes, cap_of(None), mode=AllocationMode.EMERGENCY)
    allocation = loop.step()
    assert allocation.phase is AllocationPhase.EMERGENCY
    assert set(allocation.limits) == {home.household_id for home in homes}
    for home in homes:
        limit = allocation.limits[home.household_id]
        assert limit.source is LimitSource.EMERGENCY
        assert limit.intervals[0].max_import_w == pytest.approx(home.floor_w)
    loop.step()
    assert loop.aggregate_w == pytest.approx(sum(home.floor_w for home in homes))


def test_release_is_staggered_and_forms_no_rebound_above_the_cap() -> None:
    homes = fleet(flexible_w=6000.0)
    budget_w = 0.8 * demand_of(homes)
    loop = Loop(homes, cap_of(budget_w + NON_MEMBER.estimate_w))
    loop.run(30)
    # Evening ends: the flexible demand halves, so everyone fits, but every car still
    # wants to catch up at full power the moment it is released.
    for home in homes:
        home.flexible_w *= 0.45
    phases: list[AllocationPhase] = []
    released_per_round: list[int] = []
    aggregates: list[float] = []
    for _ in range(80):
        allocation = loop.step()
        phases.append(allocation.phase)
        released_per_round.append(sum(share.released for share in allocation.shares))
        aggregates.append(loop.aggregate_w)
    assert AllocationPhase.RELEASING in phases
    assert phases[-1] is AllocationPhase.IDLE
    assert sum(released_per_round) == len(homes)
    assert max(released_per_round) <= len(homes) // 4  # spread, not all at once
    rounds_releasing = [i for i, count in enumerate(released_per_round) if count]
    assert (rounds_releasing[-1] - rounds_releasing[0]) * STEP >= timedelta(minutes=2)
    assert max(aggregates) <= budget_w


def test_release_after_emergency_never_exceeds_the_cap() -> None:
    homes = fleet()
    budget_w = 0.85 * demand_of(homes)
    loop = Loop(homes, cap_of(budget_w + NON_MEMBER.estimate_w), mode=AllocationMode.EMERGENCY)
    loop.run(3)
    loop.mode = AllocationMode.CAPACITY_FRAME
    aggregates = loop.run(60)
    assert max(aggregates) <= budget_w
    assert loop.history[-1][0].phase is AllocationPhase.ENGAGED  # demand is still above


def test_frame_ending_releases_staggered_with_the_last_limits_held() -> None:
    homes = fleet()
    loop = Loop(homes, cap_of(0.8 * demand_of(homes) + NON_MEMBER.estimate_w, hours=0.05))
    loop.run(18)  # 180 s: the frame ended at 180 s
    held = loop.history[-1][0].limits
    allocation = loop.step()
    assert allocation.transformer_cap_w is None
    assert allocation.phase is AllocationPhase.RELEASING
    loop.run(5)
    allocation = loop.history[-1][0]
    assert 0 < len(allocation.limits) < len(homes)
    for hid, limit in allocation.limits.items():
        assert limit.intervals[0].max_import_w == held[hid].intervals[0].max_import_w
    loop.run(40)
    assert loop.history[-1][0].phase is AllocationPhase.IDLE
    assert loop.history[-1][0].limits == {}


def test_a_lower_cap_is_met_before_it_starts() -> None:
    homes = fleet()
    demand_w = demand_of(homes)
    later = T0 + timedelta(seconds=20)
    cap = CapSeries(
        (
            LimitInterval(T0, later, max_import_w=2 * demand_w),
            LimitInterval(later, T0 + timedelta(hours=1), max_import_w=0.7 * demand_w),
        )
    )
    allocation = Loop(homes, cap).step()
    assert allocation.transformer_cap_w == pytest.approx(0.7 * demand_w)
    assert allocation.phase is AllocationPhase.ENGAGED


def test_dynamic_mode_acts_on_the_forecast_before_the_load_arrives() -> None:
    homes = fleet()
    budget_w = 1.5 * demand_of(homes)
    allocator = LiveAllocator()
    states = [home.state() for home in homes]
    allocation = allocator.allocate(
        cap_of(budget_w + NON_MEMBER.estimate_w),
        NON_MEMBER,
        states,
        rule=SharingRule.EQUAL_SHARE,
        mode=AllocationMode.DYNAMIC,
        now=T0,
        forecast_members_w=budget_w,
    )
    assert allocation.phase is AllocationPhase.ENGAGED
    total = sum(limit.intervals[0].max_import_w or 0.0 for limit in allocation.limits.values())
    assert total <= budget_w


def test_fresh_measurement_of_non_members_is_used_and_stale_one_is_not() -> None:
    homes = fleet()
    allocator = LiveAllocator()
    measured = NonMemberLoad(estimate_w=10_000.0, measured_w=25_000.0, measured_at=T0)
    states = [home.state() for home in homes]
    cap = cap_of(1e6)
    kwargs = {"rule": SharingRule.EQUAL_SHARE, "mode": AllocationMode.CAPACITY_FRAME}
    fresh = allocator.allocate(cap, measured, states, now=T0 + timedelta(seconds=5), **kwargs)  # type: ignore[arg-type]
    assert (fresh.non_member_source, fresh.non_member_w) == (NonMemberSource.MEASURED, 25_000.0)
    assert fresh.members_budget_w == pytest.approx(1e6 - 25_000.0)
    stale = allocator.allocate(cap, measured, states, now=T0 + timedelta(minutes=5), **kwargs)  # type: ignore[arg-type]
    assert (stale.non_member_source, stale.non_member_w) == (NonMemberSource.ESTIMATE, 10_000.0)
    assert "estimate" in stale.reason


def test_planned_limit_passes_through_when_idle_and_caps_the_live_limit() -> None:
    home = Home("planned", 500.0, 8000.0)
    planned = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=T0,
        expires_at=T0 + timedelta(hours=1),
        intervals=(LimitInterval(T0, T0 + timedelta(hours=1), max_import_w=3000.0),),
    )
    others = fleet(10)
    allocator = LiveAllocator()
    kwargs = {"rule": SharingRule.EQUAL_SHARE, "mode": AllocationMode.CAPACITY_FRAME}
    states = [home.state(planned_limit=planned)] + [other.state() for other in others]
    idle = allocator.allocate(cap_of(1e6), NON_MEMBER, states, now=T0, **kwargs)  # type: ignore[arg-type]
    assert idle.limits == {"planned": planned}
    budget_w = 0.8 * (3000.0 + demand_of(others))
    engaged = allocator.allocate(
        cap_of(budget_w + NON_MEMBER.estimate_w),
        NON_MEMBER,
        states,
        now=T0 + STEP,
        **kwargs,  # type: ignore[arg-type]
    )
    live = engaged.limits["planned"]
    assert live.source is LimitSource.DSO
    assert live.intervals[0].max_import_w is not None
    assert live.intervals[0].max_import_w <= 3000.0
    assert engaged.shares[0].demand_w == 3000.0


def test_expiries_are_short_spread_and_reproducible() -> None:
    homes = fleet()
    config = AllocationConfig(seed=3)
    cap = cap_of(0.5 * demand_of(homes))
    first = Loop(homes, cap, allocator=LiveAllocator(config)).step()
    again = Loop(fleet(), cap, allocator=LiveAllocator(config)).step()
    expiries = [limit.expires_at for limit in first.limits.values()]
    low = T0 + config.limit_validity
    assert all(low <= moment <= low + config.expiry_spread for moment in expiries)
    assert max(expiries) - min(expiries) >= config.expiry_spread / 2
    assert [limit.expires_at for limit in again.limits.values()] == expiries
    for limit in first.limits.values():
        assert limit.intervals[0].end == limit.expires_at


def test_limits_rise_slowly_but_drop_at_once() -> None:
    homes = fleet()
    loop = Loop(homes, cap_of(0.6 * demand_of(homes) + NON_MEMBER.estimate_w))
    loop.run(10)
    before = {hid: lim.intervals[0].max_import_w for hid, lim in loop.history[-1][0].limits.items()}
    loop.cap = cap_of(0.85 * demand_of(homes) + NON_MEMBER.estimate_w)
    after = loop.step().limits
    rise = AllocationConfig().max_rise_w_per_s * STEP.total_seconds()
    for hid, limit in after.items():
        assert limit.intervals[0].max_import_w <= before[hid] + rise + 0.1  # type: ignore[operator]
    loop.cap = cap_of(0.4 * demand_of(homes) + NON_MEMBER.estimate_w)
    dropped = loop.step()
    total = sum(limit.intervals[0].max_import_w or 0.0 for limit in dropped.limits.values())
    assert total <= 0.4 * demand_of(homes)


# --- bad input ----------------------------------------------------------------------


def allocate(allocator: LiveAllocator, states: list[HouseholdState], now: datetime) -> Allocation:
    return allocator.allocate(
        cap_of(1e6),
        NON_MEMBER,
        states,
        rule=SharingRule.EQUAL_SHARE,
        mode=AllocationMode.CAPACITY_FRAME,
        now=now,
    )


def test_naive_or_backwards_time_is_rejected() -> None:
    allocator = LiveAllocator()
    with pytest.raises(AllocationError, match="UTC"):
        allocate(allocator, [], datetime(2026, 1, 15, 17, 0))
    allocate(allocator, [], T0)
    with pytest.raises(AllocationError, match="backwards"):
        allocate(allocator, [], T0 - STEP)


def test_duplicate_households_are_rejected() -> None:
    state = fleet(1)[0].state()
    with pytest.raises(AllocationError, match="unique"):
        allocate(LiveAllocator(), [state, state], T0)


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("measured_w", float("nan")),
        ("measured_w", 1e9),
        ("guaranteed_min_w", -1.0),
        ("flexible_w", float("inf")),
        ("connection_limit_w", -1.0),
        ("connection_limit_w", 300_001.0),
        ("cost_eur_per_kwh", -0.1),
        ("household_id", ""),
    ],
)
def test_bad_household_state_is_a_clear_error(field_name: str, value: object) -> None:
    with pytest.raises(AllocationError):
        fleet(1)[0].state(**{field_name: value})


def test_overlapping_caps_and_half_measurements_are_rejected() -> None:
    with pytest.raises(AllocationError, match="overlap"):
        CapSeries(
            (
                LimitInterval(T0, T0 + timedelta(hours=1), max_import_w=1.0),
                LimitInterval(T0 + timedelta(minutes=30), T0 + timedelta(hours=2)),
            )
        )
    with pytest.raises(AllocationError, match="both"):
        NonMemberLoad(estimate_w=0.0, measured_w=5.0)
    with pytest.raises(AllocationError):
        NonMemberLoad(estimate_w=float("nan"))


@pytest.mark.parametrize(
    "changes",
    [
        {"margin": 0.6},
        {"engage_fraction": 0.8, "release_fraction": 0.9},
        {"integral_per_s": -1.0},
        {"max_rise_w_per_s": 0.0},
        {"limit_validity": timedelta(0)},
        {"release_spread": timedelta(seconds=-1)},
    ],
)
def test_bad_config_is_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(AllocationError):
        AllocationConfig(**changes)  # type: ignore[arg-type]


def test_forecast_must_be_finite() -> None:
    with pytest.raises(AllocationError, match="finite"):
        LiveAllocator().allocate(
            cap_of(1e6),
            NON_MEMBER,
            [],
            rule=SharingRule.EQUAL_SHARE,
            mode=AllocationMode.DYNAMIC,
            now=T0,
            forecast_members_w=float("nan"),
        )


def test_a_connection_that_may_draw_nothing_is_allocated_nothing() -> None:
    # A charger-only home whose plan gives it 0 W stays in the round, at 0 W.
    homes = fleet(2)
    states = [homes[0].state(), homes[1].state(connection_limit_w=0.0)]
    allocation = LiveAllocator().allocate(
        cap_of(1000.0),
        NON_MEMBER,
        states,
        rule=SharingRule.EQUAL_SHARE,
        mode=AllocationMode.EMERGENCY,
        now=T0,
    )
    limits = {share.household_id: share.limit_w for share in allocation.shares}
    assert limits == {homes[0].household_id: homes[0].floor_w, homes[1].household_id: 0.0}
