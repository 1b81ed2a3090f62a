"""DSO signals end to end: HTTP frame and OpenADR emergency -> server -> MQTT -> households.

Real mosquitto, the real server as `serve` assembles it, the test VTN, and simulated
households whose guard obeys the limits. Everything shares one settable clock, so the
households' minutes pass in milliseconds; the allocation's ten-second rounds are run by
the test at the clock's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestServer

from community_server.config import DatabaseConfig, HttpConfig, ServerConfig
from community_server.dso.http_routes import DsoAccount, hash_token
from community_server.dso.openadr_events import EanMap
from community_server.dso.ven import VenConfig
from community_server.dso_settings import DsoSettings
from community_server.serving import Serving, serving
from community_server.simulation.home import SimulatedHome
from community_server.simulation.member import MemberAccount, SimulatedMember
from community_server.simulation.profiles import EvSession, HouseholdProfile
from netbewust_core.allocation.model import AllocationConfig
from netbewust_core.limits import LimitSource
from netbewust_core.protocol.messages import AckStatus, LimitUpdate
from tests.dso.vtn import CLIENT_ID, CLIENT_SECRET, TestVtn, event, program

from .conftest import free_port
from .dso_frames import post_hour_frame
from .household_client import wait_until
from .operator_session import add_operator, operator_session

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from community_server.store import Store

    from .conftest import Broker

WINTER_EVENING = datetime(2026, 1, 14, 18, 30, tzinfo=UTC)
SUMMER_NOON = datetime(2026, 6, 21, 10, 30, tzinfo=UTC)
TRANSFORMER = "trafo-1"
EAN = "871685900000000011"
DSO_TOKEN = "stedin-secret-token"
HOUSEHOLDS = 4
EMERGENCY_CAP_W = 6_000.0
LINK_LOST_AFTER_S = 60.0


def _profile(number: int) -> HouseholdProfile:
    """A winter evening with the car charging and the heat pump on: well above any cap."""
    return HouseholdProfile(
        phases=3,
        fuse_current_a=25.0,
        annual_kwh=3000.0 + 200 * number,
        noise=0.0,
        pv_peak_w=0.0,
        ev_session=EvSession(arrival_h=17.0, energy_wh=30_000.0),
        ev_max_current_a=16.0,
        heat_pump_rated_w=2500.0,
    )


def _sunny_profile(number: int) -> HouseholdProfile:
    """A June noon: a three-phase inverter far above the base load, nothing else running."""
    return HouseholdProfile(
        phases=3,
        fuse_current_a=25.0,
        annual_kwh=2500.0 + 200 * number,
        noise=0.0,
        pv_peak_w=6000.0 + 500 * number,
        ev_session=None,
        ev_max_current_a=16.0,
        heat_pump_rated_w=0.0,
    )


class Clock:
    def __init__(self, start: datetime = WINTER_EVENING) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Neighbourhood:
    def __init__(self, state: Serving, store: Store, members: list[SimulatedMember], clock: Clock):
        self.state = state
        self.store = store
        self.members = members
        self.clock = clock

    @property
    def aggregate_w(self) -> float:
        return sum(sum(member.home.last_power_w) for member in self.members)

    async def run_seconds(self, seconds: int) -> list[float]:
        """Tick every household once per clock second; an allocation round every ten."""
        aggregates = []
        server = self.state.server
        for _ in range(seconds):
            self.clock.now += timedelta(seconds=1)
            for member in self.members:
                member.tick(self.clock.now)
            aggregates.append(self.aggregate_w)
            if self.clock.now.second % 10 == 0:
                await wait_until(
                    lambda: all(
                        (t := server.latest_telemetry.get(m.account.household)) is not None
                        and t.measured_at == self.clock.now
                        for m in self.members
                    )
                )
                control = self.state.control(TRANSFORMER)
                assert control is not None
                await control.step(self.clock.now)
            await asyncio.sleep(0)  # deliveries of limits and acks
        return aggregates

    async def all_acknowledged(self) -> list[LimitUpdate]:
        """Every household acknowledged (applied) the newest limit it was sent."""
        latest: list[LimitUpdate] = []

        def done() -> bool:
            latest.clear()
            for member in self.members:
                sent = self.store.latest_sent(member.account.household, "limits")
                if sent is None or not isinstance(sent.body, LimitUpdate):
                    return False
                acks = self.store.acks_for(sent.message_id)
                if [ack.ack.status for ack in acks] != [AckStatus.APPLIED]:
                    return False
                latest.append(sent.body)
            return True

        await wait_until(done)
        return latest


@pytest.fixture
async def vtn(socket_enabled: None, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestServer]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the loopback VTN has no TLS
    test_vtn = TestVtn("3.0.1", Clock())
    # Not the GAC profile: it allows only IMPORT_CAPACITY_LIMIT, no emergency payloads.
    test_vtn.programs.append(program(gac=False))
    server = TestServer(test_vtn.application(), host="127.0.0.1")
    server.app["vtn"] = test_vtn
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def neighbourhood(
    tmp_path: Path, broker: Broker, server_store: Store, vtn: TestServer
) -> AsyncIterator[Neighbourhood]:
    async with _neighbourhood(tmp_path, broker, server_store, vtn) as town:
        yield town


def _big_first(number: int) -> HouseholdProfile:
    """huis-0 declares 3x100 A (protocol v1 takes fuses up to 250 A); the rest as usual."""
    profile = _profile(number)
    return dataclasses.replace(profile, fuse_current_a=100.0) if number == 0 else profile


@pytest.fixture
async def mixed_neighbourhood(
    tmp_path: Path, broker: Broker, server_store: Store, vtn: TestServer
) -> AsyncIterator[Neighbourhood]:
    async with _neighbourhood(tmp_path, broker, server_store, vtn, profile=_big_first) as town:
        yield town


@pytest.fixture
async def sunny_neighbourhood(
    tmp_path: Path, broker: Broker, server_store: Store, vtn: TestServer
) -> AsyncIterator[Neighbourhood]:
    async with _neighbourhood(
        tmp_path, broker, server_store, vtn, start=SUMMER_NOON, profile=_sunny_profile
    ) as town:
        yield town


@contextlib.asynccontextmanager
async def _neighbourhood(
    tmp_path: Path,
    broker: Broker,
    server_store: Store,
    vtn: TestServer,
    *,
    start: datetime = WINTER_EVENING,
    profile: Callable[[int], HouseholdProfile] = _profile,
) -> AsyncIterator[Neighbourhood]:
    clock = Clock(start)
    test_vtn: TestVtn = vtn.app["vtn"]
    test_vtn.clock = clock
    server_store.create_transformer(TRANSFORMER, "wijk-1", "Trafo 1", 400_000.0)
    joined = []
    for number in range(HOUSEHOLDS):
        code = server_store.issue_join_code("wijk-1", clock.now, timedelta(hours=1), TRANSFORMER)
        joined.append(server_store.redeem_join_code(code.code, clock.now, f"huis-{number}"))
    broker.reload(server_store)
    ven = VenConfig(
        vtn_base_url=str(vtn.make_url(test_vtn.prefix)),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_url=str(vtn.make_url(f"{test_vtn.prefix}/auth/token")),
        eans=EanMap({EAN: TRANSFORMER}),
        emergency_import_w=EMERGENCY_CAP_W,
        poll_interval_s=0.2,
        link_lost_after_s=LINK_LOST_AFTER_S,
        allow_insecure_http=True,
    )
    config = ServerConfig(
        database=DatabaseConfig(path=tmp_path / "server.db"),
        mqtt=broker.mqtt_config(),
        http=HttpConfig(port=free_port()),
        dso=DsoSettings(
            accounts=(DsoAccount("stedin", hash_token(DSO_TOKEN)),),
            non_member_estimate_w={TRANSFORMER: 0.0},
            ven=ven,
        ),
    )
    members = [
        SimulatedMember(
            MemberAccount(
                "wijk-1", c.household_id, c.username, c.password, "127.0.0.1", broker.port
            ),
            SimulatedHome(profile(number), seed=number, controllable_pv=True),
            clock=clock,
        )
        for number, c in enumerate(joined)
    ]
    async with serving(config, server_store, clock=clock) as state:
        for member in members:
            member.connect()
        try:
            await wait_until(lambda: state.server.metrics.stored["baseline"] == HOUSEHOLDS)
            await wait_until(lambda: all(member.connected for member in members))
            town = Neighbourhood(state, server_store, members, clock)
            await town.run_seconds(30)  # unmanaged: everyone reports
            yield town
        finally:
            for member in members:
                await member.close()


async def _post_hour_frame(
    town: Neighbourhood, request_id: str, *, mode: str | None = None, **cap_kw: float
) -> None:
    """The DSO posts a one-hour frame from now over the HTTP API (`import_kw` and/or
    `export_kw`), as a grid operator's system would."""
    port = town.state.server._config.http.port
    await post_hour_frame(
        port,
        DSO_TOKEN,
        transformer=TRANSFORMER,
        start=town.clock.now,
        request_id=request_id,
        mode=mode,
        **cap_kw,
    )


