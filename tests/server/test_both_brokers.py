"""The server's behaviour against real mosquitto (MQTT 5) and the embedded amqtt (3.1.1)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from community_server import mosquitto
from community_server.broker_link import BrokerError
from community_server.config import ServerConfig
from community_server.mosquitto import household_added, household_removed
from community_server.server import CommunityServer
from netbewust_core.protocol.messages import (
    Ack,
    AckStatus,
    Channel,
    Message,
    ReleaseCommand,
    decode,
)

from .conftest import NOW, Broker, EmbeddedUnderTest
from .household_client import HouseholdClient, wait_until
from .messages import community_limit, community_server, telemetry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from community_server.store import HouseholdCredentials, Store

AnyBroker = Broker | EmbeddedUnderTest


def _client(broker: AnyBroker, household: str, password: str) -> HouseholdClient:
    return HouseholdClient("wijk-1", household, broker.port, password, protocol=broker.protocol)


@pytest.fixture
async def server(
    members: dict[str, HouseholdCredentials], any_broker: AnyBroker, server_store: Store
) -> AsyncIterator[CommunityServer]:
    any_broker.reload(server_store)
    running = community_server(any_broker, server_store)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def huis_1(
    members: dict[str, HouseholdCredentials], any_broker: AnyBroker, server: CommunityServer
) -> AsyncIterator[HouseholdClient]:
    client = _client(any_broker, "huis-1", members["huis-1"].password)
    assert not (await client.connect()).is_failure
    yield client
    await client.disconnect()


async def test_reports_are_stored_and_limits_delivered_and_acknowledged(
    server: CommunityServer, huis_1: HouseholdClient, server_store: Store
) -> None:
    for index in range(5):
        assert not (await huis_1.publish(telemetry(index))).is_failure
    await wait_until(lambda: server.metrics.stored["telemetry"] == 5)
    assert [row.telemetry.power_w for row in server_store.telemetry("huis-1")] == [(900.0,)] * 5

    sent = await server.send_limit("huis-1", community_limit(2500.0))
    await huis_1.subscribe(huis_1.topic(Channel.LIMITS))  # after the publish: it is retained
    # A subscription racing the publish may get it twice (retained and live); the household
    # session decides a repeated limit again, so a second copy is harmless.
    await wait_until(lambda: len(huis_1.received) >= 1)
    assert {decode(m.payload) for m in huis_1.received} == {sent}
    ack = Ack(ref_id=sent.message_id, status=AckStatus.APPLIED)
    await huis_1.publish(Message(community="wijk-1", household="huis-1", sent_at=NOW, body=ack))
    await wait_until(lambda: len(server_store.acks_for(sent.message_id)) == 1)


async def test_malformed_input_is_rejected_and_counted(
    server: CommunityServer, huis_1: HouseholdClient
) -> None:
    await huis_1.publish_raw(huis_1.topic(Channel.TELEMETRY), b"{not json")
    await huis_1.publish(telemetry(1))
    await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
    assert dict(server.metrics.rejected) == {"malformed": 1}


async def test_the_acl_keeps_households_to_their_own_topics(
    server: CommunityServer, huis_1: HouseholdClient, server_store: Store
) -> None:
    await huis_1.publish(telemetry(1, household="huis-2"))  # refused by the broker
    await huis_1.publish(telemetry(2))  # same connection, so it arrives after the first
    await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
    assert server_store.telemetry("huis-2") == []
    assert not server.metrics.rejected  # the server never saw the impersonation

    await server.send_limit("huis-2", community_limit(1000.0))
    own = await server.send_limit("huis-1", community_limit(2000.0))
    await huis_1.subscribe(huis_1.topic(Channel.LIMITS), "netbewust/v1/wijk-1/+/limits")
    await wait_until(lambda: len(huis_1.received) >= 1)
    await huis_1.publish(telemetry(3))  # round trip so any stray delivery has arrived
    await wait_until(lambda: server.metrics.stored["telemetry"] == 2)
    assert {decode(m.payload) for m in huis_1.received} == {own}


async def test_wrong_credentials_are_refused(
    members: dict[str, HouseholdCredentials], any_broker: AnyBroker, server_store: Store
) -> None:
    any_broker.reload(server_store)
    intruder = _client(any_broker, "huis-1", "guessed")
    assert (await intruder.connect()).is_failure
    await intruder.disconnect()
    impostor = CommunityServer(
        ServerConfig(mqtt=any_broker.mqtt_config(password="wrong")), server_store
    )
    with pytest.raises(BrokerError, match="refused"):
        await impostor.start()


async def test_reports_sent_while_the_server_is_down_arrive_after_restart(
    members: dict[str, HouseholdCredentials], any_broker: AnyBroker, server_store: Store
) -> None:
    any_broker.reload(server_store)
    first = community_server(any_broker, server_store)
    await first.start()  # creates the persistent session and its subscriptions
    await first.stop()
    household = _client(any_broker, "huis-1", members["huis-1"].password)
    await household.connect()
    for index in range(10):
        await household.publish(telemetry(index))
    await household.disconnect()
    second = community_server(any_broker, server_store)
    await second.start()
    try:
        await wait_until(lambda: second.metrics.stored["telemetry"] == 10)
    finally:
        await second.stop()
    assert len(server_store.telemetry("huis-1")) == 10


async def test_a_new_member_connects_after_the_broker_files_change(
    server: CommunityServer, any_broker: AnyBroker, server_store: Store
) -> None:
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    credentials = server_store.redeem_join_code(code, NOW, "huis-3")
    any_broker.reload(server_store)
    for _attempt in range(50):  # mosquitto applies a reload a moment after SIGHUP
        newcomer = _client(any_broker, "huis-3", credentials.password)
        refused = (await newcomer.connect()).is_failure
        if not refused:
            break
        await newcomer.disconnect()
    assert not refused
    try:
        await newcomer.publish(telemetry(1, "huis-3"))
        await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
    finally:
        await newcomer.disconnect()


async def test_nobody_takes_over_the_servers_session(
    members: dict[str, HouseholdCredentials], any_broker: AnyBroker, server_store: Store
) -> None:
    """Reports queued for the stopped server survive a member using the server's client id."""
    any_broker.reload(server_store)
    first = community_server(any_broker, server_store)
    await first.start()
    await first.stop()
    household = _client(any_broker, "huis-1", members["huis-1"].password)
    await household.connect()
    for index in range(20):
        await household.publish(telemetry(index))
    await household.disconnect()
    server_id = any_broker.mqtt_config().client_id
    for intruder_id in (server_id, "huis-1"):
        intruder = HouseholdClient(
            "wijk-1",
            "huis-2",
            any_broker.port,
            members["huis-2"].password,
            protocol=any_broker.protocol,
            client_id=intruder_id,
        )
        assert (await intruder.connect()).is_failure, intruder_id
        await intruder.disconnect()
    second = community_server(any_broker, server_store)
    await second.start()
    try:
        await wait_until(lambda: second.metrics.stored["telemetry"] == 20)
    finally:
        await second.stop()


