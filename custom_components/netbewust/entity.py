"""The one base entity, and the one way runtimes push updates to entities.

Every runtime (the guard, the planner, a membership, the Modbus poller) owns an `Updates`
and calls `notify()` after each change; entities, and runtimes that follow another one,
listen to it. Nothing is polled by Home Assistant. Entities write their state only when
what Home Assistant would show changed: decisions come with every meter update and Modbus
polls every second, while most entities change far less often.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.core import CALLBACK_TYPE, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import DOMAIN

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigSubentry

    from .core.model import Connection
    from .guard.runtime import NetbewustRuntime

MANUFACTURER = "Netbewust"


class Updates:
    """Listeners of one runtime, called in the event loop after each change it makes."""

    def __init__(self) -> None:
        self._listeners: list[CALLBACK_TYPE] = []

    @callback
    def add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` after every change; returns the function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def notify(self) -> None:
        for listener in tuple(self._listeners):
            listener()


def connection_device_info(entry_id: str, title: str, connection: Connection) -> DeviceInfo:
    """The connection's own device; each device subentry's device hangs below it.

    Home Assistant does not translate a device's model, so it is the connection's rating
    ("3x25 A"), which reads the same in every language; device subentries' service
    devices have none (a Modbus device shows its own product's model).
    """
    return DeviceInfo(
        identifiers={(DOMAIN, entry_id)},
        name=title,
        manufacturer=MANUFACTURER,
        model=f"{connection.phases}x{connection.fuse_current_a:g} A",
        entry_type=DeviceEntryType.SERVICE,
    )


class NetbewustEntity(Entity):
    """Pushed by the runtimes it listens to; written only when its shown state changed."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self,
        description: EntityDescription,
        *,
        unique_id: str,
        device_info: DeviceInfo,
        updates: tuple[Updates, ...],
    ) -> None:
        self.entity_description = description
        self._attr_unique_id = unique_id
        self._attr_device_info = device_info
        self._updates = updates
        self._written: tuple[bool, Any, Any] | None = None

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        for updates in self._updates:
            self.async_on_remove(updates.add_listener(self._handle_update))

    @callback
    def _handle_update(self) -> None:
        shown = (self.available, self.state, self.extra_state_attributes)
        if shown != self._written:
            self._written = shown
            self.async_write_ha_state()


class ConnectionEntity(NetbewustEntity):
    """An entity of the connection's device or of one of its device subentries."""

    def __init__(
        self,
        runtime: NetbewustRuntime,
        description: EntityDescription,
        subentry: ConfigSubentry | None = None,
        *more_updates: Updates,
    ) -> None:
        self.runtime = runtime
        entry = runtime.entry
        if subentry is None:
            unique_id = f"{entry.entry_id}_{description.key}"
            device_info = connection_device_info(
                entry.entry_id, entry.title, runtime.config.guard.connection
            )
        else:
            unique_id = f"{subentry.subentry_id}_{description.key}"
            device_info = DeviceInfo(
                identifiers={(DOMAIN, subentry.subentry_id)},
                name=subentry.title,
                manufacturer=MANUFACTURER,
                entry_type=DeviceEntryType.SERVICE,
                via_device_id=runtime.connection_device_id,
            )
        super().__init__(
            description,
            unique_id=unique_id,
            device_info=device_info,
            updates=(runtime.updates, *more_updates),
        )