async def test_a_frame_posted_over_http_reaches_every_household_and_holds(
    neighbourhood: Neighbourhood,
) -> None:
    town = neighbourhood
    unmanaged_w = town.aggregate_w
    cap_w = round(0.6 * unmanaged_w, -2)
    await _post_hour_frame(town, "frame-1", import_kw=cap_w / 1000, mode="frame")
    # The signal woke the allocation: limits went out without waiting for a round.
    limits = await town.all_acknowledged()
    assert all(limit.limit.source is LimitSource.DSO for limit in limits)
    granted = [limit.limit.interval_at(town.clock.now) for limit in limits]
    assert sum(i.max_import_w or 0 for i in granted if i is not None) <= cap_w

    aggregates = await town.run_seconds(90)
    assert max(aggregates[30:]) <= cap_w, (cap_w, unmanaged_w, aggregates)
    await town.all_acknowledged()  # renewals are acknowledged too
    control = town.state.control(TRANSFORMER)
    assert control is not None
    assert control.status is not None
    assert (control.status.source, control.status.mode) == ("http", "frame")
    assert control.status.non_member_source == "configured_estimate"


async def test_an_emergency_from_the_vtn_drops_every_household_at_once(
    neighbourhood: Neighbourhood, vtn: TestServer
) -> None:
    town = neighbourhood
    assert town.aggregate_w > 2 * EMERGENCY_CAP_W  # the emergency has something to do
    test_vtn: TestVtn = vtn.app["vtn"]
    test_vtn.events.append(
        event("ev-emergency", town.clock.now, [3], payload_type="SIMPLE", modified=town.clock.now)
    )
    assert town.state.dso.ven is not None
    town.state.dso.ven.poll_now()
    limits = await town.all_acknowledged()
    assert all(limit.limit.source is LimitSource.EMERGENCY for limit in limits)

    aggregates = await town.run_seconds(40)
    assert max(aggregates[10:]) <= EMERGENCY_CAP_W, aggregates
    control = town.state.control(TRANSFORMER)
    assert control is not None
    assert control.status is not None
    assert (control.status.mode, control.status.source) == ("emergency", "openadr")
    assert control.status.phase == "emergency"


