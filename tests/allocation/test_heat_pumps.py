"""Heat-pump power in the live allocation: order, edge, fairness, emergency, recovery."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbewust_core.allocation.allocator import LiveAllocator
from netbewust_core.allocation.heat_pumps import (
    HeldPump,
    MemberPump,
    PumpFairness,
    PumpRating,
    count_pump_curtailments,
    heat_pump_state,
    held_pumps,
    member_pump_state,
    recover_pumps,
)
from netbewust_core.allocation.model import (
    Allocation,
    AllocationConfig,
    AllocationError,
    AllocationMode,
    CapSeries,
    HeatPumpState,
    HouseholdState,
    NonMemberLoad,
    SharingRule,
)
from netbewust_core.limits import LimitInterval

T0 = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
NON_MEMBER = NonMemberLoad(estimate_w=10_000.0)
MARGIN = AllocationConfig().margin
BASE_W = 500.0


def home(hid: str, pump: HeatPumpState | None = None, *, flexible_w: float = 0.0) -> HouseholdState:
    floor_w = BASE_W + (pump.power_w if pump else 0.0)
    return HouseholdState(
        household_id=hid,
        measured_w=floor_w + flexible_w,
        guaranteed_min_w=floor_w,
        flexible_w=flexible_w,
        connection_limit_w=17_250.0,
        heat_pump=pump,
    )


def electric(margin: float | None, power_w: float = 2000.0, **changes: object) -> HeatPumpState:
    return HeatPumpState(power_w=power_w, comfort_margin_min=margin, **changes)  # type: ignore[arg-type]


def hybrid(margin: float | None = 120.0, power_w: float = 2000.0) -> HeatPumpState:
    return HeatPumpState(
        power_w=power_w, hybrid=True, hybrid_cap_w=500.0, comfort_margin_min=margin
    )


def cap_for_target(target_w: float, start: datetime = T0) -> CapSeries:
    """The cap whose members' target (budget less the margin) is `target_w`."""
    budget_w = target_w / (1 - MARGIN)
    end = start + timedelta(hours=6)
    return CapSeries((LimitInterval(start, end, max_import_w=budget_w + NON_MEMBER.estimate_w),))


def allocate(
    homes: list[HouseholdState],
    target_w: float,
    *,
    mode: AllocationMode = AllocationMode.CAPACITY_FRAME,
    fairness: PumpFairness | None = None,
    allocator: LiveAllocator | None = None,
    now: datetime = T0,
) -> Allocation:
    return (allocator or LiveAllocator()).allocate(
        cap_for_target(target_w, now),
        NON_MEMBER,
        homes,
        rule=SharingRule.PRO_RATA_FLEXIBLE,
        mode=mode,
        now=now,
        pump_fairness=fairness,
    )


def taken(allocation: Allocation) -> dict[str, float]:
    return {share.household_id: share.pump_curtailment_w for share in allocation.shares}


def floors(homes: list[HouseholdState]) -> float:
    return sum(h.guaranteed_min_w for h in homes)


def test_flexible_loads_go_first_and_pumps_only_for_the_rest() -> None:
    homes = [home("ev", flexible_w=3000.0), home("hp", electric(300.0))]
    allocation = allocate(homes, floors(homes) + 1000.0)
    assert taken(allocation) == {"ev": 0.0, "hp": 0.0}
    allocation = allocate(homes, floors(homes) - 800.0)
    assert taken(allocation) == {"ev": 0.0, "hp": pytest.approx(800.0)}
    assert allocation.limits["ev"].intervals[0].max_import_w == BASE_W
    assert allocation.feasible


