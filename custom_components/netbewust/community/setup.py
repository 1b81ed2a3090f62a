"""Set up and unload a community membership entry (a second kind of entry in the domain)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryError,
    ConfigEntryNotReady,
)

from ..const import DOMAIN
from ..core.protocol.session import COMMUNITY_SLOTS
from ..guard.entry_config import invalid_config
from ..guard.runtime import NetbewustRuntime
from .const import (
    CONF_CA_CERT,
    CONF_COMMUNITY,
    CONF_CONNECTION_ENTRY,
    CONF_HOUSEHOLD,
    CONF_MQTT_CLIENT_ID,
    CONF_MQTT_HOST,
    CONF_MQTT_PASSWORD,
    CONF_MQTT_PORT,
    CONF_MQTT_TLS,
    CONF_MQTT_USERNAME,
)
from .join import Membership, MqttSettings
from .runtime import CommunityConfigEntry, CommunityRuntime

if TYPE_CHECKING:
    from collections.abc import Mapping

    from homeassistant.core import HomeAssistant

COMMUNITY_PLATFORMS = [Platform.SENSOR, Platform.SWITCH]


def membership_data(membership: Membership) -> dict[str, Any]:
    """Entry data for a membership (the connection and server URL are added by the flow)."""
    mqtt = membership.mqtt
    return {
        CONF_COMMUNITY: membership.community,
        CONF_HOUSEHOLD: membership.household,
        CONF_MQTT_HOST: mqtt.host,
        CONF_MQTT_PORT: mqtt.port,
        CONF_MQTT_TLS: mqtt.tls,
        CONF_MQTT_CLIENT_ID: mqtt.client_id,
        CONF_MQTT_USERNAME: mqtt.username,
        CONF_MQTT_PASSWORD: mqtt.password,
        CONF_CA_CERT: mqtt.ca_pem,
    }


def membership_from_data(data: Mapping[str, Any]) -> Membership:
    return Membership(
        community=data[CONF_COMMUNITY],
        household=data[CONF_HOUSEHOLD],
        mqtt=MqttSettings(
            host=data[CONF_MQTT_HOST],
            port=data[CONF_MQTT_PORT],
            tls=data[CONF_MQTT_TLS],
            client_id=data[CONF_MQTT_CLIENT_ID],
            username=data[CONF_MQTT_USERNAME],
            password=data[CONF_MQTT_PASSWORD],
            ca_pem=data.get(CONF_CA_CERT),
        ),
    )


async def async_setup_community_entry(hass: HomeAssistant, entry: CommunityConfigEntry) -> bool:
    """Start the membership once the connection it steers is running."""
    connection = hass.config_entries.async_get_entry(entry.data[CONF_CONNECTION_ENTRY])
    if connection is None:
        raise ConfigEntryError(translation_domain=DOMAIN, translation_key="community_no_connection")
    if connection.state is not ConfigEntryState.LOADED:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="community_connection_not_loaded",
            translation_placeholders={"connection": connection.title},
        )
    try:
        membership = membership_from_data(entry.data)
    except KeyError as err:
        raise invalid_config(entry.title, ValueError(f"missing {err}")) from err
    runtime = CommunityRuntime(hass, entry, membership, connection.entry_id)
    entry.runtime_data = runtime
    # The broker first: Home Assistant retries a membership it cannot reach, while the
    # connection's guard runs on (community limits it holds lapse at their expiry).
    if not await runtime.async_connect():
        await runtime.async_stop()
        if runtime.auth_failed:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="community_auth_failed"
            )
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="community_broker_unreachable",
            translation_placeholders={"broker": f"{membership.mqtt.host}:{membership.mqtt.port}"},
        )
    await hass.config_entries.async_forward_entry_setups(entry, COMMUNITY_PLATFORMS)
    runtime.async_start()
    return True


async def async_unload_community_entry(hass: HomeAssistant, entry: CommunityConfigEntry) -> bool:
    unloaded = await hass.config_entries.async_unload_platforms(entry, COMMUNITY_PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_stop()
    return unloaded


async def async_remove_community_entry(hass: HomeAssistant, entry: CommunityConfigEntry) -> None:
    """A removed membership lifts its caps from the guard at once; a stopped one leaves
    them to lapse at their expiry."""
    connection = hass.config_entries.async_get_entry(entry.data.get(CONF_CONNECTION_ENTRY, ""))
    if connection is None or connection.state is not ConfigEntryState.LOADED:
        return
    runtime = connection.runtime_data
    if isinstance(runtime, NetbewustRuntime):
        for source in COMMUNITY_SLOTS:
            runtime.async_set_external_limit(source, None)
