"""Simulated households: seeded profiles, the guard obeying limits, protocol v1 over MQTT."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.config import ServerConfig
from community_server.server import CommunityServer
from community_server.simulation.home import SimulatedHome
from community_server.simulation.member import MemberAccount, SimulatedMember
from community_server.simulation.profiles import (
    EvSession,
    HouseholdProfile,
    base_load_w,
    heat_pump_demand_w,
    outdoor_temperature_c,
    pv_clear_sky_w,
)
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import (
    TELEMETRY_INTERVAL_S,
    AckStatus,
    AssetKind,
    Channel,
    FlexEnvelope,
    Topic,
)

from .conftest import NOW, Broker, EmbeddedUnderTest
from .household_client import wait_until

if TYPE_CHECKING:
    from community_server.store import Store

WINTER_EVENING = datetime(2026, 1, 14, 18, 30, tzinfo=UTC)
EV_HOME = HouseholdProfile(
    phases=3,
    fuse_current_a=25.0,
    annual_kwh=3000.0,
    noise=0.0,
    pv_peak_w=0.0,
    ev_session=EvSession(arrival_h=17.0, energy_wh=20_000.0),
    ev_max_current_a=16.0,
    heat_pump_rated_w=2500.0,
)


def test_profiles_are_seeded_and_plausible() -> None:
    assert HouseholdProfile.draw(7) == HouseholdProfile.draw(7)
    assert len({HouseholdProfile.draw(seed) for seed in range(20)}) == 20
    # A day of H0 base load is about a 365th of the annual use (winter: a bit more).
    day = (
        sum(
            base_load_w(datetime(2026, 1, 14, tzinfo=UTC) + timedelta(minutes=15 * i), 3650)
            for i in range(96)
        )
        / 4
    )
    assert 9_000 < day < 14_000
    assert pv_clear_sky_w(datetime(2026, 6, 21, 0, 0, tzinfo=UTC), 4000) == 0.0
    assert 2500 < pv_clear_sky_w(datetime(2026, 6, 21, 11, 40, tzinfo=UTC), 4000) < 4000
    assert heat_pump_demand_w(WINTER_EVENING, 2500) > heat_pump_demand_w(
        datetime(2026, 1, 14, 14, 0, tzinfo=UTC), 2500
    )


def _run(home: SimulatedHome, seconds: int, start: datetime = WINTER_EVENING) -> list[float]:
    totals = []
    for second in range(seconds):
        now = start + timedelta(seconds=second)
        home.step(now, now, 1.0)
        totals.append(sum(home.last_power_w))
    return totals


def _community_limit(max_import_w: float, start: datetime = WINTER_EVENING) -> ExternalLimit:
    return ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=start,
        expires_at=start + timedelta(minutes=5),
        intervals=(
            LimitInterval(start=start, end=start + timedelta(minutes=5), max_import_w=max_import_w),
        ),
    )


def test_the_home_charges_freely_without_a_limit() -> None:
    totals = _run(SimulatedHome(EV_HOME, seed=1), 60)
    assert min(totals[30:]) > 10_000  # car at 3x16 A plus the heat pump and base load


def test_the_guard_holds_a_community_limit_and_lets_go_at_expiry() -> None:
    home = SimulatedHome(EV_HOME, seed=1)
    home.guard.set_external_limit(_community_limit(9000.0))
    totals = _run(home, 360)
    held = totals[30:300]
    assert max(held) <= 9000 * 1.03  # within the meter's rounding and the car's overshoot
    assert min(held) > 7000  # it still charges, just slower
    assert min(totals[330:]) > 10_000  # the limit expired: back to local-only operation


def test_a_one_phase_home_without_devices_still_reports() -> None:
    profile = replace(EV_HOME, phases=1, ev_session=None, heat_pump_rated_w=0.0, pv_peak_w=3000)
    home = SimulatedHome(profile, seed=3)
    totals = _run(home, 5, start=datetime(2026, 6, 21, 11, 0, tzinfo=UTC))
    assert all(total < 0 for total in totals)  # midsummer noon: PV exports


async def test_a_member_joins_reports_and_obeys_limits_over_mqtt(
    embedded_broker: EmbeddedUnderTest, server_store: Store
) -> None:
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    credentials = server_store.redeem_join_code(code, NOW, "huis-9")
    embedded_broker.reload(server_store)
    clock = [WINTER_EVENING]
    server = CommunityServer(
        ServerConfig(mqtt=embedded_broker.mqtt_config()), server_store, clock=lambda: clock[0]
    )
    await server.start()
    account = MemberAccount(
        "wijk-1", "huis-9", credentials.username, credentials.password, "127.0.0.1",
        embedded_broker.port, protocol="3.1.1",
    )  # fmt: skip
    member = SimulatedMember(account, SimulatedHome(EV_HOME, seed=1), clock=lambda: clock[0])
    member.connect()
    try:
        await wait_until(lambda: server.metrics.stored["capabilities"] == 1)
        household = server_store.household("huis-9")
        assert household is not None
        assert household.capabilities == member.capabilities()
        await wait_until(lambda: server.metrics.stored["baseline"] == 1)
        for _ in range(20):
            clock[0] += timedelta(seconds=1)
            member.tick(clock[0])
        await wait_until(lambda: server.metrics.stored["telemetry"] == 2)

        server_clock_limit = _community_limit(9000.0, start=clock[0])
        sent = await server.send_limit("huis-9", server_clock_limit)
        await wait_until(lambda: len(server_store.acks_for(sent.message_id)) == 1)
        assert server_store.acks_for(sent.message_id)[0].ack.status is AckStatus.APPLIED
        for _ in range(60):
            clock[0] += timedelta(seconds=1)
            member.tick(clock[0])
        assert sum(member.home.last_power_w) <= 9000 * 1.03
        assert member.home.last_decision is not None
        assert member.home.last_decision.limit_source is LimitSource.COMMUNITY
    finally:
        await member.close()
        await server.stop()


async def test_a_limit_issued_earlier_but_sent_later_is_taken_not_refused_as_older(
    embedded_broker: EmbeddedUnderTest, server_store: Store
) -> None:
    """A plan computed for a while, or a planned limit sent again after a fallback, is
    issued when sent: the household refuses limits issued before the one it holds."""
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    credentials = server_store.redeem_join_code(code, NOW, "huis-9")
    embedded_broker.reload(server_store)
    clock = [WINTER_EVENING]
    server = CommunityServer(
        ServerConfig(mqtt=embedded_broker.mqtt_config()), server_store, clock=lambda: clock[0]
    )
    await server.start()
    account = MemberAccount(
        "wijk-1", "huis-9", credentials.username, credentials.password, "127.0.0.1",
        embedded_broker.port, protocol="3.1.1",
    )  # fmt: skip
    member = SimulatedMember(account, SimulatedHome(EV_HOME, seed=1), clock=lambda: clock[0])
    member.connect()
    try:
        await wait_until(lambda: member.connected)
        planned = _community_limit(8000.0, start=clock[0])  # computed now, sent later
        clock[0] += timedelta(seconds=5)
        live = await server.send_limit("huis-9", _community_limit(9000.0, start=clock[0]))
        clock[0] += timedelta(seconds=1)
        late = await server.send_limit("huis-9", planned)
        await wait_until(lambda: late.message_id in {ack.ref_id for ack in member.acks_sent})
        # (The retained live limit may come again on a reconnect: answered alike.)
        answers = {ack.ref_id: ack.status for ack in member.acks_sent}
        assert answers == {live.message_id: AckStatus.APPLIED, late.message_id: AckStatus.APPLIED}
        held = member.session.limit
        assert held is not None
        assert held.issued_at == clock[0]
        assert held.intervals == planned.intervals
    finally:
        await member.close()
        await server.stop()


async def test_reports_a_crashed_broker_lost_are_sent_again_and_stored_once(
    broker: Broker, server_store: Store
) -> None:
    """The broker acknowledged them, then died before saving them: the member still has
    them (no receipt came), sends them again, and the server stores each once."""
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    credentials = server_store.redeem_join_code(code, NOW, "huis-9")
    broker.reload(server_store)
    clock = [WINTER_EVENING]
    config = ServerConfig(mqtt=broker.mqtt_config())
    server = CommunityServer(config, server_store, clock=lambda: clock[0])
    await server.start()
    account = MemberAccount(
        "wijk-1", "huis-9", credentials.username, credentials.password, "127.0.0.1", broker.port
    )
    member = SimulatedMember(account, SimulatedHome(EV_HOME, seed=1), clock=lambda: clock[0])
    member.connect()
    reported: list[str] = []

    def report(periods: int) -> None:
        for _ in range(periods * TELEMETRY_INTERVAL_S):
            clock[0] += timedelta(seconds=1)
            member.tick(clock[0])
        reported.extend(
            message.message_id
            for message in member.session.unconfirmed
            if message.type_name == "telemetry" and message.message_id not in reported
        )

    def stored() -> list[str]:
        return [row.message_id for row in server_store.telemetry("huis-9")]

    try:
        await wait_until(lambda: member.connected)
        report(1)
        await wait_until(lambda: member.session.receipts_seen)  # this server confirms
        await server.stop()  # its session offline: the broker queues the reports
        report(30)
        await wait_until(lambda: len(member.session.unconfirmed) >= 30)
        broker.kill()
        broker.start()
        server = CommunityServer(config, server_store, clock=lambda: clock[0])
        await server.start()
        await wait_until(lambda: member.connected)
        await asyncio.sleep(1.0)  # whatever the broker still had is delivered by now
        # Whether the crash lost acknowledged reports depends on when mosquitto last saved
        # (it sometimes has them all); either way every report must end up stored once.
        for _ in range(20):  # a minute on: the member sends what was never confirmed
            clock[0] += timedelta(seconds=60)
            member.tick(clock[0])
            await asyncio.sleep(0.2)
        report(0)
        await wait_until(lambda: set(reported) <= set(stored()))
        assert sorted(stored()) == sorted(set(stored()))  # each once
        await wait_until(lambda: not member.session.unconfirmed)
        assert member.session.dropped == 0
    finally:
        await member.close()
        await server.stop()


def test_a_member_rejects_foreign_and_garbled_deliveries() -> None:
    account = MemberAccount("wijk-1", "huis-9", "huis-9", "x", "127.0.0.1", 1)
    member = SimulatedMember(account, SimulatedHome(EV_HOME, seed=1))
    member.handle(str(Topic("wijk-1", "huis-9", Channel.LIMITS)), b"{broken")
    member.handle("netbewust/v1/wijk-1/huis-8/limits", b'{"id": "abc"}')
    assert member.rejected == 2
    # The garbled one has no id to name; the foreign one is refused by its id.
    assert [(ack.ref_id, ack.status) for ack in member.acks_sent] == [("abc", AckStatus.REJECTED)]
    decision = member.home.step(WINTER_EVENING, WINTER_EVENING, 1.0)
    assert decision.limit_source is not LimitSource.COMMUNITY  # nothing reached the guard


def test_a_member_with_a_heat_pump_gives_its_profiles_outdoor_temperature() -> None:
    account = MemberAccount("wijk-1", "huis-9", "huis-9", "x", "127.0.0.1", 1)
    member = SimulatedMember(account, SimulatedHome(EV_HOME, seed=1), clock=lambda: NOW)
    assets = member.assets(WINTER_EVENING)
    assert assets.outdoor_c == outdoor_temperature_c(member.profile_moment(WINTER_EVENING))
    assert assets.outdoor_c is not None
    assert -2.0 <= assets.outdoor_c <= 6.0  # the profile's 2 C day, 4 K either side
    without = replace(EV_HOME, heat_pump_rated_w=0.0)
    plain = SimulatedMember(account, SimulatedHome(without, seed=1), clock=lambda: NOW)
    assert plain.assets(WINTER_EVENING).outdoor_c is None  # its profile has no weather


@pytest.mark.parametrize("seed", range(5))
def test_drawn_households_run_a_minute(seed: int) -> None:
    profile = HouseholdProfile.draw(seed)
    totals = _run(SimulatedHome(profile, seed=seed), 60)
    fuse_w = profile.fuse_current_a * 230 * profile.phases
    assert all(abs(total) <= fuse_w for total in totals)


async def test_a_plugged_in_car_is_offered_as_an_envelope_until_it_leaves(
    embedded_broker: EmbeddedUnderTest, server_store: Store
) -> None:
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    credentials = server_store.redeem_join_code(code, NOW, "huis-9")
    embedded_broker.reload(server_store)
    clock = [WINTER_EVENING - timedelta(hours=3)]  # 16:30 local: the car is not home yet
    server = CommunityServer(
        ServerConfig(mqtt=embedded_broker.mqtt_config()), server_store, clock=lambda: clock[0]
    )
    await server.start()
    account = MemberAccount(
        "wijk-1", "huis-9", credentials.username, credentials.password, "127.0.0.1",
        embedded_broker.port, protocol="3.1.1",
    )  # fmt: skip
    member = SimulatedMember(account, SimulatedHome(EV_HOME, seed=1), clock=lambda: clock[0])

    def stored_envelopes() -> tuple[FlexEnvelope, ...] | None:
        household = server_store.household("huis-9")
        assert household is not None
        return None if household.capabilities is None else household.capabilities.envelopes

    member.connect()
    try:
        await wait_until(lambda: server.metrics.stored["capabilities"] == 1)
        member.tick(clock[0])
        assert not member.home.ev_plugged
        assert stored_envelopes() == ()
        # 19:30 local: the car came home at 18:00; the next report offers it.
        for second in range(TELEMETRY_INTERVAL_S):
            clock[0] = WINTER_EVENING + timedelta(seconds=second)
            member.tick(clock[0])
        # By what is stored, not how often: unconfirmed reports may be sent again.
        await wait_until(lambda: bool(stored_envelopes()))
        envelopes = stored_envelopes()
        assert envelopes is not None
        assert len(envelopes) == 1
        car = envelopes[0]
        assert car.asset is AssetKind.EV
        assert car.energy_wh == pytest.approx(20_000.0, abs=50)  # charged for seconds only
        assert car.max_power_w == 3 * 16 * 230
        assert car.min_power_w == 3 * 6 * 230
        assert car.earliest_start == WINTER_EVENING  # this quarter hour
        assert car.deadline == datetime(2026, 1, 15, 6, 0, tzinfo=UTC)  # 07:00 local
        # The baseline leaves the car out: the base load and heat pump, as forecast.
        baseline = server_store.latest_baseline("huis-9")
        assert baseline is not None
        assert max(baseline.power_w) < 2500 + 1500

        for second in range(TELEMETRY_INTERVAL_S):  # 07:05 local: the car left
            clock[0] = datetime(2026, 1, 15, 6, 5, second, tzinfo=UTC)
            member.tick(clock[0])
        await wait_until(lambda: stored_envelopes() == ())
        assert stored_envelopes() == ()
        assert not member.home.ev_plugged
    finally:
        await member.close()
        await server.stop()


def test_at_demo_speed_the_envelope_is_in_real_time() -> None:
    account = MemberAccount("wijk-1", "huis-9", "huis-9", "x", "127.0.0.1", 1)
    start = WINTER_EVENING
    # The profiles start at 21:00 local and run 10 times faster than real time.
    member = SimulatedMember(
        account,
        SimulatedHome(EV_HOME, seed=1),
        speed=10.0,
        profile_start=datetime(2026, 1, 14, 20, 0, tzinfo=UTC),
        clock=lambda: start,
    )
    assert member.capabilities(start).envelopes == ()  # not plugged in before the first reading
    member.tick(start)
    [envelope] = member.capabilities(start).envelopes
    # Ten profile hours to 07:00 local are one real hour; the car charges ten times faster.
    assert envelope.deadline == start + timedelta(hours=1)
    assert envelope.energy_wh == pytest.approx(2_000.0, abs=1)