def test_hybrids_go_to_their_cap_before_any_all_electric_pump() -> None:
    homes = [
        home("electric-a", electric(600.0)),
        home("hybrid-a", hybrid(margin=40.0)),
        home("hybrid-b", hybrid(margin=40.0)),
        home("electric-b", electric(600.0)),
    ]
    allocation = allocate(homes, floors(homes) - 2000.0)
    cuts = taken(allocation)
    assert cuts["electric-a"] == cuts["electric-b"] == 0.0
    assert cuts["hybrid-a"] + cuts["hybrid-b"] == pytest.approx(2000.0)
    # Beyond both hybrids' 1500 W each, the all-electric pumps give the rest.
    cuts = taken(allocate(homes, floors(homes) - 4000.0))
    assert cuts["hybrid-a"] == cuts["hybrid-b"] == pytest.approx(1500.0)
    assert cuts["electric-a"] + cuts["electric-b"] == pytest.approx(1000.0)


def test_all_electric_pumps_by_comfort_margin_largest_first() -> None:
    homes = [home(f"m{margin}", electric(float(margin))) for margin in (60, 400, 200)]
    cuts = taken(allocate(homes, floors(homes) - 3000.0))
    assert cuts == {"m400": pytest.approx(2000.0), "m200": pytest.approx(1000.0), "m60": 0.0}


@pytest.mark.parametrize(
    "pump",
    [
        electric(20.0),  # at the edge of its band
        electric(None),  # margin unknown: as at the edge
        electric(300.0, paused_until=T0 + timedelta(hours=1)),
        electric(300.0, off_minutes=120.0),  # held off for the maximum already
    ],
    ids=["edge", "unknown", "paused", "max-off"],
)
def test_a_pump_that_may_not_be_steered_keeps_its_minimum(pump: HeatPumpState) -> None:
    homes = [home("kept", pump), home("ev", flexible_w=2000.0)]
    allocation = allocate(homes, floors(homes) - 1000.0)
    assert taken(allocation)["kept"] == 0.0
    assert allocation.limits["kept"].intervals[0].max_import_w == homes[0].guaranteed_min_w
    assert not allocation.feasible
    assert allocation.shortfall_w > 0


def test_a_pause_that_ended_no_longer_protects() -> None:
    homes = [home("hp", electric(300.0, paused_until=T0))]
    assert taken(allocate(homes, floors(homes) - 1000.0))["hp"] == pytest.approx(1000.0)


def test_an_emergency_takes_all_pump_power_in_one_round() -> None:
    homes = [
        home("edge", electric(5.0)),
        home("paused", electric(300.0, paused_until=T0 + timedelta(hours=1))),
        home("hybrid", hybrid()),
        home("plain"),
    ]
    allocation = allocate(homes, 10 * floors(homes), mode=AllocationMode.EMERGENCY)
    assert taken(allocation) == {"edge": 2000.0, "paused": 2000.0, "hybrid": 2000.0, "plain": 0.0}
    for limit in allocation.limits.values():
        assert limit.intervals[0].max_import_w == BASE_W


def test_fairness_spreads_curtailments_over_repeated_frames() -> None:
    homes = [home(f"h{i}", electric(100.0 + i)) for i in range(4)]  # one margin band
    fairness = PumpFairness()
    chosen = []
    for frame in range(8):
        start = T0 + frame * timedelta(hours=1)  # after each pump's minimum run
        allocation = allocate(homes, floors(homes) - 1500.0, fairness=fairness, now=start)
        fairness = count_pump_curtailments(fairness, allocation)
        chosen.append(next(h for h, w in taken(allocation).items() if w > 0))
        # The frame ends: nobody is curtailed any more.
        end = start + timedelta(minutes=30)
        fairness = count_pump_curtailments(fairness, allocate(homes, 10 * floors(homes), now=end))
    assert sorted(chosen[:4]) == ["h0", "h1", "h2", "h3"]
    assert fairness.times_curtailed == {"h0": 2, "h1": 2, "h2": 2, "h3": 2}


