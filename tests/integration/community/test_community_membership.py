"""Joining a community from the UI and obeying its limits, against a real server and mosquitto."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from homeassistant.config_entries import ConfigEntryState
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.netbewust.community.const import CONF_HOUSEHOLD, is_community_entry
from custom_components.netbewust.community.runtime import CommunityState
from custom_components.netbewust.core.limits import LimitSource
from netbewust_core.protocol.messages import Channel, LimitUpdate, Message, encode
from tests.clock import clock_now
from tests.server.conftest import SERVER_ACCOUNT
from tests.server.household_client import HouseholdClient, wait_until

from ..conftest import set_meter, state_value
from .conftest import (
    COMMUNITY,
    Community,
    community_limit,
    guard_of,
    join,
    membership,
)

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry


STATE_SENSOR = "sensor.wijk_1_home_community"
LIMIT_NOW_SENSOR = "sensor.wijk_1_home_community_limit"


def community_cap_a(hass: HomeAssistant, connection: ConfigEntry) -> float | None:
    """The guard's community cap on L1, with a fresh meter reading (a stale one is safe mode)."""
    set_meter(hass, 1000)
    decision = guard_of(connection).last_decision
    if decision is None or decision.limit_source is not LimitSource.COMMUNITY:
        return None
    return decision.phase_limit_a[0]


async def test_join_then_a_limit_is_obeyed_and_acknowledged(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    assert is_community_entry(entry.data)
    household = entry.data[CONF_HOUSEHOLD]
    assert entry.unique_id == f"{COMMUNITY}/{household}"
    # Capabilities arrive with the connection's size.
    await wait_until(
        lambda: (
            (h := community.store.household(household)) is not None and h.capabilities is not None
        )
    )
    stored = community.store.household(household)
    assert stored is not None
    assert stored.capabilities is not None
    assert (stored.capabilities.phases, stored.capabilities.fuse_current_a) == (1, 25.0)

    message = await community.server.send_limit(
        household, community_limit(2300.0, timedelta(minutes=15))
    )
    # 2300 W on one phase at 230 V: the guard holds 10 A (the fuse alone allows 24 A).
    await wait_until(lambda: community_cap_a(hass, connection) is not None)
    cap = community_cap_a(hass, connection)
    assert cap is not None
    assert cap <= 10.0
    await wait_until(lambda: bool(community.store.acks_for(message.message_id)))
    [ack] = community.store.acks_for(message.message_id)
    assert ack.ack.status == "applied"
    await hass.async_block_till_done()
    assert state_value(hass, STATE_SENSOR) == CommunityState.CONNECTED
    assert float(state_value(hass, LIMIT_NOW_SENSOR)) == 2300.0

    # Paused: the community cap leaves the guard, the fuse cap stays.
    await hass.services.async_call(
        "switch",
        "turn_off",
        {"entity_id": "switch.wijk_1_home_community_participation"},
        blocking=True,
    )
    await wait_until(lambda: community_cap_a(hass, connection) is None)
    assert state_value(hass, STATE_SENSOR) == CommunityState.PAUSED
    assert guard_of(connection).last_decision is not None

    runtime = membership(entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not runtime.link.is_connected


async def test_malformed_and_foreign_messages_are_rejected_and_logged(
    hass: HomeAssistant,
    community: Community,
    connection: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    server_side = HouseholdClient(
        COMMUNITY,
        household,
        community.broker.port,
        SERVER_ACCOUNT.password,
        username=SERVER_ACCOUNT.username,
        # Not the household's client id, which the broker binds to the household.
        client_id="server-side-test",
    )
    await server_side.connect()
    try:
        caplog.set_level(logging.WARNING)
        topic = server_side.topic(Channel.LIMITS)
        await server_side.publish_raw(topic, b"{not json")
        await server_side.publish_raw(topic, b'{"v": 2, "id": "abc"}')
        # A valid limit of another household, on this household's topic.
        await server_side.publish_raw(topic, _foreign_limit_payload())
        await wait_until(lambda: membership(entry).rejected == 3)
    finally:
        await server_side.disconnect()
    assert community_cap_a(hass, connection) is None
    assert caplog.text.count("Rejected a community message") == 3
    assert "version 2 is not supported" in caplog.text
    # One with a readable id is answered with a rejection the server stores.
    await wait_until(lambda: bool(community.store.acks_for("abc")))
    assert community.store.acks_for("abc")[0].ack.status == "rejected"
    assert await hass.config_entries.async_unload(entry.entry_id)


def _foreign_limit_payload() -> bytes:
    """A valid limit, but addressed to another household."""
    limit = community_limit(1000.0, timedelta(minutes=5))
    message = Message(
        community=COMMUNITY,
        household="hh-other",
        sent_at=clock_now(),
        body=LimitUpdate(limit=limit),
    )
    return encode(message)


async def test_broker_gone_means_local_only_by_the_expiry_then_it_resynchronises(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    runtime = membership(entry)
    await community.server.send_limit(household, community_limit(2300.0, timedelta(seconds=4)))
    await wait_until(lambda: community_cap_a(hass, connection) is not None)

    community.broker.process.terminate()
    community.broker.process.wait()
    await wait_until(lambda: runtime.state is CommunityState.OFFLINE)
    # Still honoured until it expires, then the guard is back to the fuse alone.
    await wait_until(lambda: runtime.state is CommunityState.LOCAL_ONLY)
    await wait_until(lambda: community_cap_a(hass, connection) is None)
    await wait_until(lambda: state_value(hass, STATE_SENSOR) == CommunityState.LOCAL_ONLY)

    restarted = community.restart_broker()
    try:
        await wait_until(lambda: runtime.link_up, timeout_s=40)
        await wait_until(lambda: community.server.is_connected, timeout_s=40)
        message = await community.server.send_limit(
            household, community_limit(3450.0, timedelta(minutes=15))
        )
        await wait_until(lambda: community_cap_a(hass, connection) is not None)
        assert runtime.state is CommunityState.CONNECTED
        await wait_until(lambda: bool(community.store.acks_for(message.message_id)))
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        restarted.terminate()
        restarted.wait()


async def test_an_unreachable_broker_at_setup_is_retried_while_the_home_keeps_its_caps(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    await community.server.send_limit(household, community_limit(2300.0, timedelta(seconds=20)))
    await wait_until(lambda: community_cap_a(hass, connection) is not None)

    community.broker.process.terminate()
    community.broker.process.wait()
    assert not await hass.config_entries.async_reload(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "cannot be reached" in str(entry.reason)
    # The home runs on with the cap it holds (2300 W = 10 A), until the cap's expiry.
    assert connection.state is ConfigEntryState.LOADED
    assert community_cap_a(hass, connection) == pytest.approx(10.0)
    await wait_until(lambda: community_cap_a(hass, connection) is None, timeout_s=40)

    restarted = community.restart_broker()
    try:
        async_fire_time_changed(hass, clock_now() + timedelta(minutes=2))  # Home Assistant's retry
        await wait_until(lambda: entry.state is ConfigEntryState.LOADED, timeout_s=40)
        await wait_until(lambda: membership(entry).link_up)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        restarted.terminate()
        restarted.wait()


async def test_a_removed_membership_lifts_its_cap_at_once(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    await community.server.send_limit(household, community_limit(2300.0, timedelta(minutes=15)))
    await wait_until(lambda: community_cap_a(hass, connection) is not None)
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    # Lifted now, not at the cap's expiry 15 minutes on (a meter update or two to decide).
    await wait_until(lambda: community_cap_a(hass, connection) is None, timeout_s=2)
