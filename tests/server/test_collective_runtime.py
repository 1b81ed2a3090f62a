"""The server's collective day-ahead plan: prices, caps and members in; planned limits out."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from community_server.cap_control import CapControl
from community_server.collective_runtime import CollectiveRuntime
from community_server.config import CollectiveConfig
from community_server.dso.in_force import CapInForce, NonMemberLoadSource
from community_server.dso.signals import CapMode, SignalSource
from netbewust_core.collective.planner import plan_collective
from netbewust_core.collective.problem import CollectiveProblem, SharingRule
from netbewust_core.planning.prices import DayAheadPrices, FetchStatus, PricePoint
from netbewust_core.protocol.messages import (
    AssetKind,
    BaselineForecast,
    BatteryCapability,
    Capabilities,
    FlexEnvelope,
    LimitUpdate,
    Message,
    Telemetry,
)

from .conftest import NOW

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from community_server.store import Store
    from netbewust_core.collective.planner import CollectiveResult
    from netbewust_core.limits import ExternalLimit

QUARTER = timedelta(minutes=15)
CHEAP = range(8, 16)  # two cheap hours from NOW + 2 h
CAP_W = 20_000.0
NON_MEMBER_W = 2_000.0
EV_WH = 20_000.0


@dataclass
class FakeServer:
    """The parts of CommunityServer the runtime and the allocation use."""

    latest_baseline: dict[str, BaselineForecast] = field(default_factory=dict)
    latest_telemetry: dict[str, Any] = field(default_factory=dict)
    sent: list[tuple[str, ExternalLimit]] = field(default_factory=list)
    clock: datetime = NOW

    async def run_in_db(self, call: Callable[..., Any], *args: Any) -> Any:
        return call(*args)

    async def send_limits(self, limits: dict[str, ExternalLimit]) -> list[Message]:
        self.sent.extend(limits.items())
        return [
            Message(community="wijk-1", household=hid, sent_at=NOW, body=LimitUpdate(limit=limit))
            for hid, limit in limits.items()
        ]

    def now(self) -> datetime:
        return self.clock


@dataclass
class StubPrices:
    """Nord Pool as a stub: quarter-hour prices from NOW, cheap in `CHEAP`, or nothing."""

    published: bool = True
    asked: list[date] = field(default_factory=list)

    async def fetch_day(self, delivery_day: date) -> DayAheadPrices:
        self.asked.append(delivery_day)
        if not self.published:
            return DayAheadPrices(FetchStatus.FAILED, delivery_day, "NL", detail="HTTP 503")
        points = tuple(
            PricePoint(
                NOW + step * QUARTER, NOW + (step + 1) * QUARTER, 0.05 if step in CHEAP else 0.25
            )
            for step in range(-48, 144)
            if (NOW + step * QUARTER).date() == delivery_day
        )
        return DayAheadPrices(FetchStatus.PUBLISHED, delivery_day, "NL", points, final=True)


@dataclass
class StubCaps:
    """The DSO: a frame of `import_w` over the whole day, changeable by the test."""

    import_w: float | None = CAP_W

    async def __call__(self, transformer_id: str, at: datetime) -> CapInForce:
        return CapInForce(
            transformer_id=transformer_id,
            at=at,
            import_w=self.import_w,
            export_w=None,
            mode=None if self.import_w is None else CapMode.FRAME,
            source=None if self.import_w is None else SignalSource.HTTP,
            signal_ids=(),
            until=None,
            non_member_load_w=NON_MEMBER_W,
            non_member_load_source=NonMemberLoadSource.CONFIGURED_ESTIMATE,
        )


def _community(
    store: Store, server: FakeServer, count: int, capacity_w: float | None = 400_000.0
) -> list[str]:
    """Members with a flat 500 W baseline and an EV to charge today, via real messages."""
    store.create_transformer("trafo-1", "wijk-1", "Trafo 1", capacity_w)
    names = []
    for number in range(count):
        code = store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-1").code
        name = store.redeem_join_code(code, NOW, f"huis-{number}").household_id
        envelope = FlexEnvelope(
            asset=AssetKind.EV,
            energy_wh=EV_WH,
            max_power_w=11_000.0,
            earliest_start=NOW,
            deadline=NOW + timedelta(hours=20),
        )
        caps = Capabilities(phases=3, fuse_current_a=25.0, envelopes=(envelope,))
        baseline = BaselineForecast(start=NOW, power_w=(500.0,) * 96)
        store.save_received(
            [
                Message(community="wijk-1", household=name, sent_at=NOW, body=body)
                for body in (caps, baseline)
            ],
            NOW,
        )
        server.latest_baseline[name] = baseline
        names.append(name)
    return names


def _runtime(
    store: Store, server: FakeServer, caps: StubCaps, prices: StubPrices
) -> tuple[CollectiveRuntime, CapControl]:
    control = CapControl(server, store, "trafo-1", caps)  # type: ignore[arg-type]
    runtime = CollectiveRuntime(
        server,  # type: ignore[arg-type]
        store,
        [control],
        caps=caps,
        prices=prices,
        config=CollectiveConfig(enabled=True),
        rule=SharingRule.EQUAL_SHARE,
    )
    return runtime, control


def _planned_room(cap_w: float, members: int) -> float:
    """What the members' limits may add up to: the cap less the planning margin and the
    non-member load, plus every member's forecast-error headroom on its 500 W baseline."""
    config = CollectiveConfig()
    kept = cap_w * (1 - config.planning_margin_pct / 100) - NON_MEMBER_W
    return kept + members * config.limit_headroom_pct / 100 * 500.0


