"""Emergency commands and their release, telemetry, and living next to the connection entry."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)

from custom_components.netbewust.community.const import (
    CONF_HOUSEHOLD,
    CONF_MQTT_HOST,
    CONF_MQTT_PASSWORD,
    CONF_MQTT_USERNAME,
)
from custom_components.netbewust.community.entities import MEMBERSHIP_TO_REDACT
from custom_components.netbewust.const import DOMAIN
from custom_components.netbewust.core.limits import LimitSource
from netbewust_core.protocol.messages import (
    EmergencyCommand,
    EmergencyLevel,
    EmergencyReason,
    ReleaseCommand,
)
from tests.clock import clock_now
from tests.server.household_client import wait_until

from ..conftest import set_meter
from .conftest import Community, guard_of, join

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.typing import ClientSessionGenerator


def emergency(level: EmergencyLevel, max_import_w: float | None) -> EmergencyCommand:
    now = clock_now()
    return EmergencyCommand(
        level=level,
        reason=EmergencyReason.TRANSFORMER_OVERLOAD,
        starts_at=now - timedelta(seconds=1),
        expires_at=now + timedelta(minutes=10),
        max_import_w=max_import_w,
    )


def emergency_cap_a(hass: HomeAssistant, connection: ConfigEntry) -> float | None:
    set_meter(hass, 1000)
    decision = guard_of(connection).last_decision
    if decision is None or decision.limit_source is not LimitSource.EMERGENCY:
        return None
    return decision.phase_limit_a[0]


async def test_emergencies_curtail_and_are_released(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    guard = guard_of(connection)

    curtail = await community.server.send_command(
        household, emergency(EmergencyLevel.CURTAIL, 1150.0)
    )
    await wait_until(lambda: emergency_cap_a(hass, connection) is not None)
    cap = emergency_cap_a(hass, connection)
    assert cap is not None
    assert cap <= 5.0
    assert not guard.emergency_active  # a curtailment caps; it does not switch all off

    critical = await community.server.send_command(
        household, emergency(EmergencyLevel.CRITICAL, 1150.0)
    )
    await wait_until(lambda: guard.emergency_active)
    assert (guard.emergency_reason or "").startswith("community")

    release = await community.server.send_command(household, ReleaseCommand(releases=None))
    await wait_until(lambda: not guard.emergency_active)
    await wait_until(lambda: emergency_cap_a(hass, connection) is None)
    ids = [message.message_id for message in (curtail, critical, release)]
    await wait_until(lambda: all(community.store.acks_for(ref) for ref in ids))
    assert [community.store.acks_for(ref)[0].ack.status for ref in ids] == ["applied"] * 3
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_an_expired_command_is_acknowledged_as_expired_and_not_applied(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    now = clock_now()
    stale = EmergencyCommand(
        level=EmergencyLevel.CRITICAL,
        reason=EmergencyReason.TEST,
        starts_at=now - timedelta(minutes=10),
        expires_at=now - timedelta(minutes=5),
        max_import_w=0.0,
    )
    message = await community.server.send_command(entry.data[CONF_HOUSEHOLD], stale)
    await wait_until(lambda: bool(community.store.acks_for(message.message_id)))
    assert community.store.acks_for(message.message_id)[0].ack.status == "expired"
    assert not guard_of(connection).emergency_active
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_telemetry_is_the_mean_over_ten_seconds(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    start = clock_now()
    for second, import_w in enumerate((1000, 1000, 1000, 1000, 1000, 2000, 2000, 2000, 2000, 2000)):
        set_meter(hass, import_w)
        async_fire_time_changed(hass, start + timedelta(seconds=second + 1))
        await hass.async_block_till_done()
    await wait_until(lambda: bool(community.store.telemetry(household)))
    [report] = community.store.telemetry(household)
    assert report.telemetry.power_w == (1500.0,)
    assert report.telemetry.participating
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_connection_actions_ignore_the_membership(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    # Without an entry id the emergency action reaches every connection, not the membership.
    await hass.services.async_call(
        DOMAIN, "set_emergency", {"active": True, "reason": "test"}, blocking=True
    )
    assert guard_of(connection).emergency_active
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_membership_diagnostics_hide_credentials_addresses_and_identities(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    community: Community,
    connection: MockConfigEntry,
) -> None:
    entry = await join(hass, community, connection)
    result = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    secret = {key: entry.data[key] for key in MEMBERSHIP_TO_REDACT if entry.data.get(key)}
    # The join stored every one of these; each is redacted, its value nowhere in the output.
    assert {CONF_MQTT_PASSWORD, CONF_MQTT_USERNAME, CONF_MQTT_HOST, CONF_HOUSEHOLD} <= set(secret)
    assert {key: result["data"][key] for key in secret} == dict.fromkeys(secret, "**REDACTED**")
    assert [key for key, value in secret.items() if str(value) in str(result)] == []
    assert result["title"] == "**REDACTED**"
    assert result["runtime"]["household"] == "**REDACTED**"
    # What helps to diagnose stays.
    assert result["data"]["community"] == entry.data["community"]
    assert result["runtime"]["state"] == "connected"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_release_never_ends_the_households_own_emergency(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    guard = guard_of(connection)
    guard.async_set_emergency(True, "storm")
    critical = await community.server.send_command(
        household, emergency(EmergencyLevel.CRITICAL, 1150.0)
    )
    release = await community.server.send_command(household, ReleaseCommand(releases=None))
    await wait_until(lambda: bool(community.store.acks_for(release.message_id)))
    assert community.store.acks_for(critical.message_id)[0].ack.status == "applied"
    assert guard.emergency_reason == "storm"
    assert await hass.config_entries.async_unload(entry.entry_id)
