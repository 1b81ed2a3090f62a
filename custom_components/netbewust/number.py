"""Number entities: per charger, the energy to add before departure and the part of it
guaranteed by a chosen time (only when the entry has a planner)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.number import NumberEntityDescription

from .planner.entities import EvEnergy, async_add_ev_settings

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
