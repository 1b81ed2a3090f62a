"""Binary sensors: an emergency in force, and an overload nothing controllable can solve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass

from .entity import ConnectionEntity

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .guard.runtime import NetbewustConfigEntry, NetbewustRuntime

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class NetbewustBinarySensorDescription(BinarySensorEntityDescription):
    is_on_fn: Callable[[NetbewustRuntime], bool]
    attributes_fn: Callable[[NetbewustRuntime], dict[str, Any]] | None = None


DESCRIPTIONS = (
    NetbewustBinarySensorDescription(
        key="emergency",
        translation_key="emergency",
        device_class=BinarySensorDeviceClass.SAFETY,
        is_on_fn=lambda runtime: runtime.emergency_active,
        attributes_fn=lambda runtime: {"reason": runtime.emergency_reason},
    ),
    NetbewustBinarySensorDescription(
        key="unresolved_overload",
        translation_key="unresolved_overload",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=lambda runtime: bool(
            runtime.last_decision and runtime.last_decision.unresolved_overload
        ),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NetbewustConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_entities(
        NetbewustBinarySensor(entry.runtime_data, description) for description in DESCRIPTIONS
    )


class NetbewustBinarySensor(ConnectionEntity, BinarySensorEntity):
    entity_description: NetbewustBinarySensorDescription

    @property
    def is_on(self) -> bool:
        return self.entity_description.is_on_fn(self.runtime)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        attributes_fn = self.entity_description.attributes_fn
        return attributes_fn(self.runtime) if attributes_fn else None
