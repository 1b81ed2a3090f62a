"""Subentry flows: chargers, batteries, heat pumps, PV inverters, loads and circuits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import probatio
import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigSubentryData
from homeassistant.const import CONF_NAME
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.netbewust.const import (
    CONF_BOILER_EFFICIENCY,
    CONF_BOILER_POWER,
    CONF_BUILDING_TYPE,
    CONF_CAN_SWITCH_PHASES,
    CONF_CIRCUIT,
    CONF_CIRCUIT_MAX_CURRENT,
    CONF_CONNECTION_TYPE,
    CONF_CURRENT_ENTITY,
    CONF_DEVICE_PHASES,
    CONF_DHW_ENTITY,
    CONF_FUSE_CURRENT,
    CONF_GAS_PRICE,
    CONF_HEAT_PUMP_MODULATION,
    CONF_HEAT_PUMP_TYPE,
    CONF_HYBRID_POWER_CAP,
    CONF_INDOOR_TEMPERATURE_ENTITY,
    CONF_INSULATION_ERA,
    CONF_LIMITED_POWER,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_CURRENT,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MAX_SWITCHES_PER_DAY,
    CONF_METER_MODE,
    CONF_MIN_CURRENT,
    CONF_MIN_OFF_TIME,
    CONF_MIN_ON_TIME,
    CONF_MIN_SOC,
    CONF_MODE_ENTITY,
    CONF_OUTDOOR_TEMPERATURE_ENTITY,
    CONF_PARENT_CIRCUIT,
    CONF_PHASE_SWITCH_ENTITY,
    CONF_PHASES,
    CONF_POWER_ENTITY,
    CONF_POWER_LIMIT_ENTITY,
    CONF_PRIORITY,
    CONF_RATED_POWER,
    CONF_SAFE_CURRENT,
    CONF_SAFETY_MARGIN,
    CONF_SETPOINT_ENTITY,
    CONF_SG_READY_SWITCH_1,
    CONF_SG_READY_SWITCH_2,
    CONF_SOC_ENTITY,
    CONF_STATUS_ENTITY,
    CONF_SWITCH_ENTITY,
    DOMAIN,
    NO_CIRCUIT,
    SUBENTRY_BATTERY,
    SUBENTRY_CHARGER,
    SUBENTRY_CIRCUIT,
    SUBENTRY_HEAT_PUMP,
    SUBENTRY_LOAD,
    SUBENTRY_PV,
)
from custom_components.netbewust.guard.circuit_tree import creates_cycle, descendants

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

STRINGS = json.loads(
    (Path(__file__).parents[2] / "custom_components/netbewust/strings.json").read_text()
)
ALL_TYPES = (
    SUBENTRY_CHARGER,
    SUBENTRY_BATTERY,
    SUBENTRY_HEAT_PUMP,
    SUBENTRY_PV,
    SUBENTRY_LOAD,
    SUBENTRY_CIRCUIT,
)

POWER_W = {"device_class": "power", "unit_of_measurement": "W"}
CELSIUS = {"device_class": "temperature", "unit_of_measurement": "°C"}

pytestmark = pytest.mark.usefixtures("no_setup")


@pytest.fixture(autouse=True)
def device_entities(hass: HomeAssistant) -> None:
    """Entities of the devices, as their own integrations would provide them."""
    states: dict[str, tuple[str, dict[str, Any]]] = {
        "number.charger_current": ("16", {"unit_of_measurement": "A"}),
        "number.second_charger_current": ("16", {"unit_of_measurement": "A"}),
        "number.charger_power_limit": ("11000", {"unit_of_measurement": "W"}),
        "sensor.charger_status": ("charging", {}),
        "sensor.charger_power": ("3680", POWER_W),
        "select.charger_phases": ("3", {"options": ["1", "3"]}),
        "number.battery_setpoint": ("0", {"unit_of_measurement": "kW"}),
        "select.battery_mode": ("auto", {"options": ["auto", "manual"]}),
        "sensor.battery_soc": ("55", {"device_class": "battery", "unit_of_measurement": "%"}),
        "sensor.battery_power": ("-500", POWER_W),
        "sensor.battery_energy": ("5", {"device_class": "energy", "unit_of_measurement": "kWh"}),
        "number.heat_pump_limit": ("3", {"unit_of_measurement": "kW"}),
        "switch.sg_ready_1": ("off", {}),
        "switch.sg_ready_2": ("off", {}),
        "sensor.heat_pump_power": ("900", POWER_W),
        "sensor.living_room": ("20.5", CELSIUS),
        "sensor.outdoor": ("4.5", CELSIUS),
        "sensor.outdoor_fahrenheit": (
            "40",
            {"device_class": "temperature", "unit_of_measurement": "°F"},
        ),
        "weather.home": ("cloudy", {"temperature": 4.5}),
        "binary_sensor.hot_water": ("off", {}),
        "number.pv_limit": ("100", {"unit_of_measurement": "%"}),
        "number.pv_amps": ("16", {"unit_of_measurement": "A"}),
        "switch.pv": ("on", {}),
        "sensor.pv_power": ("-2500", POWER_W),
        "switch.boiler": ("on", {}),
        "input_boolean.pool_pump": ("off", {}),
        "light.garden": ("off", {}),
        "sensor.boiler_power": ("2000", POWER_W),
    }
    for entity_id, (state, attributes) in states.items():
        hass.states.async_set(entity_id, state, attributes)


def make_entry(
    hass: HomeAssistant, phases: int = 1, subentries: list[ConfigSubentryData] | None = None
) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Thuis",
        data={
            CONF_CONNECTION_TYPE: "3x25" if phases == 3 else "1x25",
            CONF_PHASES: phases,
            CONF_FUSE_CURRENT: 25.0,
            CONF_SAFETY_MARGIN: 1.0,
            CONF_METER_MODE: "per_phase",
            "power_import_l1": "sensor.import_l1",
        },
        subentries_data=subentries or [],
    )
    entry.add_to_hass(hass)
    return entry


def subentry(kind: str, title: str, **data: Any) -> ConfigSubentryData:
    return ConfigSubentryData(data=data, subentry_type=kind, title=title, unique_id=None)


def by_title(entry: MockConfigEntry, title: str) -> str:
    return str(next(sid for sid, sub in entry.subentries.items() if sub.title == title))


async def start(hass: HomeAssistant, entry: MockConfigEntry, kind: str) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, kind), context={"source": SOURCE_USER}
    )


async def submit(hass: HomeAssistant, result: Any, user_input: dict[str, Any]) -> Any:
    """Submit the form; a field set to None is left empty."""
    filled = {key: value for key, value in user_input.items() if value is not None}
    return await hass.config_entries.subentries.async_configure(result["flow_id"], filled)


async def add(
    hass: HomeAssistant, entry: MockConfigEntry, kind: str, user_input: dict[str, Any]
) -> Any:
    return await submit(hass, await start(hass, entry, kind), user_input)


def suggested(result: Any) -> dict[str, Any]:
    schema = result["data_schema"]
    assert schema is not None
    return {
        str(key): key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


def fields(result: Any) -> set[str]:
    schema = result["data_schema"]
    assert schema is not None
    return {str(key) for key in schema.schema}


def assert_errors(result: Any, kind: str, errors: dict[str, str]) -> None:
    """The form shows exactly these errors, and each one is translated for this type."""
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    for key in errors.values():
        assert key in STRINGS["config_subentries"][kind]["error"], (kind, key)


CHARGER = {
    CONF_NAME: "Laadpaal oprit",
    CONF_CURRENT_ENTITY: "number.charger_current",
    CONF_STATUS_ENTITY: "sensor.charger_status",
    CONF_POWER_ENTITY: "sensor.charger_power",
    CONF_MIN_CURRENT: 6,
    CONF_MAX_CURRENT: 16,
    CONF_PRIORITY: 1,
    CONF_DEVICE_PHASES: ["1"],
}


# ---------- charger ----------


async def test_add_charger(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await start(hass, entry, SUBENTRY_CHARGER)
    assert result["step_id"] == "user"
    assert suggested(result) == {
        CONF_PRIORITY: 1,
        CONF_DEVICE_PHASES: ["1"],
        CONF_MIN_CURRENT: 6.0,
        CONF_MAX_CURRENT: 16.0,
    }
    # No circuits yet: the circuit field is not shown; a one-phase home has no phases
    # to switch between, so neither are the phase-switching fields.
    assert CONF_CIRCUIT not in fields(result)
    assert not {CONF_CAN_SWITCH_PHASES, CONF_PHASE_SWITCH_ENTITY} & fields(result)

    result = await submit(hass, result, CHARGER)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Laadpaal oprit"
    (created,) = entry.subentries.values()
    assert created.subentry_type == SUBENTRY_CHARGER
    assert created.title == "Laadpaal oprit"
    assert dict(created.data) == {key: value for key, value in CHARGER.items() if key != CONF_NAME}
    assert isinstance(created.data[CONF_PRIORITY], int)


async def test_new_device_queues_after_the_last(hass: HomeAssistant) -> None:
    entry = make_entry(
        hass,
        subentries=[
            subentry(SUBENTRY_LOAD, "Boiler", priority=3),
            subentry(SUBENTRY_BATTERY, "Batterij", priority=7),
            subentry(SUBENTRY_CIRCUIT, "Garage", circuit_max_current=16),
        ],
    )
    result = await start(hass, entry, SUBENTRY_HEAT_PUMP)
    assert suggested(result)[CONF_PRIORITY] == 8


async def test_single_phase_charger_on_a_three_phase_connection(hass: HomeAssistant) -> None:
    entry = make_entry(hass, 3)
    result = await start(hass, entry, SUBENTRY_CHARGER)
    assert suggested(result)[CONF_DEVICE_PHASES] == ["1", "2", "3"]
    result = await submit(
        hass, result, {**CHARGER, CONF_CAN_SWITCH_PHASES: False, CONF_DEVICE_PHASES: ["2"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert created.data[CONF_DEVICE_PHASES] == ["2"]


async def test_charger_that_switches_phases(hass: HomeAssistant) -> None:
    entry = make_entry(hass, 3)
    result = await add(
        hass,
        entry,
        SUBENTRY_CHARGER,
        {
            **CHARGER,
            CONF_DEVICE_PHASES: ["3", "1", "2"],
            CONF_CAN_SWITCH_PHASES: True,
            CONF_PHASE_SWITCH_ENTITY: "select.charger_phases",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert created.data[CONF_DEVICE_PHASES] == ["1", "2", "3"]
    assert created.data[CONF_PHASE_SWITCH_ENTITY] == "select.charger_phases"


@pytest.mark.parametrize(
    ("phases", "change", "errors"),
    [
        (1, {CONF_CURRENT_ENTITY: "number.missing"}, {CONF_CURRENT_ENTITY: "entity_not_found"}),
        (1, {CONF_CURRENT_ENTITY: "sensor.battery_energy"}, {CONF_CURRENT_ENTITY: "wrong_domain"}),
        (
            1,
            {CONF_CURRENT_ENTITY: "number.charger_power_limit"},
            {CONF_CURRENT_ENTITY: "wrong_unit"},
        ),
        (1, {CONF_STATUS_ENTITY: "switch.boiler"}, {CONF_STATUS_ENTITY: "wrong_domain"}),
        (
            1,
            {CONF_POWER_ENTITY: "sensor.battery_energy"},
            {CONF_POWER_ENTITY: "wrong_device_class"},
        ),
        (
            1,
            {CONF_POWER_ENTITY: "sensor.battery_soc"},
            {CONF_POWER_ENTITY: "wrong_device_class"},
        ),
        (1, {CONF_MIN_CURRENT: 5}, {CONF_MIN_CURRENT: "current_out_of_range"}),
        (1, {CONF_MAX_CURRENT: 81}, {CONF_MAX_CURRENT: "current_out_of_range"}),
        (1, {CONF_MIN_CURRENT: 16, CONF_MAX_CURRENT: 10}, {CONF_MAX_CURRENT: "max_below_min"}),
        (1, {CONF_SAFE_CURRENT: 3}, {CONF_SAFE_CURRENT: "safe_current_out_of_range"}),
        (1, {CONF_SAFE_CURRENT: 20}, {CONF_SAFE_CURRENT: "safe_current_out_of_range"}),
        (1, {CONF_DEVICE_PHASES: []}, {CONF_DEVICE_PHASES: "phases_required"}),
        (1, {CONF_NAME: "  "}, {CONF_NAME: "name_required"}),
        (
            3,
            {CONF_DEVICE_PHASES: ["1", "3"]},
            {CONF_DEVICE_PHASES: "charger_one_or_three_phases"},
        ),
        (
            3,
            {CONF_CAN_SWITCH_PHASES: True, CONF_DEVICE_PHASES: ["1"]},
            {CONF_CAN_SWITCH_PHASES: "phase_switching_needs_three_phases"},
        ),
        (
            3,
            {CONF_CAN_SWITCH_PHASES: True, CONF_DEVICE_PHASES: ["1", "2", "3"]},
            {CONF_PHASE_SWITCH_ENTITY: "phase_switch_entity_required"},
        ),
        (
            3,
            {CONF_PHASE_SWITCH_ENTITY: "number.charger_current"},
            {CONF_PHASE_SWITCH_ENTITY: "entity_used_twice"},
        ),
    ],
)
async def test_charger_errors(
    hass: HomeAssistant, phases: int, change: dict[str, Any], errors: dict[str, str]
) -> None:
    entry = make_entry(hass, phases)
    # Only a three-phase home is asked whether the charger switches phases.
    asked = {CONF_CAN_SWITCH_PHASES: False} if phases == 3 else {}
    result = await add(hass, entry, SUBENTRY_CHARGER, {**CHARGER, **asked, **change})
    assert_errors(result, SUBENTRY_CHARGER, errors)
    assert not entry.subentries
    # The form shows what was entered, so the user fixes only the field in error.
    assert suggested(result)[CONF_NAME] == change.get(CONF_NAME, CHARGER[CONF_NAME])


@pytest.mark.parametrize("safe_current", [0, 6, 10, 16])
async def test_charger_safe_current_is_0_or_between_its_minimum_and_maximum(
    hass: HomeAssistant, safe_current: int
) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_CHARGER, {**CHARGER, CONF_SAFE_CURRENT: safe_current})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert created.data[CONF_SAFE_CURRENT] == safe_current


async def test_form_recovers_after_an_error(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_CHARGER, {**CHARGER, CONF_MIN_CURRENT: 2})
    assert result["errors"] == {CONF_MIN_CURRENT: "current_out_of_range"}
    result = await submit(hass, result, CHARGER)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_two_devices_cannot_control_the_same_entity(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await add(hass, entry, SUBENTRY_CHARGER, CHARGER)
    result = await add(hass, entry, SUBENTRY_CHARGER, {**CHARGER, CONF_NAME: "Tweede"})
    assert_errors(result, SUBENTRY_CHARGER, {CONF_CURRENT_ENTITY: "entity_in_use"})
    # Sharing a status or power sensor is not controlling anything: allowed.
    result = await submit(
        hass,
        result,
        {**CHARGER, CONF_NAME: "Tweede", CONF_CURRENT_ENTITY: "number.second_charger_current"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_phase_removed_while_the_form_was_open(hass: HomeAssistant) -> None:
    entry = make_entry(hass, 3)
    result = await start(hass, entry, SUBENTRY_CHARGER)
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_PHASES: 1})
    # The form shown was a three-phase home's, with the phase-switching question.
    result = await submit(
        hass, result, {**CHARGER, CONF_CAN_SWITCH_PHASES: False, CONF_DEVICE_PHASES: ["3"]}
    )
    assert_errors(result, SUBENTRY_CHARGER, {CONF_DEVICE_PHASES: "phase_not_on_connection"})


async def test_phase_outside_the_connection_is_refused_by_the_form(hass: HomeAssistant) -> None:
    entry = make_entry(hass, 1)
    result = await start(hass, entry, SUBENTRY_CHARGER)
    with pytest.raises(InvalidData):
        await submit(hass, result, {**CHARGER, CONF_DEVICE_PHASES: ["2"]})


async def test_reconfigure_charger(hass: HomeAssistant) -> None:
    entry = make_entry(hass, subentries=[subentry(SUBENTRY_LOAD, "Boiler", priority=1)])
    await add(hass, entry, SUBENTRY_CHARGER, {**CHARGER, CONF_PRIORITY: 2})
    charger_id = by_title(entry, "Laadpaal oprit")
    result = await entry.start_subentry_reconfigure_flow(hass, charger_id)
    assert result["step_id"] == "reconfigure"
    assert suggested(result)[CONF_NAME] == "Laadpaal oprit"
    assert suggested(result)[CONF_CURRENT_ENTITY] == "number.charger_current"
    assert suggested(result)[CONF_PRIORITY] == 2

    # Moving the charger ahead of the boiler; its own entity is not "in use".
    result = await submit(
        hass,
        result,
        {**CHARGER, CONF_NAME: "Laadpaal", CONF_PRIORITY: 0, CONF_MAX_CURRENT: 25},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    reconfigured = entry.subentries[charger_id]
    assert reconfigured.title == "Laadpaal"
    assert reconfigured.data[CONF_PRIORITY] == 0
    assert reconfigured.data[CONF_MAX_CURRENT] == 25
    assert len(entry.subentries) == 2


async def test_reconfigure_validates_too(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await add(hass, entry, SUBENTRY_CHARGER, CHARGER)
    charger_id = by_title(entry, "Laadpaal oprit")
    result = await entry.start_subentry_reconfigure_flow(hass, charger_id)
    result = await submit(hass, result, {**CHARGER, CONF_MAX_CURRENT: 4})
    assert_errors(result, SUBENTRY_CHARGER, {CONF_MAX_CURRENT: "current_out_of_range"})
    assert entry.subentries[charger_id].data[CONF_MAX_CURRENT] == 16


async def test_reconfigure_of_a_loaded_entry_leaves_the_reload_to_its_listener(
    hass: HomeAssistant,
) -> None:
    entry = make_entry(hass)
    await add(hass, entry, SUBENTRY_CHARGER, CHARGER)
    changes: list[str] = []

    async def listener(hass: HomeAssistant, changed: Any) -> None:
        changes.append("updated")

    entry.add_update_listener(listener)
    charger_id = by_title(entry, "Laadpaal oprit")
    result = await entry.start_subentry_reconfigure_flow(hass, charger_id)
    result = await submit(hass, result, {**CHARGER, CONF_MAX_CURRENT: 20})
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert changes == ["updated"]


async def test_reconfigure_of_an_entry_without_listener_reloads_it(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await add(hass, entry, SUBENTRY_CHARGER, CHARGER)
    charger_id = by_title(entry, "Laadpaal oprit")
    with patch.object(hass.config_entries, "async_schedule_reload") as reload:
        result = await entry.start_subentry_reconfigure_flow(hass, charger_id)
        result = await submit(hass, result, {**CHARGER, CONF_MAX_CURRENT: 20})
    assert result["reason"] == "reconfigure_successful"
    reload.assert_called_once_with(entry.entry_id)


# ---------- battery ----------

BATTERY = {
    CONF_NAME: "Thuisbatterij",
    CONF_SETPOINT_ENTITY: "number.battery_setpoint",
    CONF_SOC_ENTITY: "sensor.battery_soc",
    CONF_POWER_ENTITY: "sensor.battery_power",
    CONF_MAX_CHARGE_POWER: 2500,
    CONF_MAX_DISCHARGE_POWER: 2200,
    CONF_MIN_SOC: 10,
    CONF_PRIORITY: 1,
    CONF_DEVICE_PHASES: ["1"],
}


async def test_add_battery(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await start(hass, entry, SUBENTRY_BATTERY)
    assert suggested(result)[CONF_MIN_SOC] == 10.0
    result = await submit(hass, result, {**BATTERY, CONF_MODE_ENTITY: "select.battery_mode"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert created.data[CONF_SETPOINT_ENTITY] == "number.battery_setpoint"
    assert created.data[CONF_MODE_ENTITY] == "select.battery_mode"
    assert created.data[CONF_MAX_DISCHARGE_POWER] == 2200


async def test_battery_with_mode_only(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    battery = {key: value for key, value in BATTERY.items() if key != CONF_SETPOINT_ENTITY}
    result = await add(
        hass, entry, SUBENTRY_BATTERY, {**battery, CONF_MODE_ENTITY: "select.battery_mode"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({CONF_SETPOINT_ENTITY: None}, {CONF_SETPOINT_ENTITY: "control_entity_required"}),
        ({CONF_SETPOINT_ENTITY: "number.charger_current"}, {CONF_SETPOINT_ENTITY: "wrong_unit"}),
        ({CONF_MODE_ENTITY: "switch.boiler"}, {CONF_MODE_ENTITY: "wrong_domain"}),
        ({CONF_SOC_ENTITY: "sensor.battery_energy"}, {CONF_SOC_ENTITY: "wrong_device_class"}),
        ({CONF_MAX_CHARGE_POWER: 0}, {CONF_MAX_CHARGE_POWER: "power_not_positive"}),
        ({CONF_MAX_DISCHARGE_POWER: -5}, {CONF_MAX_DISCHARGE_POWER: "power_not_positive"}),
    ],
)
async def test_battery_errors(
    hass: HomeAssistant, change: dict[str, Any], errors: dict[str, str]
) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_BATTERY, {**BATTERY, **change})
    assert_errors(result, SUBENTRY_BATTERY, errors)


async def test_battery_soc_sensor_without_a_number(hass: HomeAssistant) -> None:
    hass.states.async_set(
        "sensor.battery_soc", "unknown", {"device_class": "battery", "unit_of_measurement": "%"}
    )
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_BATTERY, BATTERY)
    assert_errors(result, SUBENTRY_BATTERY, {CONF_SOC_ENTITY: "state_not_numeric"})


async def test_min_soc_out_of_range_is_refused_by_the_form(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await start(hass, entry, SUBENTRY_BATTERY)
    with pytest.raises(InvalidData):
        await submit(hass, result, {**BATTERY, CONF_MIN_SOC: 101})


# ---------- heat pump ----------

HEAT_PUMP = {
    CONF_NAME: "Warmtepomp",
    CONF_POWER_LIMIT_ENTITY: "number.heat_pump_limit",
    CONF_POWER_ENTITY: "sensor.heat_pump_power",
    CONF_RATED_POWER: 3000,
    CONF_LIMITED_POWER: 450,
    CONF_MAX_SWITCHES_PER_DAY: 2,
    CONF_MIN_ON_TIME: 30,
    CONF_MIN_OFF_TIME: 20,
    CONF_PRIORITY: 1,
    CONF_DEVICE_PHASES: ["1"],
}


async def test_add_heat_pump_with_power_limit(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await start(hass, entry, SUBENTRY_HEAT_PUMP)
    assert suggested(result) == {
        CONF_PRIORITY: 1,
        CONF_DEVICE_PHASES: ["1"],
        CONF_LIMITED_POWER: 450.0,
        CONF_MAX_SWITCHES_PER_DAY: 2,
        CONF_MIN_ON_TIME: 30,
        CONF_MIN_OFF_TIME: 30,
        CONF_HEAT_PUMP_TYPE: "all_electric",
    }
    result = await submit(hass, result, {**HEAT_PUMP, CONF_MAX_SWITCHES_PER_DAY: 4.0})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert created.data[CONF_MAX_SWITCHES_PER_DAY] == 4
    assert isinstance(created.data[CONF_MAX_SWITCHES_PER_DAY], int)
    assert isinstance(created.data[CONF_MIN_OFF_TIME], int)


async def test_add_heat_pump_with_sg_ready(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    heat_pump = {key: value for key, value in HEAT_PUMP.items() if key != CONF_POWER_LIMIT_ENTITY}
    result = await add(
        hass,
        entry,
        SUBENTRY_HEAT_PUMP,
        {
            **heat_pump,
            CONF_SG_READY_SWITCH_1: "switch.sg_ready_1",
            CONF_SG_READY_SWITCH_2: "switch.sg_ready_2",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({CONF_POWER_LIMIT_ENTITY: None}, {CONF_POWER_LIMIT_ENTITY: "control_entity_required"}),
        (
            {CONF_SG_READY_SWITCH_1: "switch.sg_ready_1"},
            {CONF_SG_READY_SWITCH_2: "sg_ready_pair_incomplete"},
        ),
        (
            {CONF_SG_READY_SWITCH_2: "switch.sg_ready_2"},
            {CONF_SG_READY_SWITCH_1: "sg_ready_pair_incomplete"},
        ),
        (
            {
                CONF_SG_READY_SWITCH_1: "switch.sg_ready_1",
                CONF_SG_READY_SWITCH_2: "switch.sg_ready_1",
            },
            {CONF_SG_READY_SWITCH_2: "entity_used_twice"},
        ),
        (
            {CONF_SG_READY_SWITCH_1: "light.garden", CONF_SG_READY_SWITCH_2: "switch.sg_ready_2"},
            {CONF_SG_READY_SWITCH_1: "wrong_domain"},
        ),
        ({CONF_POWER_LIMIT_ENTITY: "number.pv_amps"}, {CONF_POWER_LIMIT_ENTITY: "wrong_unit"}),
        ({CONF_LIMITED_POWER: 3000}, {CONF_LIMITED_POWER: "limited_not_below_rated"}),
        ({CONF_RATED_POWER: 0}, {CONF_RATED_POWER: "power_not_positive"}),
        ({CONF_RATED_POWER: None}, {CONF_RATED_POWER: "rated_power_required"}),
    ],
)
async def test_heat_pump_errors(
    hass: HomeAssistant, change: dict[str, Any], errors: dict[str, str]
) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_HEAT_PUMP, {**HEAT_PUMP, **change})
    assert_errors(result, SUBENTRY_HEAT_PUMP, errors)


THERMAL = {
    CONF_INDOOR_TEMPERATURE_ENTITY: "sensor.living_room",
    CONF_OUTDOOR_TEMPERATURE_ENTITY: "sensor.outdoor",
    CONF_BUILDING_TYPE: "semi_detached",
    CONF_INSULATION_ERA: "1975_1991",
}
HYBRID = {
    CONF_HEAT_PUMP_TYPE: "hybrid",
    CONF_HYBRID_POWER_CAP: 1500,
    CONF_BOILER_POWER: 18,
    CONF_GAS_PRICE: 1.25,
    CONF_BOILER_EFFICIENCY: 92,
}


async def test_add_a_hybrid_heat_pump_on_the_thermal_model(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    user_input = {
        **HEAT_PUMP,
        **THERMAL,
        **HYBRID,
        CONF_OUTDOOR_TEMPERATURE_ENTITY: "weather.home",
        CONF_HEAT_PUMP_MODULATION: "modulating",
        CONF_DHW_ENTITY: "binary_sensor.hot_water",
    }
    result = await add(hass, entry, SUBENTRY_HEAT_PUMP, user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    expected = {key: value for key, value in user_input.items() if key != CONF_NAME}
    assert dict(created.data) == expected
    # The hot-water and weather entities are only read: a second heat pump may use them too.
    second = {**HEAT_PUMP, **THERMAL, CONF_NAME: "Tweede", CONF_POWER_LIMIT_ENTITY: None}
    second |= {
        CONF_SG_READY_SWITCH_1: "switch.sg_ready_1",
        CONF_SG_READY_SWITCH_2: "switch.sg_ready_2",
    }
    second |= {CONF_DHW_ENTITY: "binary_sensor.hot_water", CONF_POWER_ENTITY: None}
    result = await add(hass, entry, SUBENTRY_HEAT_PUMP, second)
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        (
            {CONF_BUILDING_TYPE: None, CONF_INSULATION_ERA: None},
            {CONF_BUILDING_TYPE: "thermal_model_incomplete"},
        ),
        (
            {CONF_OUTDOOR_TEMPERATURE_ENTITY: None},
            {CONF_OUTDOOR_TEMPERATURE_ENTITY: "thermal_model_incomplete"},
        ),
        ({CONF_INSULATION_ERA: None}, {CONF_INSULATION_ERA: "thermal_model_incomplete"}),
        (
            {CONF_OUTDOOR_TEMPERATURE_ENTITY: "sensor.outdoor_fahrenheit"},
            {CONF_OUTDOOR_TEMPERATURE_ENTITY: "wrong_unit"},
        ),
        (
            {CONF_OUTDOOR_TEMPERATURE_ENTITY: "weather.gone"},
            {CONF_OUTDOOR_TEMPERATURE_ENTITY: "entity_not_found"},
        ),
        (
            {CONF_INDOOR_TEMPERATURE_ENTITY: "sensor.charger_power"},
            {CONF_INDOOR_TEMPERATURE_ENTITY: "wrong_device_class"},
        ),
        ({CONF_DHW_ENTITY: "binary_sensor.gone"}, {CONF_DHW_ENTITY: "entity_not_found"}),
        ({CONF_DHW_ENTITY: "light.garden"}, {CONF_DHW_ENTITY: "wrong_domain"}),
        (
            {
                CONF_HEAT_PUMP_MODULATION: "modulating",
                CONF_POWER_LIMIT_ENTITY: None,
                CONF_SG_READY_SWITCH_1: "switch.sg_ready_1",
                CONF_SG_READY_SWITCH_2: "switch.sg_ready_2",
            },
            {CONF_HEAT_PUMP_MODULATION: "modulating_needs_power_limit"},
        ),
        ({**HYBRID, CONF_HYBRID_POWER_CAP: 0}, {CONF_HYBRID_POWER_CAP: "power_not_positive"}),
        ({**HYBRID, CONF_BOILER_POWER: 0}, {CONF_BOILER_POWER: "power_not_positive"}),
        ({**HYBRID, CONF_GAS_PRICE: 0}, {CONF_GAS_PRICE: "gas_price_not_positive"}),
        (
            {**HYBRID, CONF_BOILER_EFFICIENCY: 40},
            {CONF_BOILER_EFFICIENCY: "efficiency_out_of_range"},
        ),
        (
            {**HYBRID, CONF_BOILER_EFFICIENCY: 120},
            {CONF_BOILER_EFFICIENCY: "efficiency_out_of_range"},
        ),
    ],
)
async def test_thermal_model_errors(
    hass: HomeAssistant, change: dict[str, Any], errors: dict[str, str]
) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_HEAT_PUMP, {**HEAT_PUMP, **THERMAL, **change})
    assert_errors(result, SUBENTRY_HEAT_PUMP, errors)


async def test_an_all_electric_pump_ignores_hybrid_figures(hass: HomeAssistant) -> None:
    """Figures for a boiler it does not have are kept, not checked: switching to hybrid
    later checks them."""
    entry = make_entry(hass)
    user_input = {**HEAT_PUMP, **THERMAL, **HYBRID, CONF_HEAT_PUMP_TYPE: "all_electric"}
    result = await add(hass, entry, SUBENTRY_HEAT_PUMP, {**user_input, CONF_GAS_PRICE: 0})
    assert result["type"] is FlowResultType.CREATE_ENTRY


# ---------- PV ----------

PV = {
    CONF_NAME: "Zonnepanelen",
    CONF_POWER_LIMIT_ENTITY: "number.pv_limit",
    CONF_POWER_ENTITY: "sensor.pv_power",
    CONF_RATED_POWER: 4000,
    CONF_PRIORITY: 1,
    CONF_DEVICE_PHASES: ["1"],
}


async def test_add_pv_with_percentage_limit_or_switch(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_PV, PV)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    only_switch = {key: value for key, value in PV.items() if key != CONF_POWER_LIMIT_ENTITY}
    result = await add(
        hass,
        entry,
        SUBENTRY_PV,
        {**only_switch, CONF_NAME: "Schuur", CONF_SWITCH_ENTITY: "switch.pv"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert {sub.title for sub in entry.subentries.values()} == {"Zonnepanelen", "Schuur"}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({CONF_POWER_LIMIT_ENTITY: None}, {CONF_POWER_LIMIT_ENTITY: "control_entity_required"}),
        ({CONF_POWER_LIMIT_ENTITY: "number.pv_amps"}, {CONF_POWER_LIMIT_ENTITY: "wrong_unit"}),
        ({CONF_SWITCH_ENTITY: "switch.nowhere"}, {CONF_SWITCH_ENTITY: "entity_not_found"}),
        ({CONF_RATED_POWER: 0}, {CONF_RATED_POWER: "power_not_positive"}),
        ({CONF_RATED_POWER: None}, {CONF_RATED_POWER: "rated_power_required"}),
    ],
)
async def test_pv_errors(
    hass: HomeAssistant, change: dict[str, Any], errors: dict[str, str]
) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_PV, {**PV, **change})
    assert_errors(result, SUBENTRY_PV, errors)


# ---------- switchable load ----------

LOAD = {
    CONF_NAME: "Boiler",
    CONF_SWITCH_ENTITY: "switch.boiler",
    CONF_RATED_POWER: 2000,
    CONF_PRIORITY: 1,
    CONF_DEVICE_PHASES: ["1"],
}


async def test_add_loads(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    assert (await add(hass, entry, SUBENTRY_LOAD, LOAD))["type"] is FlowResultType.CREATE_ENTRY
    sensor_only = {
        CONF_NAME: "Zwembadpomp",
        CONF_SWITCH_ENTITY: "input_boolean.pool_pump",
        CONF_POWER_ENTITY: "sensor.boiler_power",
        CONF_PRIORITY: 2,
        CONF_DEVICE_PHASES: ["1"],
    }
    assert (await add(hass, entry, SUBENTRY_LOAD, sensor_only))[
        "type"
    ] is FlowResultType.CREATE_ENTRY
    pool = entry.subentries[by_title(entry, "Zwembadpomp")]
    assert CONF_RATED_POWER not in pool.data


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({CONF_RATED_POWER: None}, {CONF_RATED_POWER: "power_or_rated_required"}),
        ({CONF_RATED_POWER: -1}, {CONF_RATED_POWER: "power_not_positive"}),
        ({CONF_SWITCH_ENTITY: "light.garden"}, {CONF_SWITCH_ENTITY: "wrong_domain"}),
    ],
)
async def test_load_errors(
    hass: HomeAssistant, change: dict[str, Any], errors: dict[str, str]
) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_LOAD, {**LOAD, **change})
    assert_errors(result, SUBENTRY_LOAD, errors)


# ---------- circuits ----------


async def test_circuits_nest_and_devices_join_them(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await start(hass, entry, SUBENTRY_CIRCUIT)
    # The first circuit has no parent to choose.
    assert fields(result) == {CONF_NAME, CONF_CIRCUIT_MAX_CURRENT}
    await submit(hass, result, {CONF_NAME: "Garage", CONF_CIRCUIT_MAX_CURRENT: 20})
    garage = by_title(entry, "Garage")

    result = await add(
        hass,
        entry,
        SUBENTRY_CIRCUIT,
        {CONF_NAME: "Laadgroep", CONF_CIRCUIT_MAX_CURRENT: 16, CONF_PARENT_CIRCUIT: garage},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    charging = by_title(entry, "Laadgroep")
    assert entry.subentries[charging].data == {
        CONF_CIRCUIT_MAX_CURRENT: 16,
        CONF_PARENT_CIRCUIT: garage,
    }

    result = await start(hass, entry, SUBENTRY_CHARGER)
    assert CONF_CIRCUIT in fields(result)
    # A circuit does not take a place in the device order.
    assert suggested(result)[CONF_PRIORITY] == 1
    await submit(hass, result, {**CHARGER, CONF_CIRCUIT: charging})
    await add(hass, entry, SUBENTRY_LOAD, {**LOAD, CONF_CIRCUIT: NO_CIRCUIT})
    assert entry.subentries[by_title(entry, "Laadpaal oprit")].data[CONF_CIRCUIT] == charging
    assert CONF_CIRCUIT not in entry.subentries[by_title(entry, "Boiler")].data


async def test_circuit_cannot_sit_inside_itself(hass: HomeAssistant) -> None:
    entry = make_entry(
        hass, subentries=[subentry(SUBENTRY_CIRCUIT, "Garage", circuit_max_current=20)]
    )
    garage = by_title(entry, "Garage")
    await add(
        hass,
        entry,
        SUBENTRY_CIRCUIT,
        {CONF_NAME: "Laadgroep", CONF_CIRCUIT_MAX_CURRENT: 16, CONF_PARENT_CIRCUIT: garage},
    )
    charging = by_title(entry, "Laadgroep")

    result = await entry.start_subentry_reconfigure_flow(hass, garage)
    # Its own sub-circuit is listed (and refused with a reason); itself is not.
    assert suggested(result) == {CONF_NAME: "Garage", CONF_CIRCUIT_MAX_CURRENT: 20}
    result = await submit(
        hass,
        result,
        {CONF_NAME: "Garage", CONF_CIRCUIT_MAX_CURRENT: 20, CONF_PARENT_CIRCUIT: charging},
    )
    assert_errors(result, SUBENTRY_CIRCUIT, {CONF_PARENT_CIRCUIT: "circuit_cycle"})
    with pytest.raises(InvalidData):
        await submit(
            hass,
            result,
            {CONF_NAME: "Garage", CONF_CIRCUIT_MAX_CURRENT: 20, CONF_PARENT_CIRCUIT: garage},
        )

    result = await submit(hass, result, {CONF_NAME: "Garage", CONF_CIRCUIT_MAX_CURRENT: 25})
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[garage].data == {CONF_CIRCUIT_MAX_CURRENT: 25}


@pytest.mark.parametrize("current", [0.5, 251])
async def test_circuit_current_out_of_range(hass: HomeAssistant, current: float) -> None:
    entry = make_entry(hass)
    result = await add(
        hass, entry, SUBENTRY_CIRCUIT, {CONF_NAME: "Garage", CONF_CIRCUIT_MAX_CURRENT: current}
    )
    assert_errors(result, SUBENTRY_CIRCUIT, {CONF_CIRCUIT_MAX_CURRENT: "current_out_of_range"})


async def test_circuit_removed_while_the_form_was_open(hass: HomeAssistant) -> None:
    entry = make_entry(
        hass, subentries=[subentry(SUBENTRY_CIRCUIT, "Garage", circuit_max_current=20)]
    )
    garage = by_title(entry, "Garage")
    circuit_form = await start(hass, entry, SUBENTRY_CIRCUIT)
    charger_form = await start(hass, entry, SUBENTRY_CHARGER)
    hass.config_entries.async_remove_subentry(entry, garage)

    result = await submit(
        hass,
        circuit_form,
        {CONF_NAME: "Laadgroep", CONF_CIRCUIT_MAX_CURRENT: 16, CONF_PARENT_CIRCUIT: garage},
    )
    assert_errors(result, SUBENTRY_CIRCUIT, {CONF_PARENT_CIRCUIT: "circuit_not_found"})
    result = await submit(hass, charger_form, {**CHARGER, CONF_CIRCUIT: garage})
    assert_errors(result, SUBENTRY_CHARGER, {CONF_CIRCUIT: "circuit_not_found"})


async def test_circuit_name_required(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await add(
        hass, entry, SUBENTRY_CIRCUIT, {CONF_NAME: " ", CONF_CIRCUIT_MAX_CURRENT: 16}
    )
    assert_errors(result, SUBENTRY_CIRCUIT, {CONF_NAME: "name_required"})


def test_circuit_tree() -> None:
    parents: dict[str, str | None] = {
        "a": None,
        "b": "a",
        "c": "b",
        "d": None,
        "loop1": "loop2",
        "loop2": "loop1",
    }
    assert descendants(parents, "a") == {"b", "c"}
    assert descendants(parents, "c") == set()
    assert creates_cycle(parents, "a", "c")
    assert creates_cycle(parents, "a", "a")
    assert not creates_cycle(parents, "c", "d")
    assert not creates_cycle(parents, "d", "a")
    # A loop already in stored data does not hang the search.
    assert descendants(parents, "loop1") == {"loop2"}


# ---------- every type ----------


async def test_every_field_of_every_type_is_translated(hass: HomeAssistant) -> None:
    entry = make_entry(
        hass, 3, subentries=[subentry(SUBENTRY_CIRCUIT, "Garage", circuit_max_current=20)]
    )
    for kind in ALL_TYPES:
        strings = STRINGS["config_subentries"][kind]
        assert strings["initiate_flow"]["user"]
        assert strings["entry_type"]
        result = await start(hass, entry, kind)
        for step in ("user", "reconfigure"):
            assert set(strings["step"][step]["data"]) == fields(result), (kind, step)
            assert set(strings["step"][step]["data_description"]) == fields(result), (kind, step)
        hass.config_entries.subentries.async_abort(result["flow_id"])


async def test_every_type_has_a_reconfigure_step(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    inputs = {
        SUBENTRY_CHARGER: CHARGER,
        SUBENTRY_BATTERY: BATTERY,
        SUBENTRY_HEAT_PUMP: HEAT_PUMP,
        SUBENTRY_PV: PV,
        SUBENTRY_LOAD: LOAD,
        SUBENTRY_CIRCUIT: {CONF_NAME: "Garage", CONF_CIRCUIT_MAX_CURRENT: 20},
    }
    for kind, user_input in inputs.items():
        result = await add(hass, entry, kind, user_input)
        assert result["type"] is FlowResultType.CREATE_ENTRY, kind
    for subentry_id, created in entry.subentries.items():
        result = await entry.start_subentry_reconfigure_flow(hass, subentry_id)
        result = await submit(hass, result, {**inputs[created.subentry_type], CONF_NAME: "Nieuw"})
        assert result["reason"] == "reconfigure_successful", created.subentry_type
    assert {sub.title for sub in entry.subentries.values()} == {"Nieuw"}


@pytest.mark.parametrize("kind", [SUBENTRY_HEAT_PUMP, SUBENTRY_PV, SUBENTRY_LOAD])
async def test_rated_power_starts_empty(hass: HomeAssistant, kind: str) -> None:
    """Home Assistant's form fills a required number field with 0; an optional one stays
    empty, and the flow asks for it where it is needed (issue 15: pre-filled as 0)."""
    result = await start(hass, make_entry(hass), kind)
    schema = result["data_schema"]
    assert schema is not None
    (rated,) = (key for key in schema.schema if str(key) == CONF_RATED_POWER)
    assert isinstance(rated, probatio.Optional)
    assert CONF_RATED_POWER not in suggested(result)
