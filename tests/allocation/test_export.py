"""Export caps: the members' PV export held below the transformer's export cap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from netbewust_core.allocation.allocator import LiveAllocator
from netbewust_core.allocation.model import (
    Allocation,
    AllocationMode,
    CapSeries,
    HouseholdState,
    NonMemberLoad,
    SharingRule,
)
from netbewust_core.limits import LimitInterval, LimitSource

NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)
CONNECTION_W = 17_250.0


def export_cap(export_w: float, import_w: float | None = None) -> CapSeries:
    interval = LimitInterval(
        NOON, NOON + timedelta(hours=4), max_import_w=import_w, max_export_w=export_w
    )
    return CapSeries((interval,))


@dataclass
class Roof:
    """A home with PV whose guard holds export to its limit from the next round."""

    household_id: str
    pv_w: float
    base_w: float = 300.0
    export_limit_w: float | None = None

    @property
    def grid_w(self) -> float:
        exported = self.pv_w - self.base_w
        if self.export_limit_w is not None:
            exported = min(exported, self.export_limit_w)
        return -exported

    def state(self) -> HouseholdState:
        return HouseholdState(
            household_id=self.household_id,
            measured_w=self.grid_w,
            guaranteed_min_w=self.base_w,
            flexible_w=0.0,
            connection_limit_w=CONNECTION_W,
        )


def run(
    roofs: list[Roof],
    cap: CapSeries,
    *,
    rounds: int,
    rule: SharingRule = SharingRule.EQUAL_SHARE,
    allocator: LiveAllocator | None = None,
    non_member: NonMemberLoad | None = None,
    start: datetime = NOON,
) -> tuple[Allocation, list[float]]:
    allocator = allocator or LiveAllocator()
    exported: list[float] = []
    allocation: Allocation | None = None
    for number in range(rounds):
        allocation = allocator.allocate(
            cap,
            non_member or NonMemberLoad(estimate_w=0.0),
            [roof.state() for roof in roofs],
            rule=rule,
            mode=AllocationMode.CAPACITY_FRAME,
            now=start + number * STEP,
        )
        for roof in roofs:
            limit = allocation.limits.get(roof.household_id)
            interval = None if limit is None else limit.interval_at(start + number * STEP)
            roof.export_limit_w = None if interval is None else interval.max_export_w
        exported.append(sum(-roof.grid_w for roof in roofs))
    assert allocation is not None
    return allocation, exported


def sunny_street(count: int = 10) -> list[Roof]:
    return [Roof(f"dak-{n}", pv_w=3000.0 + 400 * n) for n in range(count)]


@pytest.mark.parametrize("rule", list(SharingRule))
def test_export_is_held_below_the_export_cap(rule: SharingRule) -> None:
    roofs = sunny_street()
    unmanaged_w = sum(-roof.grid_w for roof in roofs)
    cap_w = 0.7 * unmanaged_w
    allocation, exported = run(roofs, export_cap(cap_w), rounds=12, rule=rule)
    assert max(exported[1:]) <= cap_w
    assert allocation.export_engaged
    assert allocation.export_cap_w == cap_w
    assert allocation.members_export_budget_w == cap_w
    limits = [limit.intervals[0] for limit in allocation.limits.values()]
    assert len(limits) == len(roofs)
    assert all(interval.max_import_w is None for interval in limits)  # import is not capped
    assert sum(interval.max_export_w or 0.0 for interval in limits) <= cap_w
    assert all(limit.source is LimitSource.DSO for limit in allocation.limits.values())
    shares = {share.household_id: share for share in allocation.shares}
    assert all(shares[roof.household_id].export_limit_w is not None for roof in roofs)
    assert "export held" in allocation.reason


def test_equal_share_curtails_the_largest_exporters() -> None:
    roofs = sunny_street()
    cap_w = 0.7 * sum(-roof.grid_w for roof in roofs)
    allocation, _ = run(roofs, export_cap(cap_w), rounds=2)
    by_id = {share.household_id: share.export_limit_w for share in allocation.shares}
    assert by_id["dak-0"] == pytest.approx(roofs[0].pv_w - roofs[0].base_w, abs=1.0)
    assert (by_id["dak-9"] or 0.0) < roofs[9].pv_w - roofs[9].base_w - 500.0


def test_export_well_below_the_cap_limits_nobody() -> None:
    roofs = sunny_street(3)
    allocation, _ = run(roofs, export_cap(100_000.0), rounds=3)
    assert not allocation.export_engaged
    assert allocation.limits == {}


def test_a_zero_export_cap_stops_all_export() -> None:
    roofs = sunny_street(4)
    allocation, exported = run(roofs, export_cap(0.0), rounds=3)
    assert exported[-1] == 0.0
    assert all(limit.intervals[0].max_export_w == 0.0 for limit in allocation.limits.values())


def test_non_member_export_reduces_the_budget_and_non_member_load_does_not_raise_it() -> None:
    roofs = sunny_street(4)
    cap_w = 10_000.0
    exporting = NonMemberLoad(estimate_w=-2_000.0)
    allocation, exported = run(roofs, export_cap(cap_w), rounds=3, non_member=exporting)
    assert allocation.members_export_budget_w == cap_w - 2_000.0
    assert exported[-1] <= cap_w - 2_000.0
    importing = NonMemberLoad(estimate_w=5_000.0)
    allocation, _ = run(sunny_street(4), export_cap(cap_w), rounds=3, non_member=importing)
    assert allocation.members_export_budget_w == cap_w


def test_import_and_export_limits_share_one_external_limit() -> None:
    roofs = sunny_street(4)
    heavy = HouseholdState(
        household_id="warmtepomp",
        measured_w=9_000.0,
        guaranteed_min_w=1_000.0,
        flexible_w=8_000.0,
        connection_limit_w=CONNECTION_W,
    )
    allocator = LiveAllocator()
    allocation = allocator.allocate(
        export_cap(5_000.0, import_w=5_000.0),
        NonMemberLoad(estimate_w=0.0),
        [*(roof.state() for roof in roofs), heavy],
        rule=SharingRule.EQUAL_SHARE,
        mode=AllocationMode.CAPACITY_FRAME,
        now=NOON,
    )
    [interval] = allocation.limits["warmtepomp"].intervals
    assert interval.max_import_w is not None
    assert interval.max_export_w is not None  # it exports nothing, so it gets its headroom
    roof_interval = allocation.limits["dak-0"].intervals[0]
    assert roof_interval.max_import_w is not None
    assert roof_interval.max_export_w is not None


def test_export_limits_are_lifted_after_the_sun_sets_and_released_households_are_told() -> None:
    roofs = sunny_street(5)
    cap_w = 0.6 * sum(-roof.grid_w for roof in roofs)
    allocator = LiveAllocator()
    run(roofs, export_cap(cap_w), rounds=3, allocator=allocator)
    for roof in roofs:
        roof.pv_w = 500.0  # clouds: export far below the cap
    held, _ = run(roofs, export_cap(cap_w), rounds=3, allocator=allocator, start=NOON + 3 * STEP)
    assert held.export_engaged  # not yet: release waits for release_hold
    later = NOON + 6 * STEP
    allocation, _ = run(roofs, export_cap(cap_w), rounds=13, allocator=allocator, start=later)
    assert not allocation.export_engaged
    assert allocation.limits == {}


def test_the_export_cap_ending_releases_every_household_at_once() -> None:
    roofs = sunny_street(3)
    allocator = LiveAllocator()
    run(roofs, export_cap(5_000.0), rounds=2, allocator=allocator)
    allocation = allocator.allocate(
        CapSeries(()),
        NonMemberLoad(estimate_w=0.0),
        [roof.state() for roof in roofs],
        rule=SharingRule.EQUAL_SHARE,
        mode=AllocationMode.CAPACITY_FRAME,
        now=NOON + 2 * STEP,
    )
    assert allocation.limits == {}
    assert {share.household_id for share in allocation.shares if share.released} == {
        roof.household_id for roof in roofs
    }