def test_a_held_pump_stays_held_within_a_frame() -> None:
    homes = [home(f"h{i}", electric(100.0)) for i in range(3)]
    fairness = PumpFairness(times_curtailed={"h2": 1}, curtailed_now=frozenset({"h2"}))
    allocation = allocate(homes, floors(homes) - 1500.0, fairness=fairness)
    assert taken(allocation)["h2"] == pytest.approx(1500.0)
    # Counted once per curtailment, not per round.
    counted = count_pump_curtailments(fairness, allocation)
    assert counted.times_curtailed == {"h2": 1}
    assert counted.curtailed_now == frozenset({"h2"})
    assert counted.curtailed_since == {"h2": T0}


def test_heat_pump_state_from_the_protocols_values() -> None:
    state = heat_pump_state(
        power_w=1800.0, hybrid_cap_w=600.0, comfort_margin_min=45.0, paused_until=None
    )
    assert state == HeatPumpState(
        power_w=1800.0, hybrid=True, hybrid_cap_w=600.0, comfort_margin_min=45.0
    )
    assert not heat_pump_state(
        power_w=0.0, hybrid_cap_w=None, comfort_margin_min=None, paused_until=None
    ).hybrid


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"power_w": -1.0}, "heat_pump.power_w"),
        ({"power_w": float("nan")}, "heat_pump.power_w"),
        ({"hybrid_cap_w": 100.0}, "heat_pump.hybrid_cap_w"),
        ({"comfort_margin_min": float("inf")}, "heat_pump.comfort_margin_min"),
        ({"comfort_margin_min": -5.0}, "heat_pump.comfort_margin_min"),
        ({"paused_until": datetime(2026, 1, 1)}, "heat_pump.paused_until"),
        ({"off_minutes": -1.0}, "heat_pump.off_minutes"),
    ],
)
def test_bad_heat_pump_state_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(AllocationError, match=field):
        HeatPumpState(**{"power_w": 1000.0, **changes})  # type: ignore[arg-type]


def test_pump_power_must_lie_within_the_minimum() -> None:
    with pytest.raises(AllocationError, match=r"h: heat_pump.power_w"):
        HouseholdState(
            household_id="h",
            measured_w=0.0,
            guaranteed_min_w=500.0,
            flexible_w=0.0,
            connection_limit_w=17_250.0,
            heat_pump=HeatPumpState(power_w=1000.0),
        )


def test_bad_pump_config_and_recovery_arguments() -> None:
    with pytest.raises(AllocationError, match="pump_max_off"):
        AllocationConfig(pump_max_off=timedelta(0))
    with pytest.raises(AllocationError, match="pump_edge_margin_min"):
        AllocationConfig(pump_margin_band_min=0.0)
    with pytest.raises(AllocationError, match="pump_recovery_homes"):
        AllocationConfig(pump_recovery_homes=0)
    pump = HeldPump(household_id="h", power_w=100.0, comfort_margin_min=None)
    with pytest.raises(AllocationError, match="room_w"):
        recover_pumps([pump], float("nan"))
    with pytest.raises(AllocationError, match="max_homes"):
        recover_pumps([pump], 1000.0, max_homes=0)
    with pytest.raises(AllocationError, match="unique"):
        recover_pumps([pump, pump], 1000.0)
    with pytest.raises(AllocationError, match="power_w"):
        HeldPump(household_id="h", power_w=-1.0, comfort_margin_min=None)


def test_recovery_returns_the_lowest_margin_first_within_the_room() -> None:
    held = [
        HeldPump(household_id="warm", power_w=1000.0, comfort_margin_min=300.0),
        HeldPump(household_id="cold", power_w=1000.0, comfort_margin_min=35.0),
        HeldPump(household_id="big", power_w=5000.0, comfort_margin_min=10.0),
    ]
    recovery = recover_pumps(held, 2500.0)
    assert recovery.released == ("cold", "warm")  # "big" does not fit: passed over
    assert [pump.household_id for pump in recovery.held] == ["big"]
    assert recover_pumps(held, 10_000.0, max_homes=1).released == ("big",)
    assert recover_pumps(held, 10_000.0, max_step_w=1500.0).released == ("cold",)