async def test_nobody_takes_over_a_members_session(
    members: dict[str, HouseholdCredentials], any_broker: AnyBroker, server: CommunityServer
) -> None:
    """A command queued for an offline member still reaches it after another member (and a
    wrong password) tried its client id."""
    offline = HouseholdClient(
        "wijk-1",
        "huis-1",
        any_broker.port,
        members["huis-1"].password,
        protocol=any_broker.protocol,
        persistent=True,
    )
    assert not (await offline.connect()).is_failure
    await offline.subscribe(offline.topic(Channel.COMMAND))
    await offline.disconnect()
    sent = await server.send_command("huis-1", ReleaseCommand())
    attempts = [("huis-2", members["huis-2"].password), ("huis-1", "guessed")]
    for username, password in attempts:
        intruder = HouseholdClient(
            "wijk-1",
            "huis-1",
            any_broker.port,
            password,
            username=username,
            protocol=any_broker.protocol,
        )
        assert (await intruder.connect()).is_failure, username
        await intruder.disconnect()
    back = HouseholdClient(
        "wijk-1",
        "huis-1",
        any_broker.port,
        members["huis-1"].password,
        protocol=any_broker.protocol,
        persistent=True,
    )
    assert not (await back.connect()).is_failure
    try:
        await wait_until(lambda: len(back.received) == 1)
        assert decode(back.received[0].payload) == sent
    finally:
        await back.disconnect()


