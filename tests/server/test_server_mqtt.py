"""The server against a real mosquitto: ingest, limits, ACLs, bad input, restarts."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from community_server import server as server_module
from community_server.broker_link import BrokerError
from community_server.cap_control import is_fresh
from community_server.config import ServerConfig
from community_server.notices import NOTICE_INTERVAL
from community_server.prometheus import ServerCollector, exposition, server_registry
from community_server.server import CommunityServer
from community_server.timestamps import CLOCK_TOLERANCE
from netbewust_core.protocol.messages import (
    Ack,
    AckStatus,
    BaselineForecast,
    Capabilities,
    Channel,
    EmergencyCommand,
    EmergencyLevel,
    EmergencyReason,
    LimitUpdate,
    Message,
    Notice,
    NoticeCode,
    Receipt,
    Telemetry,
    decode,
    decode_for_topic,
    encode,
)
from tests.clock import FixedClock

from .conftest import NOW, Broker, free_port
from .household_client import HouseholdClient, wait_until
from .messages import community_limit, community_server, telemetry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from community_server.mosquitto import TlsFiles
    from community_server.store import HouseholdCredentials, Store


@pytest.fixture
async def server(
    members: dict[str, HouseholdCredentials], broker: Broker, server_store: Store
) -> AsyncIterator[CommunityServer]:
    running = community_server(broker, server_store)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def huis_1(
    members: dict[str, HouseholdCredentials], broker: Broker
) -> AsyncIterator[HouseholdClient]:
    client = HouseholdClient("wijk-1", "huis-1", broker.port, members["huis-1"].password)
    assert not (await client.connect()).is_failure
    yield client
    await client.disconnect()


async def test_reports_are_validated_stored_and_acknowledged(
    server: CommunityServer, huis_1: HouseholdClient, server_store: Store
) -> None:
    for index in range(20):
        assert not (await huis_1.publish(telemetry(index))).is_failure
    capabilities = Capabilities(phases=1, fuse_current_a=25.0, tariff_class="1x25A")
    baseline = BaselineForecast(start=NOW, power_w=(800.0,) * 96)
    for body in (capabilities, baseline):
        await huis_1.publish(
            Message(community="wijk-1", household="huis-1", sent_at=NOW, body=body)
        )
    await wait_until(lambda: server.metrics.stored.total() == 22)
    assert len(server_store.telemetry("huis-1")) == 20
    household = server_store.household("huis-1")
    assert household is not None
    assert household.capabilities == capabilities
    assert server_store.latest_baseline("huis-1") == baseline
    assert not server.metrics.rejected


async def test_limits_are_retained_and_their_acks_stored(
    server: CommunityServer, huis_1: HouseholdClient, server_store: Store
) -> None:
    sent = await server.send_limit("huis-1", community_limit(3000.0))
    # Subscribing after the publish still delivers it: the limit is retained.
    await huis_1.subscribe(huis_1.topic(Channel.LIMITS), huis_1.topic(Channel.COMMAND))
    await wait_until(lambda: len(huis_1.received) == 1)
    received = decode(huis_1.received[0].payload)
    assert received == sent
    assert isinstance(received.body, LimitUpdate)
    assert received.body.limit.interval_at(NOW) == community_limit(3000.0).intervals[0]
    ack = Ack(ref_id=received.message_id, status=AckStatus.APPLIED)
    await huis_1.publish(Message(community="wijk-1", household="huis-1", sent_at=NOW, body=ack))
    await wait_until(lambda: len(server_store.acks_for(sent.message_id)) == 1)
    assert server_store.latest_sent("huis-1", "limits") == sent

    emergency = EmergencyCommand(
        level=EmergencyLevel.CURTAIL,
        reason=EmergencyReason.TRANSFORMER_OVERLOAD,
        starts_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
        max_import_w=2000.0,
    )
    command = await server.send_command("huis-1", emergency)
    await wait_until(lambda: len(huis_1.received) == 2)
    assert decode(huis_1.received[1].payload) == command
    assert not huis_1.received[1].retain
    assert server.metrics.published == {"limits": 1, "emergency": 1}


async def test_bad_messages_are_rejected_counted_and_logged(
    server: CommunityServer,
    huis_1: HouseholdClient,
    server_store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry_topic = huis_1.topic(Channel.TELEMETRY)
    valid = json.loads(encode(telemetry(1)))
    bad_payloads: dict[str, bytes | str] = {
        "malformed": b"\x00\xffnot json",
        "unknown_version": json.dumps({**valid, "v": 2}),
        "out_of_range": json.dumps({**valid, "body": {**valid["body"], "power_w": [1e9]}}),
        "wrong_household": encode(telemetry(2, household="huis-2")),
        "too_large": b" " * 70_000,
        "extra_field": json.dumps({**valid, "debug": 1}),
    }
    caplog.set_level(logging.WARNING, logger="community_server.server")
    for payload in bad_payloads.values():
        await huis_1.publish_raw(telemetry_topic, payload)
    await huis_1.publish_raw(huis_1.topic(Channel.BASELINE), encode(telemetry(3)))
    await huis_1.publish(telemetry(4))  # a valid one after all that
    await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
    assert dict(server.metrics.rejected) == dict.fromkeys([*bad_payloads, "wrong_channel"], 1)
    assert [row.message_id for row in server_store.telemetry("huis-1")] == ["huis-1-t4"]
    assert server.is_connected
    assert "not supported" in caplog.text
    assert "\\x00" not in caplog.text  # payloads are not logged


async def test_messages_from_a_removed_household_are_refused(
    server: CommunityServer, huis_1: HouseholdClient, server_store: Store
) -> None:
    assert server_store.remove_household("huis-1")  # broker not yet reloaded
    await huis_1.publish(telemetry(1))
    await wait_until(lambda: server.metrics.rejected["unknown_household"] == 1)
    assert server_store.telemetry("huis-1") == []
    with pytest.raises(Exception, match="no household"):
        await server.send_limit("huis-1", community_limit(1000.0))


async def test_a_household_cannot_publish_as_another(
    server: CommunityServer, huis_1: HouseholdClient, server_store: Store
) -> None:
    impersonation = telemetry(1, household="huis-2")
    reason = await huis_1.publish(impersonation)  # on huis-2's topic
    assert reason.is_failure  # mosquitto answers "Not authorized"
    await huis_1.publish(telemetry(2))  # same connection, so delivered after the first
    await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
    assert server_store.telemetry("huis-2") == []
    assert not server.metrics.rejected  # the broker stopped it; the server never saw it


async def test_a_household_reads_only_its_own_limits(
    server: CommunityServer, huis_1: HouseholdClient
) -> None:
    await server.send_limit("huis-2", community_limit(1000.0))
    own = await server.send_limit("huis-1", community_limit(2000.0))
    # The broker grants only the literal own topic; wider filters are refused outright.
    await huis_1.subscribe(
        huis_1.topic(Channel.LIMITS), "netbewust/v1/wijk-1/+/limits", "netbewust/v1/#"
    )
    await wait_until(lambda: len(huis_1.received) >= 1)
    await huis_1.publish(telemetry(1))  # round trip so any stray delivery has arrived
    assert [decode(m.payload) for m in huis_1.received] == [own]


async def test_an_unreachable_broker_is_a_clear_error(broker: Broker, server_store: Store) -> None:
    """Wrong credentials, a restart and a reload are covered against both brokers
    (test_both_brokers.py); no broker at all is broker-independent."""
    unreachable = CommunityServer(
        ServerConfig(mqtt=broker.mqtt_config(port=free_port())), server_store
    )
    with pytest.raises(BrokerError, match="cannot connect"):
        await unreachable.start()


async def test_the_server_talks_tls_and_verifies_the_broker(
    members: dict[str, HouseholdCredentials],
    tls_broker: Broker,
    tls_files: TlsFiles,
    server_store: Store,
) -> None:
    secure = CommunityServer(
        ServerConfig(mqtt=tls_broker.mqtt_config(tls=True, tls_ca_file=str(tls_files.ca_file))),
        server_store,
        clock=lambda: NOW,
    )
    await secure.start()
    try:
        sent = await secure.send_limit("huis-1", community_limit(2500.0))
    finally:
        await secure.stop()
    assert server_store.latest_sent("huis-1", "limits") == sent
    # Without our CA the broker's certificate is not trusted: no connection.
    untrusting = CommunityServer(
        ServerConfig(mqtt=tls_broker.mqtt_config(tls=True)), server_store, clock=lambda: NOW
    )
    with pytest.raises(BrokerError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusting.start()


async def test_database_outages_are_retried_and_nothing_is_acknowledged_meanwhile(
    server: CommunityServer,
    huis_1: HouseholdClient,
    server_store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "RETRY_STORE_S", 0.01)
    save = server_store.save_received
    failures = [sqlite3.OperationalError("disk I/O error")] * 2

    def flaky(messages: Sequence[Message], received_at: datetime) -> list[Message]:
        if failures:
            raise failures.pop()
        return save(messages, received_at)

    monkeypatch.setattr(server_store, "save_received", flaky)
    await huis_1.publish(telemetry(1))
    await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
    assert server.metrics.store_failures == 2
    assert len(server_store.telemetry("huis-1")) == 1


async def test_a_poison_message_cannot_block_the_others(
    server: CommunityServer,
    huis_1: HouseholdClient,
    server_store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save = server_store.save_received

    def choking(messages: Sequence[Message], received_at: datetime) -> list[Message]:
        if any(message.message_id == "huis-1-t2" for message in messages):
            raise ValueError("simulated bug")
        return save(messages, received_at)

    monkeypatch.setattr(server_store, "save_received", choking)
    for index in range(5):
        await huis_1.publish(telemetry(index))
    await wait_until(lambda: server.metrics.stored["telemetry"] == 4)
    await wait_until(lambda: server.metrics.rejected["store_error"] == 1)
    stored = {row.message_id for row in server_store.telemetry("huis-1")}
    assert stored == {"huis-1-t0", "huis-1-t1", "huis-1-t3", "huis-1-t4"}


async def test_an_unexpected_validation_failure_is_contained(
    server: CommunityServer, huis_1: HouseholdClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def buggy(topic: str, payload: bytes | str) -> Message:
        raw = payload.encode() if isinstance(payload, str) else payload
        if b"huis-1-t1" in raw:
            raise RuntimeError("simulated bug")
        return decode_for_topic(topic, payload)

    monkeypatch.setattr(server_module, "decode_for_topic", buggy)
    await huis_1.publish(telemetry(1))
    await huis_1.publish(telemetry(2))
    await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
    assert server.metrics.rejected == {"internal_error": 1}
    assert server.is_connected


async def test_messages_stamped_ahead_of_the_clock_are_rejected_and_never_fresh(
    server: CommunityServer, huis_1: HouseholdClient, server_store: Store
) -> None:
    in_2099 = Telemetry(
        measured_at=datetime(2099, 1, 1, tzinfo=UTC),
        interval_s=10,
        power_w=(50_000.0,),
        participating=True,
    )
    await huis_1.publish(Message(community="wijk-1", household="huis-1", sent_at=NOW, body=in_2099))
    # Capabilities are kept newest-first by sent_at: one from the future would pin them.
    await huis_1.publish(
        Message(
            community="wijk-1",
            household="huis-1",
            sent_at=NOW + CLOCK_TOLERANCE + timedelta(seconds=1),
            body=Capabilities(phases=3, fuse_current_a=25.0),
        )
    )
    await huis_1.publish(telemetry(6))  # a minute ahead: within the tolerance
    await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
    assert dict(server.metrics.rejected) == {"future_timestamp": 2}
    assert [row.message_id for row in server_store.telemetry("huis-1")] == ["huis-1-t6"]
    household = server_store.household("huis-1")
    assert household is not None
    assert household.capabilities is None
    assert not is_fresh(in_2099, NOW)
    assert server.latest_telemetry["huis-1"].measured_at == NOW + timedelta(minutes=1)
    # The report a minute ahead does not pin the load: the next one replaces it.
    await huis_1.publish(telemetry(0))
    await wait_until(lambda: server.metrics.stored["telemetry"] == 2)
    assert server.latest_telemetry["huis-1"].measured_at == NOW


def _ahead(index: int, household: str, by: timedelta) -> Message:
    """A report stamped `by` ahead of the server's clock."""
    message = telemetry(index, household)
    body = message.body
    assert isinstance(body, Telemetry)
    moment = message.sent_at + by
    return Message(
        community="wijk-1",
        household=household,
        sent_at=moment,
        message_id=f"{household}-ahead-{index}",
        body=Telemetry(measured_at=moment, interval_s=10, power_w=body.power_w, participating=True),
    )


