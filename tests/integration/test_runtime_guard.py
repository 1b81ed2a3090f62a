"""End to end with the real guard: P1 states in, what the devices' entities receive out.

Time is frozen and moved by hand, one telegram a second like a DSMR 5 meter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.netbewust.const import DOMAIN
from custom_components.netbewust.core.guard.reported import REPORT_DWELL
from custom_components.netbewust.core.limits import ExternalLimit, LimitInterval, LimitSource

from .conftest import (
    BATTERY,
    BATTERY_MODE,
    BATTERY_SETPOINT,
    CHARGER,
    CHARGER_CURRENT,
    CHARGER_POWER,
    HEAT_PUMP,
    HP_SG1,
    LOAD,
    LOAD_SWITCH,
    PV,
    PV_LIMIT,
    set_meter,
    state_value,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.netbewust.guard.runtime import NetbewustRuntime

VOLTAGE = 230.0


async def telegram(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    import_w: float,
    export_w: float = 0,
    seconds: float = 1,
) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    set_meter(hass, round(import_w), round(export_w), VOLTAGE)
    await hass.async_block_till_done()


def charger_draws(hass: HomeAssistant, current_a: float) -> None:
    hass.states.async_set(
        CHARGER_POWER, str(round(current_a * VOLTAGE)), {"unit_of_measurement": "W"}
    )


def charger_setpoint(hass: HomeAssistant) -> float:
    return float(state_value(hass, CHARGER_CURRENT))


async def run(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, base_w: float, seconds: int
) -> None:
    """A car that follows its setpoint within a second, up to 16 A, one telegram a second."""
    for _ in range(seconds):
        drawn_a = min(charger_setpoint(hass), 16.0)
        charger_draws(hass, drawn_a)
        await telegram(hass, freezer, base_w + drawn_a * VOLTAGE)


@pytest.fixture
async def home(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    freezer: FrozenDateTimeFactory,
) -> MockConfigEntry:
    freezer.move_to(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    # The household switched the boiler off: the guard leaves it so (see the switch tests).
    await hass.services.async_call(
        "input_boolean", "turn_off", {"entity_id": LOAD_SWITCH}, blocking=True
    )
    entry = make_entry((CHARGER, BATTERY, HEAT_PUMP, PV, LOAD))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_charger_gives_way_when_a_large_load_switches_on(
    hass: HomeAssistant, home: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    # Until the meter has spoken the guard leaves the charger as it is; it then decides.
    base_w = 800.0
    await run(hass, freezer, base_w, 30)
    assert charger_setpoint(hass) == 16.0

    # A 2.5 kW kettle: the connection would carry 16 + 14.3 A on a 24 A limit.
    base_w += 2500
    await telegram(hass, freezer, base_w + 16 * VOLTAGE)
    room_a = 24.0 - base_w / VOLTAGE
    # The charger is told at this very telegram; only the reported state waits.
    assert 6.0 <= charger_setpoint(hass) <= room_a
    assert float(state_value(hass, "sensor.home_headroom_l1")) < 0
    assert state_value(hass, "sensor.home_guard_state") == "normal"
    await run(hass, freezer, base_w, int(REPORT_DWELL.total_seconds()) - 2)
    assert state_value(hass, "sensor.home_guard_state") == "normal"
    await run(hass, freezer, base_w, 2)
    assert 6.0 <= charger_setpoint(hass) <= room_a
    assert state_value(hass, "sensor.home_guard_state") == "limiting"


async def test_charger_pauses_when_6_a_does_not_fit(
    hass: HomeAssistant, home: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await run(hass, freezer, 800, 30)
    assert charger_setpoint(hass) == 16.0
    await telegram(hass, freezer, 800 + 4000 + 16 * VOLTAGE)  # a 4 kW load
    # 20.9 A of other load leaves 3.1 A: below the 6 A minimum, so the charger pauses.
    assert charger_setpoint(hass) == 0.0


async def test_stale_meter_safe_mode_and_recovery(
    hass: HomeAssistant, home: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await run(hass, freezer, 800, 30)
    assert charger_setpoint(hass) > 0

    for _ in range(12):  # the meter goes quiet
        freezer.tick(timedelta(seconds=1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()

    assert state_value(hass, "sensor.home_guard_state") == "safe_mode"
    assert state_value(hass, "sensor.home_headroom_l1") == "unavailable"
    assert charger_setpoint(hass) == 6.0  # its safe current: by default its minimum
    assert state_value(hass, BATTERY_MODE) == "Manual control"
    assert float(state_value(hass, BATTERY_SETPOINT)) == 0.0  # idle
    assert state_value(hass, HP_SG1) == "on"  # SG-Ready blocked, for at most 2 h
    registry = ir.async_get(hass)
    assert registry.async_get_issue(DOMAIN, f"stale_meter_{home.entry_id}") is not None

    await run(hass, freezer, 800, 3)
    assert state_value(hass, "sensor.home_guard_state") != "safe_mode"
    assert float(state_value(hass, "sensor.home_headroom_l1")) > 0
    assert registry.async_get_issue(DOMAIN, f"stale_meter_{home.entry_id}") is None
    await run(hass, freezer, 800, 30)
    assert charger_setpoint(hass) > 0  # the heat pump keeps its minimum off time


async def test_unavailable_meter_is_not_read_as_zero(
    hass: HomeAssistant, home: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    charger_draws(hass, 16)
    await telegram(hass, freezer, 800 + 16 * VOLTAGE)
    for _ in range(12):
        freezer.tick(timedelta(seconds=1))
        async_fire_time_changed(hass)
        set_meter(hass, "unavailable", "unavailable", "unavailable")
        await hass.async_block_till_done()
    # Updates that carry no data do not keep the guard out of safe mode.
    assert state_value(hass, "sensor.home_guard_state") == "safe_mode"
    assert charger_setpoint(hass) == 6.0


async def test_export_limit_caps_the_pv_inverter(
    hass: HomeAssistant, home: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    runtime: NetbewustRuntime = home.runtime_data
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    runtime.guard.set_external_limit(
        ExternalLimit(
            source=LimitSource.DSO,
            issued_at=now,
            expires_at=now + timedelta(hours=1),
            intervals=(LimitInterval(now, now + timedelta(hours=1), max_export_w=0),),
        )
    )
    for _ in range(3):
        await telegram(hass, freezer, 0, export_w=2500)
    assert float(state_value(hass, PV_LIMIT)) < 4000.0


async def test_emergency_service_puts_devices_in_their_safe_state(
    hass: HomeAssistant, home: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await run(hass, freezer, 800, 30)
    assert charger_setpoint(hass) > 0
    await hass.services.async_call(
        DOMAIN, "set_emergency", {"active": True, "reason": "fire alarm"}, blocking=True
    )
    await hass.async_block_till_done()
    assert charger_setpoint(hass) == 0.0
    assert state_value(hass, "sensor.home_limit_source") == "emergency"
    assert state_value(hass, "binary_sensor.home_emergency") == "on"
    # No repair issue: an emergency is not a broken meter.
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"stale_meter_{home.entry_id}") is None

    await hass.services.async_call(DOMAIN, "set_emergency", {"active": False}, blocking=True)
    await telegram(hass, freezer, 800)
    assert state_value(hass, "sensor.home_guard_state") != "safe_mode"


async def test_battery_discharges_to_cover_an_overload(
    hass: HomeAssistant, home: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    await run(hass, freezer, 800, 30)
    # 6.2 kW of household load alone is 27 A on a 24 A limit: only the battery
    # can help, and the charger pauses.
    await run(hass, freezer, 6200, 3)
    assert float(state_value(hass, BATTERY_SETPOINT)) < 0
    assert state_value(hass, BATTERY_MODE) == "Manual control"
    assert charger_setpoint(hass) == 0.0