def test_recovery_starts_from_what_the_frame_took() -> None:
    homes = [home("a", electric(300.0)), home("b", hybrid()), home("c")]
    allocation = allocate(homes, floors(homes) - 2500.0)
    held = held_pumps(allocation, homes)
    assert {p.household_id: p.power_w for p in held} == {
        "a": pytest.approx(1000.0),
        "b": pytest.approx(1500.0),
    }


# --- properties -----------------------------------------------------------------------

pumps = st.one_of(
    st.none(),
    st.builds(
        HeatPumpState,
        power_w=st.floats(0.0, 4000.0),
        comfort_margin_min=st.one_of(st.none(), st.floats(0.0, 600.0)),
        paused_until=st.sampled_from([None, T0 - timedelta(minutes=1), T0 + timedelta(hours=1)]),
        off_minutes=st.floats(0.0, 200.0),
    ),
    st.builds(
        HeatPumpState,
        power_w=st.floats(0.0, 4000.0),
        hybrid=st.just(True),
        hybrid_cap_w=st.floats(0.0, 4000.0),
        comfort_margin_min=st.one_of(st.none(), st.floats(0.0, 600.0)),
    ),
)
fleets = st.lists(st.tuples(pumps, st.floats(0.0, 4000.0)), min_size=1, max_size=12).map(
    lambda rows: [home(f"h{i}", pump, flexible_w=flex) for i, (pump, flex) in enumerate(rows)]
)


def steerable_w(household: HouseholdState) -> float:
    pump = household.heat_pump
    if pump is None or pump.comfort_margin_min is None or pump.comfort_margin_min < 30:
        return 0.0
    if pump.paused(T0) or (not pump.hybrid and pump.off_minutes >= 120):
        return 0.0
    return max(0.0, pump.power_w - pump.hybrid_cap_w)


@settings(max_examples=200, deadline=None)
@given(homes=fleets, fraction=st.floats(0.05, 1.0))
def test_frames_keep_the_cap_the_edge_and_the_order(
    homes: list[HouseholdState], fraction: float
) -> None:
    demand_w = sum(h.guaranteed_min_w + h.flexible_w for h in homes)
    target_w = fraction * demand_w
    allocation = allocate(homes, target_w)
    if not allocation.limits:
        return  # not engaged: nothing near the cap
    cuts = taken(allocation)
    limits = {hid: limit.intervals[0].max_import_w for hid, limit in allocation.limits.items()}
    lowest_w = floors(homes) - sum(steerable_w(h) for h in homes)
    if lowest_w <= target_w:
        assert allocation.feasible
        assert allocation.members_budget_w is not None
        assert sum(w or 0.0 for w in limits.values()) <= allocation.members_budget_w
    for household in homes:
        hid = household.household_id
        assert cuts[hid] <= steerable_w(household) + 1e-6  # edge, pause, max off kept
        limit_w = limits[hid]
        assert limit_w is not None
        assert limit_w >= household.guaranteed_min_w - steerable_w(household) - 0.1
    electric_taken = any(
        cuts[h.household_id] > 0.5 for h in homes if h.heat_pump and not h.heat_pump.hybrid
    )
    if electric_taken:
        for household in homes:
            if household.heat_pump and household.heat_pump.hybrid:
                assert cuts[household.household_id] == pytest.approx(steerable_w(household))


