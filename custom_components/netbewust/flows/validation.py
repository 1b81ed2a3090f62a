"""Checks the config flows run on the entities a user picks; each returns an error key.

The keys are translation keys in the `error` sections of strings.json, so every check
shows up next to the field it concerns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    PERCENTAGE,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfPower,
    UnitOfTemperature,
)
from homeassistant.core import HomeAssistant, split_entity_id

POWER_UNITS = frozenset(
    {UnitOfPower.MILLIWATT, UnitOfPower.WATT, UnitOfPower.KILO_WATT, UnitOfPower.MEGA_WATT}
)
VOLTAGE_UNITS = frozenset(
    {
        UnitOfElectricPotential.MILLIVOLT,
        UnitOfElectricPotential.VOLT,
        UnitOfElectricPotential.KILOVOLT,
    }
)
CURRENT_UNITS = frozenset({UnitOfElectricCurrent.MILLIAMPERE, UnitOfElectricCurrent.AMPERE})


@dataclass(frozen=True, slots=True)
class SensorRule:
    """What a measuring sensor must look like: its device class and unit."""

    device_class: str
    units: frozenset[str]


POWER_SENSOR = SensorRule(SensorDeviceClass.POWER, POWER_UNITS)
VOLTAGE_SENSOR = SensorRule(SensorDeviceClass.VOLTAGE, VOLTAGE_UNITS)
CURRENT_SENSOR = SensorRule(SensorDeviceClass.CURRENT, CURRENT_UNITS)
SOC_SENSOR = SensorRule(SensorDeviceClass.BATTERY, frozenset({PERCENTAGE}))
# The thermal model works in degrees Celsius.
TEMPERATURE_SENSOR = SensorRule(
    SensorDeviceClass.TEMPERATURE, frozenset({UnitOfTemperature.CELSIUS})
)


@dataclass(frozen=True, slots=True)
class ControlRule:
    """What an entity the guard writes to (or reads a status from) must look like.

    `units` None accepts any unit; otherwise an entity without a unit is accepted
    (input_number helpers often have none) but a different unit is not.
    """

    domains: tuple[str, ...]
    units: frozenset[str] | None = None


CURRENT_NUMBER = ControlRule(("number", "input_number"), CURRENT_UNITS)
POWER_NUMBER = ControlRule(("number", "input_number"), POWER_UNITS)
# Inverters often take their export limit as a percentage of rated power.
POWER_LIMIT_NUMBER = ControlRule(("number", "input_number"), POWER_UNITS | {PERCENTAGE})
ON_OFF_SWITCH = ControlRule(("switch", "input_boolean"))
MODE_SELECT = ControlRule(("select", "input_select"))
PHASE_SWITCH = ControlRule(("select", "input_select", "switch", "input_boolean"))
STATUS_SENSOR = ControlRule(("sensor", "binary_sensor"))


def sensor_error(hass: HomeAssistant, entity_id: str, rule: SensorRule) -> str | None:
    """Why `entity_id` cannot serve as this measurement, or None when it can."""
    state = hass.states.get(entity_id)
    if state is None:
        return "entity_not_found"
    if split_entity_id(entity_id)[0] != "sensor":
        return "wrong_domain"
    if state.attributes.get(ATTR_DEVICE_CLASS) != rule.device_class:
        return "wrong_device_class"
    if state.attributes.get(ATTR_UNIT_OF_MEASUREMENT) not in rule.units:
        return "wrong_unit"
    if not is_finite_number(state.state):
        return "state_not_numeric"
    return None


def control_error(hass: HomeAssistant, entity_id: str, rule: ControlRule) -> str | None:
    """Why `entity_id` cannot be used for this control, or None when it can."""
    state = hass.states.get(entity_id)
    if state is None:
        return "entity_not_found"
    if split_entity_id(entity_id)[0] not in rule.domains:
        return "wrong_domain"
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    if rule.units is not None and unit is not None and unit not in rule.units:
        return "wrong_unit"
    return None


def is_finite_number(raw: str) -> bool:
    try:
        return math.isfinite(float(raw))
    except ValueError:
        return False
