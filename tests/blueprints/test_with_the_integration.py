"""The blueprints against the real integration: its guard state sensor and its action."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.netbewust.const import (
    CONF_CONNECTION_TYPE,
    CONF_CURRENT_ENTITY,
    CONF_DEVICE_PHASES,
    CONF_MAX_CURRENT,
    CONF_METER_MODE,
    CONF_MIN_CURRENT,
    CONF_PRIORITY,
    CONF_SAFETY_MARGIN,
    DOMAIN,
    METER_MODE_PER_PHASE,
    SUBENTRY_CHARGER,
)
from custom_components.netbewust.core.guard.reported import REPORT_DWELL

if TYPE_CHECKING:
    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant

    from .conftest import UseBlueprint

CHARGER_CURRENT = "input_number.charger_current"
IMPORT_L1 = "sensor.p1_power_import_l1"
VOLTAGE_L1 = "sensor.p1_voltage_l1"
FIRE_ALARM = "binary_sensor.fire_alarm"


@pytest.fixture
async def home(hass: HomeAssistant, enable_custom_integrations: None) -> MockConfigEntry:
    """A 1x25A home with one charger, metered at 800 W."""
    assert await async_setup_component(
        hass,
        "input_number",
        {"input_number": {"charger_current": {"min": 0, "max": 32, "step": 1, "initial": 16}}},
    )
    await _meter(hass, 800)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        data={
            CONF_CONNECTION_TYPE: "1x25",
            CONF_SAFETY_MARGIN: 1.0,
            CONF_METER_MODE: METER_MODE_PER_PHASE,
            "power_import_l1": IMPORT_L1,
            "voltage_l1": VOLTAGE_L1,
        },
        subentries_data=(
            ConfigSubentryDataWithId(
                subentry_id="charger",
                subentry_type=SUBENTRY_CHARGER,
                title="Driveway charger",
                data={
                    CONF_PRIORITY: 1,
                    CONF_DEVICE_PHASES: ["1"],
                    CONF_CURRENT_ENTITY: CHARGER_CURRENT,
                    CONF_MIN_CURRENT: 6,
                    CONF_MAX_CURRENT: 16,
                },
                unique_id=None,
            ),
        ),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _meter(hass: HomeAssistant, import_w: float) -> None:
    hass.states.async_set(
        VOLTAGE_L1, "230", {"device_class": "voltage", "unit_of_measurement": "V"}
    )
    hass.states.async_set(
        IMPORT_L1, str(import_w), {"device_class": "power", "unit_of_measurement": "W"}
    )
    await hass.async_block_till_done()


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


@pytest.mark.usefixtures("home")
async def test_emergency_input_drives_the_real_emergency_state(
    hass: HomeAssistant, use_blueprint: UseBlueprint
) -> None:
    hass.states.async_set(FIRE_ALARM, "off", {"friendly_name": "Fire alarm"})
    await use_blueprint("emergency_input.yaml", {"emergency_sensors": [FIRE_ALARM]})
    assert _state(hass, "binary_sensor.home_emergency") == "off"

    hass.states.async_set(FIRE_ALARM, "on", {"friendly_name": "Fire alarm"})
    await _meter(hass, 800)

    assert _state(hass, "binary_sensor.home_emergency") == "on"
    assert float(_state(hass, CHARGER_CURRENT)) == 0

    hass.states.async_set(FIRE_ALARM, "off", {"friendly_name": "Fire alarm"})
    await _meter(hass, 800)

    assert _state(hass, "binary_sensor.home_emergency") == "off"


@pytest.mark.usefixtures("home")
async def test_notify_reads_the_real_guard_state_sensor(
    hass: HomeAssistant, use_blueprint: UseBlueprint, freezer: FrozenDateTimeFactory
) -> None:
    phone = async_mock_service(hass, "notify", "mobile_app_phone")
    await use_blueprint(
        "notify_guard_limiting.yaml",
        {
            "guard_state": "sensor.home_guard_state",
            "notify_action": "notify.mobile_app_phone",
            "min_duration": {"seconds": 0},
        },
    )
    await _meter(hass, 800)
    assert _state(hass, "sensor.home_guard_state") == "normal"

    # 6.5 kW is 28 A on a 24 A limit; the charger gives way at once, the sensor reports
    # it once it has lasted (one reading a second).
    freezer.tick(1)
    await _meter(hass, 6500)
    assert float(_state(hass, CHARGER_CURRENT)) < 16
    dwell_s = int(REPORT_DWELL.total_seconds())
    for _ in range(dwell_s - 1):
        freezer.tick(1)
        await _meter(hass, 6500)
    assert _state(hass, "sensor.home_guard_state") == "normal"
    assert phone == []
    freezer.tick(1)
    await _meter(hass, 6500)
    assert _state(hass, "sensor.home_guard_state") == "limiting"
    # The meter here ignores the charger giving way: the overload is the house's own too.
    assert [call.data["message"] for call in phone] == [
        "Limiting Driveway charger because of the main fuse, "
        "household load that no device can offset."
    ]
