"""Time entities: per charger, the departure time and the time by which the guaranteed
charge must be in (only when the entry has a planner)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.time import TimeEntityDescription

from .core.model import ChargerSpec
from .planner_entities import EvTime

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .runtime import NetbewustConfigEntry

PARALLEL_UPDATES = 0
FIELDS = {"ev_departure": "departure", "ev_guaranteed_by": "guaranteed_by"}


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
                EvTime(
                    runtime,
                    planner,
                    TimeEntityDescription(key=key, translation_key=key),
                    subentry,
                    field,
                )
                for key, field in FIELDS.items()
            ],
            config_subentry_id=device_id,
        )


def _description(key: str) -> TimeEntityDescription:
    return TimeEntityDescription(key=key, translation_key=key)
