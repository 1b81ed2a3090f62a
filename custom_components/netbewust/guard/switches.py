"""Which on/off switches the guard turned off itself: the only ones it turns back on.

A switchable load (or an on/off inverter) the user switched off stays off: releasing a
device means undoing the guard's own switch-off, never overriding the user. The record
survives reloads and restarts, so a device the guard held off is still released later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store

from ..const import DOMAIN
from .actuators import switch_wanted

if TYPE_CHECKING:
    from ..core.model import Setpoint
    from .actuators import Command
    from .devices import DeviceBinding

STORE_VERSION = 1
SAVE_DELAY_S = 1.0


class GuardSwitches:
    """The switches the guard holds off, per connection."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._store: Store[list[str]] = Store(
            hass, STORE_VERSION, f"{DOMAIN}.switched_off_{entry_id}"
        )
        self.held_off: set[str] = set()

    async def async_load(self) -> None:
        stored = await self._store.async_load()
        if isinstance(stored, list):
            self.held_off = {item for item in stored if isinstance(item, str)}

    @callback
    def filter(
        self, binding: DeviceBinding, setpoint: Setpoint, commands: tuple[Command, ...]
    ) -> tuple[Command, ...]:
        """`commands` without switching on what the guard did not switch off."""
        entity_id = binding.switch_entity
        wanted = switch_wanted(binding, setpoint)
        if entity_id is None or wanted is None:
            return commands
        ours = tuple(c for c in commands if c.entity_id == entity_id)
        if not wanted:
            if ours:  # it was on: the guard switches it off, and will switch it back on
                self._record(self.held_off | {entity_id})
            return commands
        allowed = entity_id in self.held_off
        self._record(self.held_off - {entity_id})
        return commands if allowed else tuple(c for c in commands if c not in ours)

    def _record(self, held_off: set[str]) -> None:
        if held_off != self.held_off:
            self.held_off = held_off
            self._store.async_delay_save(lambda: sorted(self.held_off), SAVE_DELAY_S)
