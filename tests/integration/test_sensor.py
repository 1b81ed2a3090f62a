"""Sensors: guard state, limit and source, headroom, device setpoints; no recorder flood."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from custom_components.netbewust.core.limits import LimitSource
from custom_components.netbewust.core.model import (
    BatterySetpoint,
    ChargerSetpoint,
    GuardState,
    HeatPumpSetpoint,
    Limitation,
    LimitReason,
    LoadSetpoint,
    PvSetpoint,
)

from .conftest import (
    BATTERY_ID,
    CHARGER_ID,
    HEAT_PUMP_ID,
    LOAD_ID,
    PV_ID,
    decision,
    set_meter,
    state_value,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import Event, HomeAssistant, State
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from .conftest import ScriptedGuard


@pytest.fixture
async def guard(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> ScriptedGuard:
    entry = make_entry()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return scripted_guard[-1]


def state(hass: HomeAssistant, entity_id: str) -> State:
    found = hass.states.get(entity_id)
    assert found is not None, entity_id
    return found


async def test_sensors_before_any_decision_are_unknown(
    hass: HomeAssistant, guard: ScriptedGuard
) -> None:
    assert state_value(hass, "sensor.home_guard_state") == "unknown"
    assert state_value(hass, "sensor.home_headroom_l1") == "unknown"
    assert state(hass, "sensor.home_guard_state").attributes["reasons"] == []


async def test_decision_shows_up_in_the_sensors(hass: HomeAssistant, guard: ScriptedGuard) -> None:
    guard.decide = lambda reading: decision(
        {
            CHARGER_ID: ChargerSetpoint(current_a=7, phases=1),
            BATTERY_ID: BatterySetpoint(power_w=-800),
            HEAT_PUMP_ID: HeatPumpSetpoint(on=True, power_limit_w=None),
            PV_ID: PvSetpoint(power_limit_w=0),
            LOAD_ID: LoadSetpoint(on=False),
        },
        state=GuardState.LIMITING,
        current_a=(23.2,),
        limit_a=(21.7,),
        source=LimitSource.HOUSEHOLD_PEAK,
        limitations=(
            Limitation(LimitReason.HOUSEHOLD_PEAK, device_id=CHARGER_ID, phase=1),
            Limitation(LimitReason.EXPORT_LIMIT, device_id=PV_ID),
        ),
    )
    set_meter(hass, 5300)
    await hass.async_block_till_done()

    guard_state = state(hass, "sensor.home_guard_state")
    assert guard_state.state == "limiting"
    assert guard_state.attributes["reasons"] == ["export_limit", "household_peak"]
    assert guard_state.attributes["limitations"][0] == {
        "reason": "household_peak",
        "device": "Jan's car",
        "phase": 1,
        "detail": "",
    }
    assert state_value(hass, "sensor.home_limit_source") == "household_peak"
    assert float(state_value(hass, "sensor.home_headroom_l1")) == pytest.approx(-1.5)
    assert float(state_value(hass, "sensor.home_limit_l1")) == pytest.approx(21.7)
    assert float(state_value(hass, "sensor.jan_s_car_current_setpoint")) == 7.0
    assert float(state_value(hass, "sensor.home_battery_power_setpoint")) == -800.0
    assert float(state_value(hass, "sensor.heat_pump_allowed_power")) == 2000.0
    assert float(state_value(hass, "sensor.solar_panels_allowed_power")) == 0.0
    assert float(state_value(hass, "sensor.boiler_allowed_power")) == 0.0


async def test_bulky_limitations_are_not_recorded(
    hass: HomeAssistant, guard: ScriptedGuard
) -> None:
    guard_state = state(hass, "sensor.home_guard_state")
    assert guard_state.state_info is not None
    unrecorded = guard_state.state_info["unrecorded_attributes"]
    assert "limitations" in unrecorded
    assert "reasons" not in unrecorded


async def test_small_headroom_changes_are_throttled(
    hass: HomeAssistant, guard: ScriptedGuard, freezer: FrozenDateTimeFactory
) -> None:
    writes: list[Event] = []
    hass.bus.async_listen(
        "state_changed",
        lambda event: (
            writes.append(event) if event.data["entity_id"] == "sensor.home_headroom_l1" else None
        ),
    )

    def meter_current(current: float) -> None:
        guard.decide = lambda reading: decision(current_a=(current,), timestamp=reading.timestamp)

    for current in (10.0, 10.2, 10.1, 10.3):  # jitter below 0.5 A
        meter_current(current)
        set_meter(hass, current * 230)
        await hass.async_block_till_done()
        freezer.tick(timedelta(seconds=1))
    assert len(writes) == 1
    assert float(state_value(hass, "sensor.home_headroom_l1")) == 14.0

    meter_current(12.0)  # a real change is written at once
    set_meter(hass, 2760)
    await hass.async_block_till_done()
    assert len(writes) == 2
    assert float(state_value(hass, "sensor.home_headroom_l1")) == 12.0

    freezer.tick(timedelta(seconds=61))  # small changes still arrive, once a minute
    meter_current(12.2)
    set_meter(hass, 2800)
    await hass.async_block_till_done()
    assert len(writes) == 3
    assert float(state_value(hass, "sensor.home_headroom_l1")) == pytest.approx(11.8)


async def test_three_phase_connection_has_sensors_per_phase(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> None:
    data = {
        "connection_type": "3x25",
        "power_import_l1": "sensor.l1",
        "power_import_l2": "sensor.l2",
        "power_import_l3": "sensor.l3",
    }
    entry = make_entry((), data)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    scripted_guard[-1].decide = lambda reading: decision(
        current_a=(5.0, 20.0, 30.0), limit_a=(24.0, 24.0, 24.0)
    )
    for phase in (1, 2, 3):
        hass.states.async_set(f"sensor.l{phase}", "1000", {"unit_of_measurement": "W"})
    await hass.async_block_till_done()
    assert [float(state_value(hass, f"sensor.home_headroom_l{p}")) for p in (1, 2, 3)] == [
        19.0,
        4.0,
        -6.0,
    ]
