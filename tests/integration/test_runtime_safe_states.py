"""Safe states in Home Assistant, by injecting the fault: a failing guard evaluation, a
failing adapter, a reload, a silent meter, and a switch the household turned off.

Real guard, real target entities; time is frozen and moved one telegram a second.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NoReturn

import pytest
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_state_change_event
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.netbewust.const import CONF_SAFE_CURRENT, DOMAIN
from custom_components.netbewust.core.guard.charger import ChargerController

from .conftest import (
    BATTERY,
    BATTERY_MODE,
    BATTERY_SETPOINT,
    CHARGER,
    CHARGER_CURRENT,
    HEAT_PUMP,
    LOAD,
    LOAD_SWITCH,
    PV,
    state_value,
    subentry,
)
from .test_runtime_guard import VOLTAGE, charger_setpoint, run, telegram

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import Event, EventStateChangedData, HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.netbewust.guard.runtime import NetbewustRuntime

    type SetupHome = Callable[..., Awaitable[MockConfigEntry]]


@pytest.fixture
async def setup_home(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    freezer: FrozenDateTimeFactory,
) -> SetupHome:
    freezer.move_to(datetime(2026, 12, 7, 18, 0, tzinfo=UTC))

    async def _setup(*subentries: object) -> MockConfigEntry:
        entry = make_entry(subentries)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        return entry

    return _setup


async def silence(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: int) -> None:
    for _ in range(seconds):
        freezer.tick(timedelta(seconds=1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()


def issue(hass: HomeAssistant, key: str, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{key}_{entry.entry_id}")


def _engine_bug(*_args: object, **_kwargs: object) -> NoReturn:
    raise ZeroDivisionError("engine bug")


async def test_a_failing_guard_puts_devices_in_their_safe_state_and_recovers(
    hass: HomeAssistant,
    setup_home: SetupHome,
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry: MockConfigEntry = await setup_home(CHARGER, BATTERY)
    await run(hass, freezer, 800, 30)
    assert charger_setpoint(hass) == 16.0

    monkeypatch.setattr(ChargerController, "serve", _engine_bug)
    await run(hass, freezer, 800, 3)
    assert charger_setpoint(hass) == 6.0  # its safe current
    assert state_value(hass, BATTERY_MODE) == "Manual control"
    assert float(state_value(hass, BATTERY_SETPOINT)) == 0.0  # idle
    assert state_value(hass, "sensor.home_guard_state") == "safe_mode"
    assert issue(hass, "guard_error", entry) is not None
    failures = [r for r in caplog.records if "evaluation failed" in r.getMessage()]
    assert len(failures) == 1  # logged once, with the traceback
    assert failures[0].exc_info is not None
    runtime: NetbewustRuntime = entry.runtime_data
    assert runtime.counters.guard_errors == 3

    monkeypatch.undo()
    await run(hass, freezer, 800, 2)
    assert issue(hass, "guard_error", entry) is None
    assert state_value(hass, "sensor.home_guard_state") != "safe_mode"
    await run(hass, freezer, 800, 15)
    assert charger_setpoint(hass) == 16.0


async def test_a_failing_adapter_puts_devices_in_their_safe_state_too(
    hass: HomeAssistant,
    setup_home: SetupHome,
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry: MockConfigEntry = await setup_home(CHARGER)
    await run(hass, freezer, 800, 30)
    monkeypatch.setattr("custom_components.netbewust.guard.runtime.read_device_state", _engine_bug)
    await run(hass, freezer, 800, 2)
    assert charger_setpoint(hass) == 6.0
    assert issue(hass, "guard_error", entry) is not None
    monkeypatch.undo()
    await run(hass, freezer, 800, 2)
    assert issue(hass, "guard_error", entry) is None


async def test_a_reload_never_pauses_a_running_charger(
    hass: HomeAssistant, setup_home: SetupHome, freezer: FrozenDateTimeFactory
) -> None:
    entry: MockConfigEntry = await setup_home(CHARGER, HEAT_PUMP)
    await run(hass, freezer, 800, 30)
    assert charger_setpoint(hass) == 16.0
    written: list[str] = []

    def record(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        written.append(new.state if new else "removed")

    async_track_state_change_event(hass, CHARGER_CURRENT, record)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await silence(hass, freezer, 5)  # the meter has not spoken since the reload
    assert state_value(hass, "sensor.home_guard_state") == "starting"
    assert issue(hass, "stale_meter", entry) is None
    await run(hass, freezer, 800, 20)
    assert state_value(hass, "sensor.home_guard_state") == "normal"
    assert written == []  # never touched: still 16 A
    assert state_value(hass, "input_boolean.heat_pump_sg_ready_1") == "off"  # not blocked


async def battery_run(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, load_w: float, seconds: int
) -> None:
    """A battery without a power sensor: forced, it follows its setpoint; on its own, 0 W."""
    for _ in range(seconds):
        forced = state_value(hass, BATTERY_MODE) == "Manual control"
        battery_w = float(state_value(hass, BATTERY_SETPOINT)) if forced else 0.0
        await telegram(hass, freezer, load_w + battery_w)


async def test_a_reload_keeps_a_discharging_battery_discharging(
    hass: HomeAssistant, setup_home: SetupHome, freezer: FrozenDateTimeFactory
) -> None:
    """Found by the real-Home-Assistant test: after a reload the battery's discharge hid in
    the base load, so the new guard released it and the meter showed the overload again."""
    entry: MockConfigEntry = await setup_home(BATTERY)
    load_w = 29 * VOLTAGE  # 29 A on a 24 A limit: the battery covers 5 A
    await battery_run(hass, freezer, load_w, 30)
    assert float(state_value(hass, BATTERY_SETPOINT)) == -5 * VOLTAGE
    written: list[str] = []

    def record(event: Event[EventStateChangedData]) -> None:
        new = event.data["new_state"]
        written.append(f"{event.data['entity_id']}={new.state if new else 'removed'}")

    async_track_state_change_event(hass, [BATTERY_SETPOINT, BATTERY_MODE], record)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await battery_run(hass, freezer, load_w, 30)
    assert state_value(hass, "sensor.home_guard_state") != "starting"
    assert written == []  # still discharging 1,150 W in manual control, never released


async def test_a_meter_silent_since_setup_goes_safe_after_its_timeout(
    hass: HomeAssistant, setup_home: SetupHome, freezer: FrozenDateTimeFactory
) -> None:
    entry: MockConfigEntry = await setup_home(CHARGER)
    await silence(hass, freezer, 9)
    assert charger_setpoint(hass) == 16.0
    await silence(hass, freezer, 3)
    assert charger_setpoint(hass) == 6.0
    assert issue(hass, "stale_meter", entry) is not None


async def test_the_installer_set_safe_current_is_used(
    hass: HomeAssistant, setup_home: SetupHome, freezer: FrozenDateTimeFactory
) -> None:
    charger = subentry(
        CHARGER["subentry_id"],
        CHARGER["subentry_type"],
        CHARGER["title"],
        {**CHARGER["data"], CONF_SAFE_CURRENT: 10},
    )
    await setup_home(charger)
    await run(hass, freezer, 800, 30)
    await silence(hass, freezer, 12)
    assert charger_setpoint(hass) == 10.0


async def switch(hass: HomeAssistant, on: bool) -> None:
    service = "turn_on" if on else "turn_off"
    await hass.services.async_call(
        "input_boolean", service, {"entity_id": LOAD_SWITCH}, blocking=True
    )


async def boiler_telegrams(hass: HomeAssistant, freezer: FrozenDateTimeFactory, n: int) -> None:
    """The boiler draws its 2 kW while switched on."""
    for _ in range(n):
        boiler_w = 2000 if state_value(hass, LOAD_SWITCH) == "on" else 0
        await telegram(hass, freezer, 800 + boiler_w)


async def test_the_guard_switches_back_on_only_what_it_switched_off(
    hass: HomeAssistant,
    setup_home: SetupHome,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    entry: MockConfigEntry = await setup_home(LOAD, PV)
    await boiler_telegrams(hass, freezer, 5)
    assert state_value(hass, LOAD_SWITCH) == "on"
    # The guard switches it off itself (silent meter) and back on when data returns.
    await silence(hass, freezer, 12)
    assert state_value(hass, LOAD_SWITCH) == "off"
    await boiler_telegrams(hass, freezer, 15)
    assert state_value(hass, LOAD_SWITCH) == "on"

    # The household switches it off: no decision, safe mode or reload turns it on again.
    await switch(hass, on=False)
    await boiler_telegrams(hass, freezer, 15)
    assert state_value(hass, LOAD_SWITCH) == "off"
    await silence(hass, freezer, 12)
    await boiler_telegrams(hass, freezer, 15)
    assert state_value(hass, LOAD_SWITCH) == "off"
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await boiler_telegrams(hass, freezer, 15)
    assert state_value(hass, LOAD_SWITCH) == "off"

    # Switched on again by the household, it stays on: the guard does not fight either way.
    await switch(hass, on=True)
    await boiler_telegrams(hass, freezer, 5)
    assert state_value(hass, LOAD_SWITCH) == "on"


async def test_a_switch_held_off_by_the_guard_is_released_after_a_reload(
    hass: HomeAssistant, setup_home: SetupHome, freezer: FrozenDateTimeFactory
) -> None:
    entry: MockConfigEntry = await setup_home(LOAD)
    await boiler_telegrams(hass, freezer, 3)
    await silence(hass, freezer, 12)
    assert state_value(hass, LOAD_SWITCH) == "off"  # held off by the guard
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await boiler_telegrams(hass, freezer, 15)
    assert state_value(hass, LOAD_SWITCH) == "on"
