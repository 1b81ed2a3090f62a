"""Base entity: one device per connection, one per device subentry, pushed by the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import DOMAIN

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigSubentry

    from .guard.runtime import NetbewustRuntime

MANUFACTURER = "Netbewust"


def connection_device_info(entry_id: str, title: str) -> DeviceInfo:
    """The connection's own device; each device subentry's device hangs below it."""
    return DeviceInfo(
        identifiers={(DOMAIN, entry_id)},
        name=title,
        manufacturer=MANUFACTURER,
        model="Grid guard",
        entry_type=DeviceEntryType.SERVICE,
    )


class NetbewustEntity(Entity):
    """Updated by the runtime after each decision; never polled."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _written: tuple[Any, Any] | None = None

    def __init__(
        self,
        runtime: NetbewustRuntime,
        description: EntityDescription,
        subentry: ConfigSubentry | None = None,
    ) -> None:
        self.runtime = runtime
        self.entity_description = description
        entry = runtime.entry
        if subentry is None:
            self._attr_unique_id = f"{entry.entry_id}_{description.key}"
            self._attr_device_info = connection_device_info(entry.entry_id, entry.title)
        else:
            self._attr_unique_id = f"{subentry.subentry_id}_{description.key}"
            self._attr_device_info = DeviceInfo(
                identifiers={(DOMAIN, subentry.subentry_id)},
                name=subentry.title,
                manufacturer=MANUFACTURER,
                model=subentry.subentry_type,
                entry_type=DeviceEntryType.SERVICE,
                via_device_id=runtime.connection_device_id,
            )

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.runtime.async_add_listener(self._handle_runtime_update))

    @callback
    def _handle_runtime_update(self) -> None:
        # Decisions come with every meter update; most entities change far less often.
        snapshot = (self.state, self.extra_state_attributes)
        if snapshot != self._written:
            self._written = snapshot
            self.async_write_ha_state()