def _import_at(limits: dict[str, ExternalLimit], moment: datetime) -> float:
    total = 0.0
    for limit in limits.values():
        interval = limit.interval_at(moment)
        assert interval is not None
        assert interval.max_import_w is not None
        total += interval.max_import_w
    return total


async def test_a_binding_cap_gives_planned_limits_within_it(server_store: Store) -> None:
    server = FakeServer()
    names = _community(server_store, server, 4)
    caps, prices = StubCaps(), StubPrices()
    runtime, control = _runtime(server_store, server, caps, prices)

    await runtime.check(NOW)

    status = runtime.status["trafo-1"]
    assert status.status == "planned", status.detail
    assert status.binding_steps > 0
    assert set(control.planned_limits) == set(names)
    assert {hid for hid, _limit in server.sent} == set(names)  # published to every member
    limited = [NOW + step * QUARTER for step in CHEAP]
    for moment in limited:  # the cheap hours bind: four 11 kW cars do not fit
        assert _import_at(control.planned_limits, moment) <= _planned_room(CAP_W, 4) + 1.0
    # Meeting the cap costs the community something, and the report says so per member.
    assert status.cost_eur is not None
    assert status.cost_alone_eur is not None
    assert status.cost_eur >= status.cost_alone_eur - 1e-6
    assert {h.household_id for h in status.households} == set(names)
    assert all(h.shortfall_wh < 1.0 for h in status.households)  # every car still charged
    document = status.document()
    assert document["status"] == "planned"
    assert len(document["households"]) == 4
    # The dashboard's chart series: the members' planned load within the cap planned to.
    series = status.series
    assert series is not None
    assert len(series.members_w) == len(series.cap_w) == status.steps
    assert set(series.non_member_w) == {NON_MEMBER_W}
    assert set(series.cap_w) == {CAP_W * (1 - CollectiveConfig().planning_margin_pct / 100)}
    room = [(cap or 0.0) - NON_MEMBER_W + 1.0 for cap in series.cap_w]
    assert all(w <= r for w, r in zip(series.members_w, room, strict=True))
    assert any(w > r for w, r in zip(series.members_alone_w, room, strict=True))  # alone: over


