"""Diagnostics: configuration, the last decision and counters, without personal names;
for heat pumps planned on the thermal model, their comfort settings and the model's fit."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from homeassistant.components.diagnostics import async_redact_data

from .community.entities import community_diagnostics
from .community.runtime import is_membership_entry
from .const import CONF_MODBUS_HOST
from .planner.heat_pump_entities import thermal_fit_summary

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from .community.runtime import AnyNetbewustEntry
    from .guard.runtime import NetbewustConfigEntry

# Titles and names are chosen by the household ("Jan's Tesla"); entity ids are kept.
# A Modbus device's address and serial number identify the home or the device.
TO_REDACT = {"title", "name", "unique_id", "host", CONF_MODBUS_HOST, "serial"}


def _plain(value: Any) -> Any:
    """Tuples and sets as lists, so redaction reaches inside them."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return value


def _thermal(entry: NetbewustConfigEntry) -> dict[str, Any]:
    """Per thermally planned heat pump (by subentry id): its fit and comfort settings."""
    planner = entry.runtime_data.planner
    if planner is None:
        return {}
    return {
        device_id: {
            "fit": thermal_fit_summary(planner, device_id),
            "comfort": {
                key: value.isoformat() if hasattr(value, "isoformat") else value
                for key, value in asdict(planner.comfort[device_id]).items()
            },
            "planned_by": planner.thermal_notes.get(device_id, "thermal model"),
        }
        for device_id in planner.thermal
    }


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: AnyNetbewustEntry
) -> dict[str, Any]:
    if is_membership_entry(entry):
        return community_diagnostics(entry)
    runtime = entry.runtime_data
    decision = runtime.last_decision
    last_decision: dict[str, Any] | None = None
    if decision is not None:
        last_decision = asdict(decision)
        last_decision["changed"] = sorted(decision.changed)  # a set has no order
        last_decision["headroom_a"] = decision.headroom_a
    return async_redact_data(
        _plain(
            {
                "entry": {
                    "title": entry.title,
                    "data": dict(entry.data),
                    "subentries": [
                        {
                            "subentry_id": subentry.subentry_id,
                            "subentry_type": subentry.subentry_type,
                            "title": subentry.title,
                            "data": dict(subentry.data),
                        }
                        for subentry in entry.subentries.values()
                    ],
                },
                "guard_config": asdict(runtime.config.guard),
                "meter_entities": asdict(runtime.config.meter),
                "runtime": runtime.as_dict(),
                "last_decision": last_decision,
                "modbus_devices": runtime.modbus.diagnostics() if runtime.modbus else [],
                "thermal_heat_pumps": _thermal(entry),
            }
        ),
        TO_REDACT,
    )