@settings(max_examples=200, deadline=None)
@given(
    powers=st.lists(
        st.tuples(st.floats(0.0, 4000.0), st.one_of(st.none(), st.floats(0.0, 600.0))),
        max_size=40,
    ),
    cap_w=st.floats(1000.0, 100_000.0),
    load_fraction=st.floats(0.0, 1.0),
    max_homes=st.integers(1, 10),
)
def test_recovery_never_rebounds_above_the_cap(
    powers: list[tuple[float, float | None]],
    cap_w: float,
    load_fraction: float,
    max_homes: int,
) -> None:
    held = tuple(
        HeldPump(household_id=f"h{i}", power_w=power, comfort_margin_min=margin)
        for i, (power, margin) in enumerate(powers)
    )
    load_w = load_fraction * cap_w
    while held:
        recovery = recover_pumps(held, cap_w - load_w, max_homes=max_homes)
        assert len(recovery.released) <= max_homes
        returned = {p.household_id: p.power_w for p in held if p.household_id in recovery.released}
        load_w += sum(returned.values())
        assert load_w <= cap_w + 1e-6  # no round ends above the cap
        if not recovery.released:
            # Only pumps larger than the room are left: they wait for the load to fall.
            assert all(p.power_w > cap_w - load_w for p in recovery.held)
            break
        held = recovery.held


def test_after_an_emergency_pumps_return_staggered_without_a_rebound() -> None:
    """Closed loop: on/off pumps run only when their limit has room for them."""
    homes = [home(f"h{i}", electric(60.0 + 20 * i)) for i in range(12)]
    target_w = floors(homes) - 7000.0
    budget_w = target_w / (1 - MARGIN)
    allocator, fairness = LiveAllocator(), PumpFairness()
    running: list[set[str]] = []
    limits: dict[str, float | None] = {}

    def draw(household: HouseholdState) -> float:
        limit_w = limits.get(household.household_id)
        if limit_w is None or limit_w >= household.guaranteed_min_w:
            return household.guaranteed_min_w
        return BASE_W

    aggregates = []
    for round_ in range(40):
        mode = AllocationMode.EMERGENCY if round_ < 3 else AllocationMode.CAPACITY_FRAME
        states = [
            HouseholdState(
                household_id=h.household_id,
                measured_w=draw(h),
                guaranteed_min_w=h.guaranteed_min_w,
                flexible_w=0.0,
                connection_limit_w=h.connection_limit_w,
                heat_pump=h.heat_pump,
            )
            for h in homes
        ]
        allocation = allocator.allocate(
            cap_for_target(target_w),
            NON_MEMBER,
            states,
            rule=SharingRule.EQUAL_SHARE,
            mode=mode,
            now=T0 + round_ * timedelta(seconds=10),
            pump_fairness=fairness,
        )
        fairness = count_pump_curtailments(fairness, allocation)
        limits = {hid: limit.intervals[0].max_import_w for hid, limit in allocation.limits.items()}
        aggregates.append(sum(draw(h) for h in homes))
        running.append({h.household_id for h in homes if draw(h) > BASE_W})
    assert running[:3] == [set(), set(), set()]  # the emergency took every pump at once
    assert max(aggregates) <= budget_w  # no round above the members' budget
    # Back four pumps a round (pump_recovery_homes), the lowest comfort margins first.
    assert running[3] == {"h0", "h1", "h2", "h3"}
    assert running[4] == {f"h{i}" for i in range(8)}
    # The largest margins stay off: 7 kW is four 2 kW pumps (the fourth one partly).
    off = {h.household_id for h in homes if draw(h) == BASE_W}
    assert off == {"h8", "h9", "h10", "h11"}


