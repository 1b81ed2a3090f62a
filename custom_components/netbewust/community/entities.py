"""Entities of a membership: connection state, the community limit now and next, and
the participation switch (pausing drops community limits; the fuse guard never pauses)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import STATE_OFF, UnitOfPower
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.restore_state import RestoreEntity

from ..const import DOMAIN
from ..entity import MANUFACTURER, NetbewustEntity
from .const import (
    CONF_CA_CERT,
    CONF_EAN,
    CONF_HOUSEHOLD,
    CONF_JOIN_CODE,
    CONF_MQTT_CLIENT_ID,
    CONF_MQTT_HOST,
    CONF_MQTT_PASSWORD,
    CONF_MQTT_USERNAME,
    CONF_SERVER_ID,
    CONF_SERVER_URL,
)
from .runtime import CommunityConfigEntry, CommunityRuntime, CommunityState

if TYPE_CHECKING:
    from homeassistant.helpers.entity import EntityDescription
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from ..core.limits import LimitInterval

STATE = SensorEntityDescription(
    key="community_state",
    translation_key="community_state",
    device_class=SensorDeviceClass.ENUM,
    options=[state.value for state in CommunityState],
)
LIMIT_NOW = SensorEntityDescription(
    key="community_limit_now",
    translation_key="community_limit_now",
    device_class=SensorDeviceClass.POWER,
    state_class=SensorStateClass.MEASUREMENT,
    native_unit_of_measurement=UnitOfPower.WATT,
)
LIMIT_NEXT = SensorEntityDescription(
    key="community_limit_next",
    translation_key="community_limit_next",
    device_class=SensorDeviceClass.POWER,
    native_unit_of_measurement=UnitOfPower.WATT,
)
PARTICIPATION = SwitchEntityDescription(key="participation", translation_key="participation")

# Credentials, where the server is, and what identifies the household or its connection;
# the community's name, the tariff class and the live state stay readable.
MEMBERSHIP_TO_REDACT = {
    "title",  # names the connection, as the household chose it
    CONF_SERVER_URL,
    CONF_SERVER_ID,
    CONF_JOIN_CODE,
    CONF_MQTT_HOST,
    CONF_MQTT_USERNAME,
    CONF_MQTT_PASSWORD,
    CONF_MQTT_CLIENT_ID,
    CONF_CA_CERT,
    CONF_HOUSEHOLD,
    CONF_EAN,
}


def add_community_sensors(entry: CommunityConfigEntry, add: AddConfigEntryEntitiesCallback) -> None:
    runtime = entry.runtime_data
    add(
        [
            StateSensor(runtime, STATE),
            LimitNowSensor(runtime, LIMIT_NOW),
            LimitNextSensor(runtime, LIMIT_NEXT),
        ]
    )


def add_community_switches(
    entry: CommunityConfigEntry, add: AddConfigEntryEntitiesCallback
) -> None:
    add([ParticipationSwitch(entry.runtime_data, PARTICIPATION)])


class CommunityEntity(NetbewustEntity):
    """An entity of the membership's own device, pushed by its runtime."""

    def __init__(self, runtime: CommunityRuntime, description: EntityDescription) -> None:
        self.runtime = runtime
        entry = runtime.entry
        super().__init__(
            description,
            unique_id=f"{entry.entry_id}_{description.key}",
            device_info=DeviceInfo(
                identifiers={(DOMAIN, entry.entry_id)},
                name=entry.title,
                manufacturer=MANUFACTURER,
                entry_type=DeviceEntryType.SERVICE,
            ),
            updates=(runtime.updates,),
        )


class StateSensor(CommunityEntity, SensorEntity):
    @property
    def native_value(self) -> str:
        return self.runtime.state.value


def _import_cap(interval: LimitInterval | None) -> float | None:
    return None if interval is None else interval.max_import_w


class LimitNowSensor(CommunityEntity, SensorEntity):
    """The community's import cap now; unknown when none is in force."""

    @property
    def native_value(self) -> float | None:
        return _import_cap(self.runtime.interval_now())

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        interval = self.runtime.interval_now()
        return {
            "max_export_w": interval.max_export_w if interval else None,
            "until": interval.end.isoformat() if interval else None,
        }


class LimitNextSensor(CommunityEntity, SensorEntity):
    """The next planned import cap; its start is an attribute."""

    @property
    def native_value(self) -> float | None:
        return _import_cap(self.runtime.interval_next())

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        interval = self.runtime.interval_next()
        return {
            "max_export_w": interval.max_export_w if interval else None,
            "starts_at": interval.start.isoformat() if interval else None,
        }


class ParticipationSwitch(CommunityEntity, SwitchEntity, RestoreEntity):
    """On: community limits apply. Off: paused; the fuse guard keeps protecting."""

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and last.state == STATE_OFF:
            self.runtime.async_set_participating(False)

    @property
    def is_on(self) -> bool:
        return self.runtime.participating

    async def async_turn_on(self, **kwargs: Any) -> None:
        self.runtime.async_set_participating(True)
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self.runtime.async_set_participating(False)
        self.async_write_ha_state()


def community_diagnostics(entry: CommunityConfigEntry) -> dict[str, Any]:
    """A membership's entry data and live state, redacted (see MEMBERSHIP_TO_REDACT)."""
    return async_redact_data(
        {"title": entry.title, "data": dict(entry.data), "runtime": entry.runtime_data.as_dict()},
        MEMBERSHIP_TO_REDACT,
    )
