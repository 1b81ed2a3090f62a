"""Set up and unload a community membership entry (a second kind of entry in the domain)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.exceptions import ConfigEntryError, ConfigEntryNotReady

from ..const import DOMAIN
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
from .runtime import CommunityRuntime

if TYPE_CHECKING:
    from collections.abc import Mapping

    from homeassistant.config_entries import ConfigEntry
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


async def async_setup_community_entry(hass: HomeAssistant, entry: ConfigEntry[Any]) -> bool:
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
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="invalid_config",
            translation_placeholders={"error": f"missing {err}"},
        ) from err
    runtime = CommunityRuntime(hass, entry, membership, connection.entry_id)
    entry.runtime_data = runtime
    await hass.config_entries.async_forward_entry_setups(entry, COMMUNITY_PLATFORMS)
    await runtime.async_start()
    return True


async def async_unload_community_entry(hass: HomeAssistant, entry: ConfigEntry[Any]) -> bool:
    unloaded = await hass.config_entries.async_unload_platforms(entry, COMMUNITY_PLATFORMS)
    if unloaded:
        runtime: CommunityRuntime = entry.runtime_data
        await runtime.async_stop()
    return unloaded
