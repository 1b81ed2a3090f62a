"""Setup, unload and reload of a connection entry."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components.netbewust.const import (
    CONF_CONNECTION_TYPE,
    CONF_CURRENT_ENTITY,
    CONF_PRIORITY,
    DOMAIN,
    SUBENTRY_LOAD,
)
from custom_components.netbewust.core.model import ChargerSpec, LoadSetpoint

from .conftest import (
    ALL_DEVICES,
    CHARGER,
    CHARGER_ID,
    CIRCUIT,
    CIRCUIT_ID,
    IMPORT_L1,
    LOAD_ID,
    LOAD_SWITCH,
    MAIN_DATA,
    decision,
    set_meter,
    state_value,
    subentry,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from .conftest import ScriptedGuard


async def test_setup_builds_the_guard_from_entry_and_subentries(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry((*ALL_DEVICES, CIRCUIT))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    config = scripted_guard[-1].config
    assert config.connection.phases == 1
    assert config.connection.fuse_current_a == 25.0
    assert config.connection.max_current_a == 24.0
    # Ordered by the user's priority: battery (1), heat pump (2), charger (3), PV, load.
    assert [spec.name for spec in config.devices] == [
        "Home battery",
        "Heat pump",
        "Jan's car",
        "Solar panels",
        "Boiler",
    ]
    charger = next(spec for spec in config.devices if spec.device_id == CHARGER_ID)
    assert isinstance(charger, ChargerSpec)
    assert (charger.min_current_a, charger.max_current_a, charger.circuit_id) == (6, 16, None)
    assert [circuit.circuit_id for circuit in config.circuits] == [CIRCUIT_ID]
    assert config.circuits[0].parent_id is None


async def test_devices_and_entities_per_subentry(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    devices = dr.async_get(hass)
    connection = devices.async_get_device_by_identifier((DOMAIN, entry.entry_id), entry.entry_id)
    charger = devices.async_get_device_by_identifier((DOMAIN, CHARGER_ID), entry.entry_id)
    assert connection is not None
    assert charger is not None
    assert charger.via_device_id == connection.id
    assert charger.name == "Jan's car"

    entities = er.async_get(hass)
    setpoint_id = entities.async_get_entity_id("sensor", DOMAIN, f"{CHARGER_ID}_setpoint")
    assert setpoint_id is not None
    setpoint = entities.async_get(setpoint_id)
    assert setpoint is not None
    assert setpoint.config_subentry_id == CHARGER_ID
    assert setpoint.device_id == charger.id
    charge_now = entities.async_get_entity_id("switch", DOMAIN, f"{CHARGER_ID}_charge_now")
    assert charge_now is not None
    # Only chargers get "charge now".
    assert entities.async_get_entity_id("switch", DOMAIN, f"{LOAD_ID}_charge_now") is None


async def test_unload_stops_listening_to_the_meter(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    guard = scripted_guard[-1]
    set_meter(hass, 1000)
    await hass.async_block_till_done()
    seen = len(guard.readings)
    assert seen == 1

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED

    guard.decide = lambda reading: decision({LOAD_ID: LoadSetpoint(on=False)})
    set_meter(hass, 9000)
    await hass.async_block_till_done()
    assert len(guard.readings) == seen
    assert state_value(hass, LOAD_SWITCH) == "on"


async def test_subentry_change_reloads_with_a_new_guard(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry((CHARGER,))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert len(scripted_guard) == 1

    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType(
                {CONF_PRIORITY: 9, "switch_entity": LOAD_SWITCH, "rated_power": 1000}
            ),
            subentry_type=SUBENTRY_LOAD,
            title="Dishwasher",
            unique_id=None,
        ),
    )
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert len(scripted_guard) == 2
    assert [spec.name for spec in scripted_guard[-1].config.devices] == ["Jan's car", "Dishwasher"]
    # The new guard listens; the old one does not.
    set_meter(hass, 500)
    await hass.async_block_till_done()
    assert len(scripted_guard[0].readings) == 0
    assert len(scripted_guard[1].readings) == 1


async def test_invalid_device_data_fails_setup_with_a_clear_error(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = subentry(
        "sub_broken",
        "charger",
        "Broken charger",
        {CONF_PRIORITY: 1, CONF_CURRENT_ENTITY: "not an entity"},
    )
    entry = make_entry((broken,))
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    # The household reads a translated message naming the entry; the log has the detail.
    assert entry.error_reason_translation_key == "invalid_config"
    assert entry.error_reason_translation_placeholders == {"title": entry.title}
    assert entry.reason == (
        f"The settings of {entry.title} cannot be used. "
        "The log names the value; correct it with Reconfigure"
    )
    assert "Broken charger" in caplog.text
    assert scripted_guard == []


async def test_entry_without_meter_entities_fails_setup(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry((), {CONF_CONNECTION_TYPE: "3x25"})
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR


async def test_custom_connection_uses_explicit_phases_and_fuse(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    data = {**MAIN_DATA, CONF_CONNECTION_TYPE: "custom", "phases": "3", "fuse_current": 50}
    data |= {"power_import_l2": "sensor.l2", "power_import_l3": "sensor.l3", "peak_limit": 5}
    entry = make_entry((), data)
    assert await hass.config_entries.async_setup(entry.entry_id)
    connection = scripted_guard[-1].config.connection
    assert (connection.phases, connection.fuse_current_a) == (3, 50.0)
    assert connection.peak_limit_w == 5000.0
    assert hass.states.get(IMPORT_L1) is None  # nothing set yet, and still no crash


async def test_removed_subentry_takes_its_device_along(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    devices = dr.async_get(hass)
    assert devices.async_get_device_by_identifier((DOMAIN, LOAD_ID), entry.entry_id)

    hass.config_entries.async_remove_subentry(entry, LOAD_ID)
    await hass.async_block_till_done()

    assert devices.async_get_device_by_identifier((DOMAIN, LOAD_ID), entry.entry_id) is None
    assert LOAD_ID not in entry.runtime_data.devices
    assert er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{LOAD_ID}_setpoint") is None


async def test_rarely_needed_entities_start_disabled(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    entities = er.async_get(hass)
    interval = entities.async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_meter_interval")
    assert interval is not None
    registered = entities.async_get(interval)
    assert registered is not None
    assert registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION


async def test_options_change_reloads_with_the_new_stale_time(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    entry = make_entry(())
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert scripted_guard[-1].config.stale_after_s == 10.0

    hass.config_entries.async_update_entry(entry, options={"stale_after": 25.0})
    await hass.async_block_till_done()
    assert len(scripted_guard) == 2
    assert scripted_guard[-1].config.stale_after_s == 25.0
