"""Actions: `netbewust.set_emergency` puts every flexible device in its safe state;
`netbewust.replan` plans again now."""

from __future__ import annotations

from typing import TYPE_CHECKING

import probatio
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .community.const import is_community_entry
from .const import DOMAIN

if TYPE_CHECKING:
    from .guard.runtime import NetbewustConfigEntry

SERVICE_SET_EMERGENCY = "set_emergency"
ATTR_ACTIVE = "active"
ATTR_REASON = "reason"

SERVICE_REPLAN = "replan"
REPLAN_SCHEMA = probatio.Schema({probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string})

SET_EMERGENCY_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        probatio.Required(ATTR_ACTIVE): cv.boolean,
        probatio.Optional(ATTR_REASON, default=""): cv.string,
    }
)


def _target_entries(hass: HomeAssistant, entry_id: str | None) -> list[NetbewustConfigEntry]:
    """The named entry, or every loaded one: an emergency concerns the whole home."""
    if entry_id is None:
        # Community memberships are not connections: they have no guard of their own.
        entries: list[NetbewustConfigEntry] = [
            entry
            for entry in hass.config_entries.async_loaded_entries(DOMAIN)
            if not is_community_entry(entry.data)
        ]
        if not entries:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="no_loaded_entries"
            )
        return entries
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN or is_community_entry(entry.data):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"title": entry.title},
        )
    return [entry]


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    @callback
    def set_emergency(call: ServiceCall) -> None:
        for entry in _target_entries(hass, call.data.get(ATTR_CONFIG_ENTRY_ID)):
            entry.runtime_data.async_set_emergency(call.data[ATTR_ACTIVE], call.data[ATTR_REASON])

    hass.services.async_register(
        DOMAIN, SERVICE_SET_EMERGENCY, set_emergency, schema=SET_EMERGENCY_SCHEMA
    )

    async def replan(call: ServiceCall) -> None:
        planners = [
            entry.runtime_data.planner
            for entry in _target_entries(hass, call.data.get(ATTR_CONFIG_ENTRY_ID))
            if entry.runtime_data.planner is not None
        ]
        if not planners:
            raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_planner")
        for planner in planners:
            await planner.async_replan("requested")

    hass.services.async_register(DOMAIN, SERVICE_REPLAN, replan, schema=REPLAN_SCHEMA)
