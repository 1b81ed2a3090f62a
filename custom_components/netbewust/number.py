"""Number entities: per charger, the energy to add before departure and the part of it
guaranteed by a chosen time (only when the entry has a planner)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.number import NumberEntityDescription

from .core.model import ChargerSpec
from .planner_entities import EvEnergy

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .runtime import NetbewustConfigEntry

PARALLEL_UPDATES = 0
FIELDS = {"ev_energy": "energy_kwh", "ev_guaranteed_energy": "guaranteed_kwh"}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NetbewustConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    runtime = entry.runtime_data
    if (planner := runtime.planner) is None:
        return
    for device_id, binding in runtime.devices.items():
        if not isinstance(binding.spec, ChargerSpec):
            continue
        subentry = entry.subentries[device_id]
        async_add_entities(
            [
                EvEnergy(
                    runtime,
                    planner,
                    NumberEntityDescription(key=key, translation_key=key),
                    subentry,
                    field,
                )
                for key, field in FIELDS.items()
            ],
            config_subentry_id=device_id,
        )


def _description(key: str) -> NumberEntityDescription:
    return NumberEntityDescription(key=key, translation_key=key)