def _corrupt_capabilities(database: Path, household: str) -> None:
    """Capabilities stored under older rules that today's protocol refuses (9999 A), and
    stamped so late that the household's own next declaration does not replace them."""
    connection = sqlite3.connect(database)
    with connection:
        (stored,) = connection.execute(
            "SELECT capabilities FROM households WHERE household_id = ?", (household,)
        ).fetchone()
        connection.execute(
            "UPDATE households SET capabilities = ?, capabilities_sent_at = ?"
            " WHERE household_id = ?",
            (
                stored.replace('"fuse_current_a":25.0', '"fuse_current_a":9999.0'),
                int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000),
                household,
            ),
        )
    connection.close()


async def test_members_the_allocation_cannot_use_never_stop_the_others_or_an_emergency(
    mixed_neighbourhood: Neighbourhood, vtn: TestServer, tmp_path: Path
) -> None:
    town = mixed_neighbourhood
    big, odd, *normal = [member.account.household for member in town.members]
    _corrupt_capabilities(tmp_path / "server.db", odd)
    control = town.state.control(TRANSFORMER)
    assert control is not None
    cap_w = round(0.6 * town.aggregate_w, -2)
    await _post_hour_frame(town, "frame-1", import_kw=cap_w / 1000, mode="frame")

    def acknowledged(household: str, source: LimitSource) -> bool:
        sent = town.store.latest_sent(household, "limits")
        if sent is None or not isinstance(sent.body, LimitUpdate):
            return False
        acks = town.store.acks_for(sent.message_id)
        return sent.body.limit.source is source and [a.ack.status for a in acks] == [
            AckStatus.APPLIED
        ]

    # The 3x100 A member and the others are allocated; the one whose data cannot be
    # used is left out with the reason, and the round still succeeds.
    await wait_until(lambda: all(acknowledged(h, LimitSource.DSO) for h in (big, *normal)))
    assert town.store.latest_sent(odd, "limits") is None
    assert control.status is not None
    assert control.status.phase != "failed"
    assert [e.household_id for e in control.status.excluded] == [odd]
    assert "fuse_current_a" in control.status.excluded[0].detail
    assert control.exclusions["excluded"] >= 1
    # Counted for GET /metrics by the running allocation loop.
    metrics = town.state.server.metrics
    await wait_until(lambda: metrics.allocation_excluded[TRANSFORMER, "excluded"] >= 1)

    # A DSO emergency reaches every member, the one left out too.
    test_vtn: TestVtn = vtn.app["vtn"]
    test_vtn.events.append(
        event("ev-emergency", town.clock.now, [3], payload_type="SIMPLE", modified=town.clock.now)
    )
    assert town.state.dso.ven is not None
    town.state.dso.ven.poll_now()
    limits = await town.all_acknowledged()
    assert all(limit.limit.source is LimitSource.EMERGENCY for limit in limits)
    assert control.status.phase == "emergency"