async def test_a_clock_ahead_draws_one_notice_per_window_and_old_households_see_none(
    members: dict[str, HouseholdCredentials], broker: Broker, server_store: Store
) -> None:
    clock = FixedClock(NOW)
    server = CommunityServer(ServerConfig(mqtt=broker.mqtt_config()), server_store, clock=clock)
    await server.start()
    # huis-1 reads its receipts channel; huis-2 subscribes as households did before it.
    new = HouseholdClient("wijk-1", "huis-1", broker.port, members["huis-1"].password)
    old = HouseholdClient("wijk-1", "huis-2", broker.port, members["huis-2"].password)
    try:
        for client in (new, old):
            assert not (await client.connect()).is_failure
        await new.subscribe(new.topic(Channel.RECEIPTS))
        await old.subscribe(old.topic(Channel.LIMITS), old.topic(Channel.COMMAND))
        seven_minutes = timedelta(minutes=7)
        for index in range(5):
            for household, client in (("huis-1", new), ("huis-2", old)):
                await client.publish(_ahead(index, household, seven_minutes))
        await wait_until(lambda: server.metrics.rejected["future_timestamp"] == 10)
        # A report in time after them: its receipt comes after any notice.
        await new.publish(telemetry(0, "huis-1"))
        await wait_until(lambda: len(new.received) == 2)
        notice, receipt = (decode(message.payload) for message in new.received)
        assert notice.body == Notice(
            ref_id="huis-1-ahead-0", code=NoticeCode.FUTURE_TIMESTAMP, server_time=NOW
        )
        assert (notice.channel, new.received[0].qos) == (Channel.RECEIPTS, 0)
        assert receipt.body == Receipt(ids=("huis-1-t0",))
        samples = exposition(
            server_registry(ServerCollector(server.metrics, lambda: True, [], []))
        ).decode()
        code = 'code="future_timestamp"'
        assert f'netbewust_household_notices_total{{{code},outcome="sent"}} 2.0' in samples
        assert f'netbewust_household_notices_total{{{code},outcome="suppressed"}} 8.0' in samples

        # The window passed and the clock is still ahead: one more notice.
        clock.advance(NOTICE_INTERVAL)
        await new.publish(_ahead(5, "huis-1", NOTICE_INTERVAL + seven_minutes))
        await wait_until(lambda: len(new.received) == 3)
        again = decode(new.received[2].payload).body
        assert isinstance(again, Notice)
        assert (again.ref_id, again.server_time) == ("huis-1-ahead-5", clock())

        # The household without the channel saw nothing and still gets its limits.
        await server.send_limit("huis-2", community_limit(2000.0))
        await wait_until(lambda: len(old.received) == 1)
        assert isinstance(decode(old.received[0].payload).body, LimitUpdate)
        assert server.metrics.notices == {
            ("future_timestamp", "sent"): 3,
            ("future_timestamp", "suppressed"): 8,
        }
    finally:
        for client in (new, old):
            await client.disconnect()
        await server.stop()