async def test_a_member_gets_access_at_once_and_loses_it_at_once(
    members: dict[str, HouseholdCredentials],
    any_broker: AnyBroker,
    server: CommunityServer,
    server_store: Store,
) -> None:
    """What a join and a removal do to the broker (`household_added` / `household_removed`)."""
    config = ServerConfig(mqtt=any_broker.mqtt_config(), mosquitto=any_broker.accounts_config())
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    credentials = server_store.redeem_join_code(code, NOW, "huis-3")
    await asyncio.to_thread(household_added, config, server_store, credentials)
    newcomer = _client(any_broker, "huis-3", credentials.password)
    assert not (await newcomer.connect()).is_failure  # no retry: the account is there
    await newcomer.publish(telemetry(1, "huis-3"))
    await wait_until(lambda: server.metrics.stored["telemetry"] == 1)

    assert server_store.remove_household("huis-3")
    await asyncio.to_thread(household_removed, config, server_store, "huis-3")
    await wait_until(lambda: not newcomer.client.is_connected())  # disconnected at once
    await newcomer.disconnect()
    again = _client(any_broker, "huis-3", credentials.password)
    assert (await again.connect()).is_failure
    await again.disconnect()
    huis_1 = _client(any_broker, "huis-1", members["huis-1"].password)
    assert not (await huis_1.connect()).is_failure  # the others keep their access
    await huis_1.publish(telemetry(3))
    await wait_until(lambda: server.metrics.stored["telemetry"] == 2)
    await huis_1.disconnect()
    assert server.metrics.stored["telemetry"] == 2  # huis-3's report after removal never came


async def test_an_account_change_waits_for_an_unreachable_broker(
    members: dict[str, HouseholdCredentials],
    broker: Broker,
    server_store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A join while mosquitto is down gets its account once mosquitto is back; a household
    removed before that gets none; creating an existing account again sets its password."""
    monkeypatch.setattr(mosquitto, "RETRY_INTERVAL_S", 0.05)
    config = ServerConfig(mqtt=broker.mqtt_config(), mosquitto=broker.accounts_config())
    joined = []
    for household in ("huis-3", "huis-4"):
        code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
        joined.append(server_store.redeem_join_code(code, NOW, household))
    broker.stop()
    for credentials in joined:
        await mosquitto.apply_when_reachable(household_added, config, server_store, credentials)
    assert server_store.remove_household("huis-4")
    await asyncio.sleep(0.2)  # a few refused attempts
    await asyncio.to_thread(broker.start)
    await wait_until(lambda: not mosquitto._RETRYING)
    newcomer = _client(broker, "huis-3", joined[0].password)
    assert not (await newcomer.connect()).is_failure
    await newcomer.disconnect()
    removed = _client(broker, "huis-4", joined[1].password)
    assert (await removed.connect()).is_failure
    await removed.disconnect()

    again = replace(joined[0], password="a-new-password")
    await asyncio.to_thread(household_added, config, server_store, again)
    stale = _client(broker, "huis-3", joined[0].password)
    assert (await stale.connect()).is_failure
    await stale.disconnect()
    renewed = _client(broker, "huis-3", "a-new-password")
    assert not (await renewed.connect()).is_failure
    await renewed.disconnect()
