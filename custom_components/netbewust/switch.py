"""Switches: optimisation on/off for the connection, "charge now" per charger, and per
thermally planned heat pump "pause steering" and "comfort now".

Neither can switch off the fuse protection: the guard keeps enforcing the limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import STATE_ON, EntityCategory
from homeassistant.helpers.restore_state import RestoreEntity

from .community.entities import add_community_switches
from .community.runtime import is_membership_entry
from .const import SUBENTRY_CHARGER
from .entity import ConnectionEntity
from .planner.heat_pump_entities import thermal_entities

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigSubentry
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .community.runtime import AnyNetbewustEntry
    from .guard.runtime import NetbewustRuntime

PARALLEL_UPDATES = 0

OPTIMISATION = SwitchEntityDescription(
    key="optimisation", translation_key="optimisation", entity_category=EntityCategory.CONFIG
)
CHARGE_NOW = SwitchEntityDescription(key="charge_now", translation_key="charge_now")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AnyNetbewustEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    if is_membership_entry(entry):
        add_community_switches(entry, async_add_entities)
        return
    runtime = entry.runtime_data
    async_add_entities([OptimisationSwitch(runtime, OPTIMISATION)])
    for subentry in entry.subentries.values():
        if subentry.subentry_type == SUBENTRY_CHARGER and subentry.subentry_id in runtime.devices:
            async_add_entities(
                [ChargeNowSwitch(runtime, CHARGE_NOW, subentry)],
                config_subentry_id=subentry.subentry_id,
            )
    for subentry_id, entity in thermal_entities(entry, "switch"):
        async_add_entities([entity], config_subentry_id=subentry_id)


class OptimisationSwitch(ConnectionEntity, SwitchEntity, RestoreEntity):
    """On: the planner may steer devices. Off: only the limits and the fuse count."""

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and last.state != STATE_ON:
            self.runtime.async_set_optimisation_paused(True)

    @property
    def is_on(self) -> bool:
        return not self.runtime.optimisation_paused

    async def async_turn_on(self, **kwargs: Any) -> None:
        self.runtime.async_set_optimisation_paused(False)
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self.runtime.async_set_optimisation_paused(True)
        self.async_write_ha_state()


class ChargeNowSwitch(ConnectionEntity, SwitchEntity, RestoreEntity):
    """Charge at the charger's maximum the fuse allows, whatever the plan says."""

    def __init__(
        self,
        runtime: NetbewustRuntime,
        description: SwitchEntityDescription,
        subentry: ConfigSubentry,
    ) -> None:
        super().__init__(runtime, description, subentry)
        self._device_id = subentry.subentry_id

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and last.state == STATE_ON:
            self.runtime.async_set_charge_now(self._device_id, True)

    @property
    def is_on(self) -> bool:
        return self._device_id in self.runtime.charge_now

    async def async_turn_on(self, **kwargs: Any) -> None:
        self.runtime.async_set_charge_now(self._device_id, True)
        self.async_write_ha_state()

    async def async_turn_off(self, **kwargs: Any) -> None:
        self.runtime.async_set_charge_now(self._device_id, False)
        self.async_write_ha_state()
