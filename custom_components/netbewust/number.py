"""Number entities: per charger, the energy to add before departure and the part of it
guaranteed by a chosen time; per thermally planned heat pump, its comfort band and pause
duration (only when the entry has a planner)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.number import NumberEntityDescription

from .planner.entities import EvEnergy, async_add_ev_settings
from .planner.heat_pump_entities import thermal_entities

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .guard.runtime import NetbewustConfigEntry

PARALLEL_UPDATES = 0
FIELDS = {"ev_energy": "energy_kwh", "ev_guaranteed_energy": "guaranteed_kwh"}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NetbewustConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_ev_settings(entry, async_add_entities, EvEnergy, NumberEntityDescription, FIELDS)
    for subentry_id, entity in thermal_entities(entry, "number"):
        async_add_entities([entity], config_subentry_id=subentry_id)
