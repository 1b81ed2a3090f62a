"""Time entities: per charger, the departure time and the time by which the guaranteed
charge must be in; per thermally planned heat pump, the night set-back's start and end and
the end of "comfort now" (only when the entry has a planner)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.time import TimeEntityDescription

from .planner.entities import EvTime, async_add_ev_settings
from .planner.heat_pump_entities import thermal_entities

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .guard.runtime import NetbewustConfigEntry

PARALLEL_UPDATES = 0
FIELDS = {"ev_departure": "departure", "ev_guaranteed_by": "guaranteed_by"}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NetbewustConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_ev_settings(entry, async_add_entities, EvTime, TimeEntityDescription, FIELDS)
    for subentry_id, entity in thermal_entities(entry, "time"):
        async_add_entities([entity], config_subentry_id=subentry_id)
