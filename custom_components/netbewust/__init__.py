"""The Netbewust integration: a local grid guard that keeps a home within its fuse."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from homeassistant.const import Platform
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr

from .community.runtime import AnyNetbewustEntry, is_membership_entry
from .community.setup import (
    async_remove_community_entry,
    async_setup_community_entry,
    async_unload_community_entry,
)
from .const import DOMAIN
from .entity import connection_device_info
from .guard.entry_config import EntryConfigError, entry_config, invalid_config
from .guard.runtime import NetbewustConfigEntry, NetbewustRuntime
from .modbus.runtime import ModbusConfigError, ModbusDevices
from .planner.setup import async_create_planner
from .services import async_setup_services

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.typing import ConfigType

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.NUMBER,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.TIME,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions once, whatever the entries."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: AnyNetbewustEntry) -> bool:
    """Start guarding one connection, or a community membership linked to one."""
    if is_membership_entry(entry):
        return await async_setup_community_entry(hass, entry)
    try:
        # Options (how long the meter may be silent) refine the data.
        config = entry_config({**entry.data, **entry.options}, entry.subentries.values())
        modbus = ModbusDevices.from_subentries(entry.subentries.values())
    except (EntryConfigError, ModbusConfigError) as err:
        raise invalid_config(entry.title, err) from err
    # Registered first so the device subentries' devices can name it as their parent.
    connection_device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        **connection_device_info(entry.entry_id, entry.title, config.guard.connection),
    )
    # Modbus devices join the guard like any other device.
    devices = sorted(config.guard.devices + modbus.specs, key=lambda spec: spec.priority)
    guard = replace(config.guard, devices=tuple(devices))
    runtime = NetbewustRuntime(hass, entry, replace(config, guard=guard), connection_device.id)
    runtime.modbus = modbus
    if not config.meter.all():  # no P1 entities: a Modbus meter measures the connection
        modbus.use_as_meter(runtime.async_on_meter_reading)
    entry.runtime_data = runtime
    await runtime.switches.async_load()
    runtime.planner = async_create_planner(hass, entry, runtime)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    runtime.async_start()
    modbus.start(hass, entry)
    entry.async_on_unload(modbus.stop)
    if runtime.planner is not None:
        runtime.planner.async_start()
    # Options, devices and circuits (subentries): any change rebuilds the guard.
    entry.async_on_unload(entry.add_update_listener(_async_reload))
    return True


async def _async_reload(hass: HomeAssistant, entry: NetbewustConfigEntry) -> None:
    hass.config_entries.async_schedule_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: AnyNetbewustEntry) -> bool:
    """Stop guarding; listeners and issues go with the entry's unload callbacks."""
    if is_membership_entry(entry):
        return await async_unload_community_entry(hass, entry)
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: AnyNetbewustEntry) -> None:
    """A removed membership's caps leave the guard now; a connection has nothing to undo."""
    if is_membership_entry(entry):
        await async_remove_community_entry(hass, entry)