@settings(max_examples=60, deadline=None)
@given(
    margins=st.lists(st.floats(30.0, 600.0), min_size=2, max_size=20),
    need_fraction=st.floats(0.0, 1.0),
    rounds_of_emergency=st.integers(0, 3),
)
def test_pump_power_returns_a_few_pumps_a_round_and_never_above_the_cap(
    margins: list[float], need_fraction: float, rounds_of_emergency: int
) -> None:
    """A frame takes pump power (or an emergency all of it); then the need falls away."""
    homes = [home(f"h{i}", electric(margin)) for i, margin in enumerate(margins)]
    tight_w = floors(homes) - need_fraction * 2000.0 * len(homes)
    allocator = LiveAllocator()
    running = {h.household_id for h in homes}
    for round_ in range(30):
        emergency = round_ < rounds_of_emergency
        # The frame's need for pump power ends after ten rounds (a higher cap).
        target_w = tight_w if round_ < 10 else floors(homes)
        states = [
            replace(h, measured_w=h.guaranteed_min_w if h.household_id in running else BASE_W)
            for h in homes
        ]
        allocation = allocator.allocate(
            cap_for_target(target_w),
            NON_MEMBER,
            states,
            rule=SharingRule.EQUAL_SHARE,
            mode=AllocationMode.EMERGENCY if emergency else AllocationMode.CAPACITY_FRAME,
            now=T0 + round_ * timedelta(seconds=10),
        )
        previous_running, running = running, set()
        for h in homes:
            limit = allocation.limits.get(h.household_id)
            limit_w = None if limit is None else limit.intervals[0].max_import_w
            if limit_w is None or limit_w >= h.guaranteed_min_w:  # an on/off pump fits
                running.add(h.household_id)
        aggregate_w = sum(
            h.guaranteed_min_w if h.household_id in running else BASE_W for h in homes
        )
        assert aggregate_w <= target_w / (1 - MARGIN) + 1e-6
        if not emergency:
            assert len(running - previous_running) <= AllocationConfig().pump_recovery_homes
    assert running == {h.household_id for h in homes}  # every pump runs again


def test_an_all_electric_pump_is_held_at_most_its_maximum_off_time_then_runs() -> None:
    config = AllocationConfig()
    homes = [home("h0", electric(600.0))]
    need = floors(homes) - 1500.0
    allocator = LiveAllocator(config)
    fairness = PumpFairness()
    moment = T0
    held = []
    while moment < T0 + config.pump_max_off + timedelta(minutes=40):
        allocation = allocate(homes, need, fairness=fairness, allocator=allocator, now=moment)
        fairness = count_pump_curtailments(fairness, allocation)
        held.append((moment, taken(allocation)["h0"] > 0))
        moment += timedelta(minutes=1)
    assert held[0] == (T0, True)
    released = next(at for at, is_held in held if not is_held)
    assert released == T0 + config.pump_max_off  # held exactly up to its maximum off time
    # Then it runs at least `pump_min_run` before a frame takes it again.
    again = next(at for at, is_held in held if is_held and at > released)
    assert again == released + config.pump_min_run
    assert fairness.times_curtailed["h0"] == 2
    assert fairness.released_at == {"h0": released}


def test_a_released_pump_rests_before_the_next_frame_takes_it() -> None:
    homes = [home("h0", electric(600.0)), home("h1", electric(600.0))]
    fairness = PumpFairness(times_curtailed={"h0": 1}, released_at={"h0": T0})
    allocation = allocate(homes, floors(homes) - 1500.0, fairness=fairness)
    assert taken(allocation) == {"h0": 0.0, "h1": pytest.approx(1500.0)}
    assert fairness.resting("h0", T0 + timedelta(minutes=14), timedelta(minutes=15))
    assert not fairness.resting("h0", T0 + timedelta(minutes=15), timedelta(minutes=15))
    # An emergency takes it anyway.
    emergency = allocate(homes, floors(homes), fairness=fairness, mode=AllocationMode.EMERGENCY)
    assert taken(emergency)["h0"] == 2000.0


def test_fairness_tracks_since_when_a_pump_is_held() -> None:
    fairness = PumpFairness(
        curtailed_now=frozenset({"h0"}), curtailed_since={"h0": T0 - timedelta(minutes=30)}
    )
    assert fairness.off_minutes("h0", T0) == 30.0
    assert fairness.off_minutes("h1", T0) == 0.0
    assert fairness.off_minutes("h0", T0 + timedelta(days=3)) == 1440.0


def rating(**changes: object) -> PumpRating:
    return PumpRating(**{"max_power_w": 2500.0, **changes})  # type: ignore[arg-type]