async def test_without_any_cap_the_plan_shows_none_and_costs_what_alone_would(
    server_store: Store,
) -> None:
    server = FakeServer()
    _community(server_store, server, 2, capacity_w=None)
    runtime, _control = _runtime(server_store, server, StubCaps(import_w=None), StubPrices())
    await runtime.check(NOW)
    status = runtime.status["trafo-1"]
    assert status.status == "planned", status.detail
    assert status.series is not None
    # The LP's bound stands in for "no cap"; the dashboard is told there is none.
    assert set(status.series.cap_w) == {None}
    assert status.cost_eur is not None
    assert status.cost_alone_eur is not None
    assert abs(status.cost_eur - status.cost_alone_eur) < 1e-3  # nothing binds


async def test_the_live_allocation_passes_the_plan_through(server_store: Store) -> None:
    server = FakeServer()
    names = _community(server_store, server, 3)
    runtime, control = _runtime(server_store, server, StubCaps(), StubPrices())
    await runtime.check(NOW)
    states = [
        state
        for household in server_store.households()
        if (state := control._state(household, NOW, everyone=True)) is not None
    ]
    assert {s.household_id for s in states if s.planned_limit is not None} == set(names)


async def test_unchanged_inputs_do_not_replan_but_a_new_dso_frame_does(
    server_store: Store,
) -> None:
    server = FakeServer()
    _community(server_store, server, 3)
    caps = StubCaps()
    runtime, control = _runtime(server_store, server, caps, StubPrices())
    await runtime.check(NOW)
    first = runtime.status["trafo-1"].planned_at
    await runtime.check(NOW + timedelta(seconds=30))
    assert runtime.status["trafo-1"].planned_at == first  # nothing changed

    caps.import_w = 12_000.0  # a tighter frame from the DSO
    later = NOW + timedelta(seconds=60)
    await runtime.check(later)
    status = runtime.status["trafo-1"]
    assert status.planned_at == later
    for step in CHEAP:
        moment = NOW + step * QUARTER
        assert _import_at(control.planned_limits, moment) <= _planned_room(12_000.0, 3) + 1.0


async def test_the_plan_is_renewed_after_replan_minutes(server_store: Store) -> None:
    server = FakeServer()
    _community(server_store, server, 3)
    runtime, _control = _runtime(server_store, server, StubCaps(), StubPrices())
    await runtime.check(NOW)
    later = NOW + timedelta(minutes=15)
    await runtime.check(later)
    assert runtime.status["trafo-1"].planned_at == later
    assert runtime.status["trafo-1"].start == later


async def test_missing_prices_mean_no_plan_and_say_so(server_store: Store) -> None:
    server = FakeServer()
    _community(server_store, server, 3)
    prices = StubPrices(published=False)
    runtime, control = _runtime(server_store, server, StubCaps(), prices)
    await runtime.check(NOW)
    status = runtime.status["trafo-1"]
    assert status.status == "no_prices"
    assert "HTTP 503" in status.detail
    assert control.planned_limits == {}
    assert server.sent == []
    asked = len(prices.asked)
    await runtime.check(NOW + timedelta(minutes=1))  # not asked again straight away
    assert len(prices.asked) == asked


async def test_members_without_a_baseline_are_left_out(server_store: Store) -> None:
    server = FakeServer()
    names = _community(server_store, server, 3)
    del server.latest_baseline[names[0]]
    runtime, control = _runtime(server_store, server, StubCaps(), StubPrices())
    await runtime.check(NOW)
    status = runtime.status["trafo-1"]
    assert status.status == "planned"
    assert status.unplanned == (names[0],)
    assert names[0] not in control.planned_limits

    server.latest_baseline.clear()
    await runtime.check(NOW + timedelta(minutes=15))
    assert runtime.status["trafo-1"].status == "no_households"


async def test_no_cap_in_force_plans_without_limits(server_store: Store) -> None:
    server = FakeServer()
    _community(server_store, server, 3)
    runtime, control = _runtime(server_store, server, StubCaps(import_w=None), StubPrices())
    await runtime.check(NOW)
    status = runtime.status["trafo-1"]
    assert status.status == "planned"
    assert status.binding_steps == 0
    assert all(not limit.intervals for limit in control.planned_limits.values())