async def _dashboard(
    town: Neighbourhood, expect: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The dashboard's JSON once it shows what `expect` looks for (it caches for a second)."""
    port = town.state.server._config.http.port
    add_operator(town.store)  # per-household detail and the DSO audit are for operators
    async with operator_session(f"http://127.0.0.1:{port}") as session:
        for _ in range(40):
            async with session.get(f"http://127.0.0.1:{port}/api/v1/dashboard") as response:
                document: dict[str, Any] = await response.json()
            if expect(document):
                return document
            await asyncio.sleep(0.1)
    raise AssertionError(document)


def _cap(document: dict[str, Any]) -> dict[str, Any]:
    (transformer,) = document["transformers"]
    cap: dict[str, Any] = transformer["cap"]
    return cap


async def test_a_lost_link_keeps_the_frame_then_safe_mode_then_recovers(
    neighbourhood: Neighbourhood, vtn: TestServer
) -> None:
    town = neighbourhood
    test_vtn: TestVtn = vtn.app["vtn"]
    ven = town.state.dso.ven
    assert ven is not None
    control = town.state.control(TRANSFORMER)
    assert control is not None
    unmanaged_w = town.aggregate_w
    frame_w, safe_w = round(0.7 * unmanaged_w, -2), round(0.4 * unmanaged_w, -2)
    start = town.clock.now
    test_vtn.events += [
        event("ev-frame", start, [frame_w / 1000], duration="PT2M", modified=start),
        event(
            "ev-safe", start, [safe_w / 1000], name="safe-mode", duration="P9999Y", modified=start
        ),
    ]
    ven.poll_now()
    await wait_until(lambda: ven.status.safe_mode_import_w == {TRANSFORMER: safe_w})
    await town.run_seconds(10)
    assert control.status is not None
    assert (control.status.cap_w, control.status.source) == (frame_w, "openadr")

    test_vtn.down = True
    await town.run_seconds(int(LINK_LOST_AFTER_S) + 10)
    ven.poll_now()
    await wait_until(ven.link_lost)
    # Lost, but the frame has not ended: it stays in force.
    aggregates = await town.run_seconds(10)
    assert (control.status.cap_w, control.status.source) == (frame_w, "openadr")
    assert max(aggregates) <= frame_w
    document = await _dashboard(town, lambda d: d["dso"]["link"]["lost_since"] is not None)
    assert document["dso"]["link"]["connected"] is False
    assert _cap(document)["source"] == "openadr"

    # The frame ends: the VTN's safe-mode value takes over and the households obey it.
    aggregates = await town.run_seconds(60)
    assert town.clock.now > start + timedelta(minutes=2)
    assert (control.status.cap_w, control.status.source) == (safe_w, "safe_mode")
    limits = await town.all_acknowledged()
    assert all(limit.limit.source is LimitSource.COMMUNITY for limit in limits)
    granted = [limit.limit.interval_at(town.clock.now) for limit in limits]
    assert sum(i.max_import_w or 0 for i in granted if i is not None) <= safe_w
    assert max(aggregates[-20:]) <= safe_w, (safe_w, aggregates)
    document = await _dashboard(town, lambda d: _cap(d)["source"] == "safe_mode")
    assert (_cap(document)["cap_w"], _cap(document)["mode"]) == (safe_w, "frame")
    audit = [entry["action"] for entry in document["dso"]["audit"]]
    assert "link_lost" in audit

    # The VTN returns: no frame covers now, so the cap lifts and every household is released.
    test_vtn.down = False
    ven.poll_now()
    await wait_until(lambda: not ven.link_lost())
    await town.run_seconds(10)
    assert control.status.mode is None
    await town.run_seconds(int(_full_release_s()) + 20)
    limits = await town.all_acknowledged()
    assert all(limit.limit.interval_at(town.clock.now) is None for limit in limits)
    assert town.aggregate_w > safe_w  # they resumed
    document = await _dashboard(town, lambda d: d["dso"]["link"]["connected"] is True)
    assert _cap(document)["source"] is None
    assert "link_restored" in [entry["action"] for entry in document["dso"]["audit"]]


def _full_release_s() -> float:
    """How long a full release takes (serve's default config): the hold, then the spread."""
    config = AllocationConfig()
    return (config.release_hold + config.release_spread).total_seconds()


async def test_an_export_cap_posted_over_http_holds_the_households_pv(
    sunny_neighbourhood: Neighbourhood,
) -> None:
    town = sunny_neighbourhood
    unmanaged_export_w = -town.aggregate_w
    assert unmanaged_export_w > 15_000.0  # four roofs at noon export well
    cap_w = round(0.4 * unmanaged_export_w, -2)
    await _post_hour_frame(town, "export-1", export_kw=cap_w / 1000)
    limits = await town.all_acknowledged()
    granted = [limit.limit.interval_at(town.clock.now) for limit in limits]
    assert all(i is not None and i.max_export_w is not None for i in granted)
    assert sum(i.max_export_w or 0 for i in granted if i is not None) <= cap_w

    aggregates = await town.run_seconds(60)
    exports = [-aggregate for aggregate in aggregates]
    assert max(exports[20:]) <= cap_w, (cap_w, exports)
    assert max(exports[20:]) >= 0.8 * cap_w  # PV is held back, not switched off
    document = await _dashboard(town, lambda d: _cap(d)["export_limited"] is True)
    assert _cap(document)["export_cap_w"] == cap_w
    assert _cap(document)["cap_w"] is None  # no import cap was posted


async def test_an_event_in_year_9999_is_skipped_and_the_cap_next_to_it_applies(
    neighbourhood: Neighbourhood, vtn: TestServer
) -> None:
    town = neighbourhood
    test_vtn: TestVtn = vtn.app["vtn"]
    now = town.clock.now
    far = event("ev-9999", now, [1.0], modified=now)
    far["intervalPeriod"]["start"] = "9999-06-01T00:00:00+00:00"
    huge = event("ev-huge", now, [1.0], modified=now)
    huge["intervals"][0]["payloads"][0]["values"] = [int("9" * 400)]
    test_vtn.events += [far, huge, event("ev-cap", now, [50.0], modified=now)]
    ven = town.state.dso.ven
    assert ven is not None
    ven.poll_now()
    await wait_until(lambda: ven.status.events == 1 and ven.status.rejected_events == 2)
    assert ven.status.connected
    assert not ven.link_lost()
    await town.run_seconds(10)
    control = town.state.control(TRANSFORMER)
    assert control is not None
    assert control.status is not None
    assert (control.status.cap_w, control.status.source) == (50_000.0, "openadr")
    audit = town.state.dso.dso_store.audit(now - timedelta(minutes=1))
    rejected = sorted(entry.detail.split(":")[0] for entry in audit if entry.action == "rejected")
    assert rejected == ["event ev-9999", "event ev-huge"]