def member(ratings: list[PumpRating], **changes: object) -> MemberPump:
    values: dict[str, object] = {
        "now": T0,
        "floor_w": 3000.0,
        "measured_w": 4000.0,
        "comfort_margin_min": 90.0,
        "comfort_margin_at": T0,
        "paused_until": None,
        **changes,
    }
    return member_pump_state(ratings, **values)  # type: ignore[arg-type]


def test_a_members_pump_state_from_its_ratings_and_reports() -> None:
    state = member([rating()]).state
    assert state == HeatPumpState(power_w=2500.0, comfort_margin_min=90.0)
    # Its power: within the floor and what it draws now.
    assert member([rating()], floor_w=1200.0).state.power_w == 1200.0
    assert member([rating()], measured_w=-800.0).state.power_w == 0.0
    # A pump the allocation holds off draws nothing now: what it holds back counts.
    assert member([rating()], measured_w=500.0, held_w=2000.0).state.power_w == 2500.0
    # A margin measured two minutes ago has two minutes less; one too old is unknown.
    aged = member([rating()], comfort_margin_at=T0 - timedelta(minutes=2)).state
    assert aged.comfort_margin_min == pytest.approx(88.0)
    stale = member([rating()], comfort_margin_at=T0 - timedelta(minutes=6)).state
    assert stale.comfort_margin_min is None


def test_a_hybrid_is_held_to_what_its_boiler_cannot_cover() -> None:
    # 4 kW lost, a 3 kW boiler: the pump covers 1 kW of heat at COP 2.5, 400 W.
    pump = rating(hybrid_heat_w=3000.0, heat_loss_kw=4.0, cop=2.5)
    state = member([pump]).state
    assert state.hybrid
    assert state.hybrid_cap_w == pytest.approx(400.0)
    assert rating(hybrid_heat_w=5000.0, heat_loss_kw=4.0, cop=2.5).hybrid_cap_w() == 0.0
    # Past the store's horizon nothing is known: held to all of its power.
    assert rating(hybrid_heat_w=3000.0).hybrid_cap_w() == 2500.0
    # A home with a hybrid and an all-electric pump counts as all-electric.
    assert not member([pump, rating()]).state.hybrid


def test_a_pause_in_2099_is_refused_and_leaves_the_pump_to_emergencies() -> None:
    reading = member([rating()], paused_until=datetime(2099, 1, 1, tzinfo=UTC))
    assert reading.refused is not None
    assert "2099" in reading.refused
    assert reading.state.paused_until is None
    assert reading.state.comfort_margin_min is None  # at the edge: no frame takes it
    homes = [home("h0", reading.state)]
    assert taken(allocate(homes, floors(homes) - 1500.0))["h0"] == 0.0
    assert taken(allocate(homes, floors(homes), mode=AllocationMode.EMERGENCY))["h0"] == 2500.0
    within = member([rating()], paused_until=T0 + timedelta(hours=48))
    assert within.refused is None
    assert within.state.paused(T0)


@pytest.mark.parametrize(
    "changes",
    [
        {"max_power_w": -1.0},
        {"max_power_w": float("nan")},
        {"cop": 0.0},
        {"heat_loss_kw": float("inf")},
        {"hybrid_heat_w": -5.0},
    ],
)
def test_bad_pump_ratings_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(AllocationError, match="pump rating"):
        rating(**changes)


def test_a_member_pump_state_needs_a_pump_and_sane_reports() -> None:
    with pytest.raises(AllocationError, match="at least one"):
        member([])
    with pytest.raises(AllocationError, match="comfort_margin_min"):
        member([rating()], comfort_margin_min=-5.0)
    with pytest.raises(AllocationError, match="comfort_margin_min"):
        member([rating()], comfort_margin_min=float("nan"))
    with pytest.raises(AllocationError, match="held_w"):
        member([rating()], held_w=float("nan"))