async def test_a_failing_planner_is_reported_not_raised(server_store: Store) -> None:
    server = FakeServer()
    _community(server_store, server, 2)
    caps = StubCaps()
    control = CapControl(server, server_store, "trafo-1", caps)  # type: ignore[arg-type]

    def broken(problem: object) -> Any:
        raise RuntimeError("solver crashed")

    runtime = CollectiveRuntime(
        server,  # type: ignore[arg-type]
        server_store,
        [control],
        caps=caps,
        prices=StubPrices(),
        config=CollectiveConfig(enabled=True),
        rule=SharingRule.EQUAL_SHARE,
        plan=broken,
    )
    await runtime.check(NOW)
    assert runtime.status["trafo-1"].status == "failed"
    assert "solver crashed" in runtime.status["trafo-1"].detail


def _planning(
    store: Store, server: FakeServer
) -> tuple[CollectiveRuntime, list[CollectiveProblem]]:
    """A runtime with the real planner that keeps every problem it was given."""
    problems: list[CollectiveProblem] = []

    def plan(problem: CollectiveProblem) -> CollectiveResult:
        problems.append(problem)
        return plan_collective(problem)

    caps = StubCaps()
    runtime = CollectiveRuntime(
        server,  # type: ignore[arg-type]
        store,
        [CapControl(server, store, "trafo-1", caps)],  # type: ignore[arg-type]
        caps=caps,
        prices=StubPrices(),
        config=CollectiveConfig(enabled=True),
        rule=SharingRule.EQUAL_SHARE,
        plan=plan,
    )
    return runtime, problems


def _send_capabilities(store: Store, household: str, capabilities: Capabilities) -> None:
    message = Message(community="wijk-1", household=household, sent_at=NOW, body=capabilities)
    store.save_received([message], NOW)


def _telemetry(at: datetime, soc_pct: float | None) -> Telemetry:
    return Telemetry(
        measured_at=at, interval_s=10, power_w=(500.0,), participating=True, battery_soc_pct=soc_pct
    )


async def test_a_reported_minimum_power_is_planned_with_else_six_amps(
    server_store: Store,
) -> None:
    server = FakeServer()
    single, other = _community(server_store, server, 2)
    # A car that charges on one phase of a three-phase home: 6 A x 230 V = 1380 W.
    envelope = FlexEnvelope(
        asset=AssetKind.EV,
        energy_wh=EV_WH,
        max_power_w=3680.0,
        earliest_start=NOW,
        deadline=NOW + timedelta(hours=20),
        min_power_w=1380.0,
    )
    caps = Capabilities(phases=3, fuse_current_a=25.0, envelopes=(envelope,))
    _send_capabilities(server_store, single, caps)
    runtime, problems = _planning(server_store, server)

    await runtime.check(NOW)

    assert runtime.status["trafo-1"].status == "planned", runtime.status["trafo-1"].detail
    households = {h.household_id: h for h in problems[-1].households}
    assert households[single].envelopes[0].min_power_w == 1380.0
    assert households[other].envelopes[0].min_power_w == 6 * 230.0 * 3  # not reported


async def test_a_fresh_state_of_charge_is_planned_from_else_half_full(
    server_store: Store,
) -> None:
    server = FakeServer()
    full, stale, silent = _community(server_store, server, 3)
    battery = BatteryCapability(energy_wh=10_000.0, max_charge_w=5000.0, max_discharge_w=5000.0)
    for name in (full, stale, silent):
        _send_capabilities(
            server_store, name, Capabilities(phases=3, fuse_current_a=25.0, battery=battery)
        )
    server.latest_telemetry[full] = _telemetry(NOW - timedelta(seconds=10), 90.0)
    server.latest_telemetry[stale] = _telemetry(NOW - timedelta(minutes=5), 90.0)
    runtime, problems = _planning(server_store, server)

    await runtime.check(NOW)

    assert runtime.status["trafo-1"].status == "planned", runtime.status["trafo-1"].detail
    batteries = {h.household_id: h.batteries[0] for h in problems[-1].households}
    assert (batteries[full].soc_initial_pct, batteries[full].soc_final_min_pct) == (90.0, 50.0)
    for unknown in (stale, silent):
        assert (batteries[unknown].soc_initial_pct, batteries[unknown].soc_final_min_pct) == (
            50.0,
            50.0,
        )
    # The 90 % battery gives energy back in the expensive hours; a 50 % one cannot end lower.
    result = plan_collective(problems[-1])
    net_wh = {o.household_id: sum(o.battery_w[0]) * 0.25 for o in result.households}
    assert net_wh[full] < -1000.0
    assert net_wh[stale] >= -1.0
    assert net_wh[silent] >= -1.0


