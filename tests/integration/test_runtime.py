"""The runtime's wiring: meter states in, the guard's setpoints out to real entities.

A scripted guard stands in for the engine so each test controls the decision and
checks what Home Assistant's entities receive.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from custom_components.netbewust.const import CONF_CAN_SWITCH_PHASES
from custom_components.netbewust.core.model import (
    BatterySetpoint,
    ChargerSetpoint,
    ChargerState,
    HeatPumpSetpoint,
    LoadSetpoint,
    PvSetpoint,
)

from .conftest import (
    BATTERY,
    BATTERY_ID,
    BATTERY_MODE,
    BATTERY_SETPOINT,
    CHARGER,
    CHARGER_CURRENT,
    CHARGER_ID,
    CHARGER_THREE_PHASE,
    EXPORT_L1,
    HEAT_PUMP,
    HEAT_PUMP_ID,
    HP_SG1,
    HP_SG2,
    IMPORT_L1,
    LOAD,
    LOAD_ID,
    LOAD_SWITCH,
    PV,
    PV_ID,
    PV_LIMIT,
    decision,
    set_meter,
    state_value,
    subentry,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.core import HomeAssistant, ServiceCall
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.netbewust.core.model import MeterReading, Setpoint
    from custom_components.netbewust.guard.runtime import NetbewustRuntime

    from .conftest import ScriptedGuard


@pytest.fixture
async def guard(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> ScriptedGuard:
    switching = subentry(
        CHARGER_ID,
        CHARGER["subentry_type"],
        CHARGER["title"],
        {**CHARGER["data"], CONF_CAN_SWITCH_PHASES: True},
    )
    entry = make_entry((switching, BATTERY, HEAT_PUMP, PV, LOAD))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return scripted_guard[-1]


def runtime_of(hass: HomeAssistant) -> NetbewustRuntime:
    (entry,) = hass.config_entries.async_entries("netbewust")
    return entry.runtime_data  # type: ignore[no-any-return]


def answer(guard: ScriptedGuard, setpoints: dict[str, Setpoint]) -> None:
    guard.decide = lambda reading: decision(setpoints, timestamp=reading.timestamp)


async def test_charger_current_and_phases_reach_the_entities(
    hass: HomeAssistant, guard: ScriptedGuard
) -> None:
    answer(guard, {CHARGER_ID: ChargerSetpoint(current_a=8, phases=3)})
    set_meter(hass, 6000)
    await hass.async_block_till_done()

    assert float(state_value(hass, CHARGER_CURRENT)) == 8.0
    assert state_value(hass, CHARGER_THREE_PHASE) == "on"

    answer(guard, {CHARGER_ID: ChargerSetpoint(current_a=0, phases=1)})
    set_meter(hass, 7000)
    await hass.async_block_till_done()
    assert float(state_value(hass, CHARGER_CURRENT)) == 0.0
    assert state_value(hass, CHARGER_THREE_PHASE) == "off"


async def test_battery_setpoint_and_mode(hass: HomeAssistant, guard: ScriptedGuard) -> None:
    answer(guard, {BATTERY_ID: BatterySetpoint(power_w=-1500)})
    set_meter(hass, 6000)
    await hass.async_block_till_done()
    assert float(state_value(hass, BATTERY_SETPOINT)) == -1500.0
    assert state_value(hass, BATTERY_MODE) == "Manual control"
    assert float(state_value(hass, "sensor.home_battery_power_setpoint")) == -1500.0

    # None hands the battery back to its own mode.
    answer(guard, {BATTERY_ID: BatterySetpoint(power_w=None)})
    set_meter(hass, 1000)
    await hass.async_block_till_done()
    assert state_value(hass, BATTERY_MODE) == "Self consumption"
    assert float(state_value(hass, BATTERY_SETPOINT)) == -1500.0
    # Its own mode has no setpoint to show: unavailable, not an unknown number of watts.
    assert state_value(hass, "sensor.home_battery_power_setpoint") == "unavailable"

    answer(guard, {BATTERY_ID: BatterySetpoint(power_w=800)})
    set_meter(hass, 1100)
    await hass.async_block_till_done()
    assert float(state_value(hass, "sensor.home_battery_power_setpoint")) == 800.0


async def test_heat_pump_sg_ready_pv_limit_and_load(
    hass: HomeAssistant, guard: ScriptedGuard
) -> None:
    answer(
        guard,
        {
            HEAT_PUMP_ID: HeatPumpSetpoint(on=False),
            PV_ID: PvSetpoint(power_limit_w=1200),
            LOAD_ID: LoadSetpoint(on=False),
        },
    )
    set_meter(hass, 200, export_w=2500)
    await hass.async_block_till_done()
    # SG-Ready "blocked": relay 1 closed, relay 2 open.
    assert state_value(hass, HP_SG1) == "on"
    assert state_value(hass, HP_SG2) == "off"
    assert float(state_value(hass, PV_LIMIT)) == 1200.0
    assert state_value(hass, LOAD_SWITCH) == "off"

    answer(
        guard,
        {
            HEAT_PUMP_ID: HeatPumpSetpoint(on=True),
            PV_ID: PvSetpoint(power_limit_w=None),
            LOAD_ID: LoadSetpoint(on=True),
        },
    )
    set_meter(hass, 300)
    await hass.async_block_till_done()
    assert state_value(hass, HP_SG1) == "off"
    assert float(state_value(hass, PV_LIMIT)) == 4000.0  # unrestricted: rated power
    assert state_value(hass, LOAD_SWITCH) == "on"


async def test_only_changed_devices_are_written(hass: HomeAssistant, guard: ScriptedGuard) -> None:
    guard.decide = lambda reading: decision(
        {CHARGER_ID: ChargerSetpoint(10, 1), LOAD_ID: LoadSetpoint(on=False)},
        changed=frozenset({CHARGER_ID}),
    )
    set_meter(hass, 5000)
    await hass.async_block_till_done()
    assert float(state_value(hass, CHARGER_CURRENT)) == 10.0
    assert state_value(hass, LOAD_SWITCH) == "on"


async def test_one_telegram_is_one_decision(hass: HomeAssistant, guard: ScriptedGuard) -> None:
    set_meter(hass, 1000)  # three entities change in one go
    await hass.async_block_till_done()
    assert len(guard.readings) == 1
    set_meter(hass, 1100)
    await hass.async_block_till_done()
    assert len(guard.readings) == 2


async def test_reading_converts_units_and_nets_export(
    hass: HomeAssistant, guard: ScriptedGuard
) -> None:
    set_meter(hass, "1.5", export_w="0.25", voltage_v=231.5, unit="kW")
    await hass.async_block_till_done()
    reading = guard.readings[-1]
    (phase,) = reading.phases
    assert phase.power_w == pytest.approx(1250.0)
    assert phase.voltage_v == 231.5
    assert reading.total_power_w == pytest.approx(1250.0)

    devices = guard.device_states[-1]
    assert devices[CHARGER_ID].charger_state is ChargerState.C
    assert devices[CHARGER_ID].power_w == 3680.0
    assert devices[CHARGER_ID].active_phases == 1
    assert devices[BATTERY_ID].soc_pct == 50.0


@pytest.mark.parametrize(
    ("import_value", "reason"),
    [
        ("unavailable", "unavailable"),
        ("unknown", "unknown"),
        ("garbage", "not_a_number"),
        ("nan", "not_finite"),
        ("inf", "not_finite"),
        ("-5", "out_of_range"),
        ("250000", "out_of_range"),
    ],
)
async def test_bad_meter_states_become_missing_never_a_crash(
    hass: HomeAssistant, guard: ScriptedGuard, import_value: str, reason: str
) -> None:
    set_meter(hass, import_value)
    await hass.async_block_till_done()
    reading: MeterReading = guard.readings[-1]
    assert reading.phases[0].power_w is None
    assert reading.total_power_w is None
    assert reading.phases[0].voltage_v == 230.0  # the good values still count
    assert runtime_of(hass).rejections.by_reason[reason] >= 1


async def test_unsupported_unit_and_missing_export_entity(
    hass: HomeAssistant, guard: ScriptedGuard
) -> None:
    set_meter(hass, 1000)
    hass.states.async_set(IMPORT_L1, "1000", {"unit_of_measurement": "BTU/h"})
    await hass.async_block_till_done()
    assert guard.readings[-1].phases[0].power_w is None

    hass.states.async_set(IMPORT_L1, "800", {"unit_of_measurement": "W"})
    hass.states.async_remove(EXPORT_L1)
    await hass.async_block_till_done()
    # Import alone is not net power when the export half is unknown.
    assert guard.readings[-1].phases[0].power_w is None
    assert runtime_of(hass).rejections.by_reason["missing_entity"] >= 1


async def test_number_limits_are_respected_and_reported(
    hass: HomeAssistant, guard: ScriptedGuard, caplog: pytest.LogCaptureFixture
) -> None:
    # A PV limit above the entity's max is clamped down, the safe direction.
    answer(guard, {PV_ID: PvSetpoint(power_limit_w=9000)})
    set_meter(hass, 100)
    await hass.async_block_till_done()
    assert float(state_value(hass, PV_LIMIT)) == 4000.0
    # 4000 W is what the entity already shows, so nothing was sent or clamped.
    assert runtime_of(hass).counters.commands_clamped == 0

    answer(guard, {CHARGER_ID: ChargerSetpoint(current_a=40, phases=1)})
    set_meter(hass, 200)
    await hass.async_block_till_done()
    assert float(state_value(hass, CHARGER_CURRENT)) == 32.0
    assert runtime_of(hass).counters.commands_clamped == 1
    assert "accepts no 40" in caplog.text


async def test_failing_service_call_is_logged_once_and_recovers(
    hass: HomeAssistant, guard: ScriptedGuard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The switch's integration lost its service (removed, crashed, reloading).
    hass.services.async_remove("input_boolean", "turn_off")
    answer(guard, {LOAD_ID: LoadSetpoint(on=False)})
    for value in (1000, 1100):
        set_meter(hass, value)
        await hass.async_block_till_done()
    counters = runtime_of(hass).counters
    assert counters.commands_failed == 2
    assert counters.failing_entities == {LOAD_SWITCH}
    assert caplog.text.count(f"turn_off on {LOAD_SWITCH} failed") == 1

    received: list[ServiceCall] = []
    hass.services.async_register("input_boolean", "turn_off", received.append)
    set_meter(hass, 1200)
    await hass.async_block_till_done()
    assert [call.data["entity_id"] for call in received] == [LOAD_SWITCH]
    assert counters.failing_entities == set()
    assert "accepts commands again" in caplog.text


async def test_setpoint_that_does_not_fit_the_device_is_rejected(
    hass: HomeAssistant, guard: ScriptedGuard, caplog: pytest.LogCaptureFixture
) -> None:
    answer(guard, {CHARGER_ID: LoadSetpoint(on=False)})
    set_meter(hass, 1000)
    await hass.async_block_till_done()
    assert runtime_of(hass).counters.actuator_errors == 1
    assert "cannot apply" in caplog.text
    assert float(state_value(hass, CHARGER_CURRENT)) == 16.0
