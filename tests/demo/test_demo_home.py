"""The simulated home of demo/ha_config: its meter reacts to the devices Netbewust steers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml_dict

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

PACKAGES = Path(__file__).parents[2] / "demo" / "ha_config" / "packages"
DOMAINS = ("input_boolean", "input_number", "template", "automation")
# The simulated meter adds up to 15 W of noise to every sample.
JITTER_W = 15
SIMULATION_AUTOMATIONS = ["automation.demo_base_load_wanders", "automation.demo_sunshine"]

# The demo's time-pattern triggers keep timers that outlive each test by design.
pytestmark = pytest.mark.parametrize("expected_lingering_timers", [True])


def _demo_config() -> dict[str, Any]:
    """The demo packages merged per domain, as Home Assistant merges packages."""
    merged: dict[str, Any] = {}
    for package in sorted(PACKAGES.glob("*.yaml")):
        for domain, value in load_yaml_dict(package).items():
            if isinstance(value, list):
                merged.setdefault(domain, []).extend(value)
            else:
                merged.setdefault(domain, {}).update(value)
    return merged


@pytest.fixture
async def demo(hass: HomeAssistant) -> None:
    config = _demo_config()
    assert set(config) == set(DOMAINS)
    for domain in DOMAINS:
        assert await async_setup_component(hass, domain, {domain: config[domain]})
    await hass.async_block_till_done()
    # Hold the simulated household still: the wandering base load and the sun would
    # change the readings whenever a test crosses a 10 s or minute boundary.
    await hass.services.async_call(
        "automation", "turn_off", {"entity_id": SIMULATION_AUTOMATIONS}, blocking=True
    )
    await _set_number(hass, "input_number.demo_base_load", 600)


async def _set_number(hass: HomeAssistant, entity_id: str, value: float) -> None:
    domain = entity_id.split(".", maxsplit=1)[0]
    await hass.services.async_call(
        domain, "set_value", {"entity_id": entity_id, "value": value}, blocking=True
    )
    await hass.async_block_till_done()


async def _switch(hass: HomeAssistant, entity_id: str, on: bool) -> None:
    domain = entity_id.split(".", maxsplit=1)[0]
    service = "turn_on" if on else "turn_off"
    await hass.services.async_call(domain, service, {"entity_id": entity_id}, blocking=True)
    await hass.async_block_till_done()


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _value(hass: HomeAssistant, entity_id: str) -> float:
    return float(_state(hass, entity_id))


def _grid_w(hass: HomeAssistant) -> float:
    """Net grid power: import minus export, as the meter reports it."""
    return _value(hass, "sensor.demo_p1_power_import_l1") - _value(
        hass, "sensor.demo_p1_power_export_l1"
    )


@pytest.mark.usefixtures("demo")
async def test_meter_adds_up_the_house_and_reports_whole_amperes(hass: HomeAssistant) -> None:
    # Base load, a car at 16 A and the heat pump running normally.
    assert _grid_w(hass) == pytest.approx(600 + 16 * 230 + 1200, abs=JITTER_W)
    assert _value(hass, "sensor.demo_p1_power_import") == _value(
        hass, "sensor.demo_p1_power_import_l1"
    )
    voltage = _value(hass, "sensor.demo_p1_voltage_l1")
    assert 224 < voltage < 231
    current = _value(hass, "sensor.demo_p1_current_l1")
    assert current == round(current)
    assert current == pytest.approx(_grid_w(hass) / voltage, abs=0.6)
    state = hass.states.get("sensor.demo_p1_power_import_l1")
    assert state is not None
    assert state.attributes["device_class"] == "power"
    assert state.attributes["unit_of_measurement"] == "W"


@pytest.mark.usefixtures("demo")
async def test_charger_follows_its_number_and_pauses_below_6_amperes(
    hass: HomeAssistant,
) -> None:
    await _set_number(hass, "number.demo_charger_max_current", 10)
    assert _value(hass, "input_number.demo_charger_max_current") == 10
    assert _value(hass, "sensor.demo_charger_power") == 2300
    assert _state(hass, "sensor.demo_charger_status") == "C"
    assert _grid_w(hass) == pytest.approx(600 + 2300 + 1200, abs=JITTER_W)

    await _set_number(hass, "number.demo_charger_max_current", 5)
    assert _value(hass, "sensor.demo_charger_power") == 0
    assert _state(hass, "sensor.demo_charger_status") == "B"
    assert _grid_w(hass) == pytest.approx(600 + 1200, abs=JITTER_W)

    await _switch(hass, "input_boolean.demo_car_connected", False)
    assert _state(hass, "sensor.demo_charger_status") == "A"


@pytest.mark.usefixtures("demo")
async def test_the_oven_overloads_a_1x25a_connection(hass: HomeAssistant) -> None:
    await _switch(hass, "input_boolean.demo_oven", True)

    assert _grid_w(hass) == pytest.approx(600 + 4000 + 16 * 230 + 1200, abs=JITTER_W)
    assert _value(hass, "sensor.demo_p1_current_l1") > 25


@pytest.mark.usefixtures("demo")
async def test_sg_ready_relays_set_the_heat_pump_power(hass: HomeAssistant) -> None:
    relay_1, relay_2 = "switch.demo_heat_pump_sg_ready_1", "switch.demo_heat_pump_sg_ready_2"
    await _switch(hass, relay_1, True)
    assert _value(hass, "sensor.demo_heat_pump_power") == 0  # blocked
    await _switch(hass, relay_2, True)
    assert _value(hass, "sensor.demo_heat_pump_power") == 2500  # boost ordered
    await _switch(hass, relay_1, False)
    assert _value(hass, "sensor.demo_heat_pump_power") == 1800  # boost recommended
    assert _state(hass, relay_2) == "on"


@pytest.mark.usefixtures("demo")
async def test_pv_is_capped_by_its_limit_and_exports_surplus(hass: HomeAssistant) -> None:
    await _set_number(hass, "number.demo_charger_max_current", 0)
    await _switch(hass, "switch.demo_heat_pump_sg_ready_1", True)
    await _set_number(hass, "input_number.demo_pv_available", 4000)
    assert _value(hass, "sensor.demo_pv_power") == 4000
    assert _value(hass, "sensor.demo_p1_power_import_l1") == 0
    assert _value(hass, "sensor.demo_p1_power_export_l1") == pytest.approx(3400, abs=JITTER_W)

    await _set_number(hass, "number.demo_pv_power_limit", 500)
    assert _value(hass, "sensor.demo_pv_power") == 500
    assert _grid_w(hass) == pytest.approx(100, abs=JITTER_W)


@pytest.mark.usefixtures("demo")
async def test_battery_follows_its_setpoint_within_its_state_of_charge(
    hass: HomeAssistant,
) -> None:
    await _set_number(hass, "number.demo_battery_setpoint", -2000)
    assert _value(hass, "sensor.demo_battery_power") == -2000
    assert _grid_w(hass) == pytest.approx(600 + 16 * 230 + 1200 - 2000, abs=JITTER_W)

    await _set_number(hass, "input_number.demo_battery_soc", 5)
    assert _value(hass, "sensor.demo_battery_power") == 0  # empty: cannot discharge
    await _set_number(hass, "number.demo_battery_setpoint", 1500)
    assert _value(hass, "sensor.demo_battery_power") == 1500
    await _set_number(hass, "input_number.demo_battery_soc", 100)
    assert _value(hass, "sensor.demo_battery_power") == 0  # full: cannot charge


@pytest.mark.usefixtures("demo")
async def test_base_load_wanders_within_its_bounds_and_the_sun_within_the_array(
    hass: HomeAssistant,
) -> None:
    for _ in range(20):
        await hass.services.async_call(
            "automation",
            "trigger",
            {"entity_id": SIMULATION_AUTOMATIONS, "skip_condition": True},
            blocking=True,
        )
        await hass.async_block_till_done()
        assert 250 <= _value(hass, "input_number.demo_base_load") <= 1000
        assert 0 <= _value(hass, "input_number.demo_pv_available") <= 4000