async def test_a_low_state_of_charge_may_end_where_it_started(server_store: Store) -> None:
    server = FakeServer()
    [name] = _community(server_store, server, 1)
    battery = BatteryCapability(energy_wh=10_000.0, max_charge_w=5000.0, max_discharge_w=5000.0)
    _send_capabilities(
        server_store, name, Capabilities(phases=3, fuse_current_a=25.0, battery=battery)
    )
    server.latest_telemetry[name] = _telemetry(NOW, 20.0)
    runtime, problems = _planning(server_store, server)
    await runtime.check(NOW)
    [household] = problems[-1].households
    assert (household.batteries[0].soc_initial_pct, household.batteries[0].soc_final_min_pct) == (
        20.0,
        20.0,
    )


async def test_a_moving_state_of_charge_alone_does_not_replan(server_store: Store) -> None:
    server = FakeServer()
    [name] = _community(server_store, server, 1)
    battery = BatteryCapability(energy_wh=10_000.0, max_charge_w=5000.0, max_discharge_w=5000.0)
    _send_capabilities(
        server_store, name, Capabilities(phases=3, fuse_current_a=25.0, battery=battery)
    )
    server.latest_telemetry[name] = _telemetry(NOW, 60.0)
    runtime, problems = _planning(server_store, server)
    await runtime.check(NOW)
    later = NOW + timedelta(seconds=30)
    server.latest_telemetry[name] = _telemetry(later, 58.0)
    await runtime.check(later)
    assert len(problems) == 1  # the battery follows the plan; no new plan for that
    replan = NOW + timedelta(minutes=15)
    server.latest_telemetry[name] = _telemetry(replan, 40.0)
    await runtime.check(replan)
    assert len(problems) == 2
    assert problems[-1].households[0].batteries[0].soc_initial_pct == 40.0


async def test_a_member_whose_data_cannot_be_used_is_left_out_of_the_plan_alone(
    server_store: Store, tmp_path: Path
) -> None:
    server = FakeServer()
    odd, *others = _community(server_store, server, 3)
    # Capabilities stored under older rules that today's protocol refuses (9999 A).
    connection = sqlite3.connect(tmp_path / "server.db")
    with connection:
        (stored,) = connection.execute(
            "SELECT capabilities FROM households WHERE household_id = ?", (odd,)
        ).fetchone()
        connection.execute(
            "UPDATE households SET capabilities = ? WHERE household_id = ?",
            (stored.replace('"fuse_current_a":25.0', '"fuse_current_a":9999.0'), odd),
        )
    connection.close()
    runtime, control = _runtime(server_store, server, StubCaps(), StubPrices())

    await runtime.check(NOW)

    status = runtime.status["trafo-1"]
    assert status.status == "planned", status.detail
    assert {h.household_id for h in status.households} == set(others)
    assert set(control.planned_limits) == set(others)
    [exclusion] = status.excluded
    assert (exclusion.household_id, exclusion.reason) == (odd, "excluded")
    assert "fuse_current_a" in exclusion.detail
    assert runtime.exclusions == {"excluded": 1}
    assert status.document()["excluded"] == [
        {"household": odd, "reason": "excluded", "detail": exclusion.detail}
    ]
