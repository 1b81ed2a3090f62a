"""A battery added as a Modbus device is planned too, and its plan reaches its registers.

A simulated SunSpec storage inverter runs on loopback; the planner reads its state of
charge from the poll and the guard writes the plan's charge power over Modbus.
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import TYPE_CHECKING, Any

import pytest
from freezegun import freeze_time
from homeassistant.config_entries import ConfigEntryState

from custom_components.netbewust.community.capabilities import (
    battery_soc_pct,
    household_assets,
)
from custom_components.netbewust.const import (
    CONF_BATTERY_CAPACITY,
    CONF_DEVICE_PHASES,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MIN_SOC,
    CONF_MODBUS_HOST,
    CONF_MODBUS_LINK,
    CONF_MODBUS_PORT,
    CONF_MODBUS_PROFILE,
    CONF_MODBUS_UNIT_ID,
    CONF_PRIORITY,
    CONF_STALE_AFTER,
    SUBENTRY_MODBUS,
)
from custom_components.netbewust.core.model import BatterySetpoint
from custom_components.netbewust.core.planning.problem import PlanStatus
from custom_components.netbewust.core.protocol.session import build_capabilities
from tests.clock import clock_now
from tests.modbus.conftest import serving
from tests.modbus.sim_sunspec import SunSpecBatterySim
from tests.modbus.simulator import RegisterBank, Table, from_s16

from .conftest import MAIN_DATA, set_meter, subentry
from .test_planning import NORDPOOL_URL, NOW, PLANNER, hourly_prices

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from custom_components.netbewust.guard.runtime import NetbewustRuntime
    from custom_components.netbewust.planner.runtime import PlanningRuntime
    from tests.modbus.simulator import SimServer

BATTERY_ID = "sub_modbus_battery"
MAX_CHARGE_W = 2000.0
WCHA_MAX_W = SunSpecBatterySim.WCHA_MAX_W
# Cheap in the hour under way (11:00 CET, where the tests' clock stands), dear after it:
# the plan charges now and discharges later.
CHEAP_NOW = hourly_prices(lambda hour: 10.0 if hour == 11 else 300.0)


@pytest.fixture(autouse=True)
def _loopback(socket_enabled: None) -> None:
    """The simulator is a real TCP server on 127.0.0.1."""


@pytest.fixture(autouse=True)
async def _amsterdam(hass: HomeAssistant) -> AsyncIterator[None]:
    """The day of the price fixtures; the clock keeps running, as Modbus timeouts need."""
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    with freeze_time(NOW, tick=True):
        yield


@pytest.fixture
async def storage() -> AsyncIterator[tuple[SimServer, SunSpecBatterySim]]:
    bank = RegisterBank()
    sim = SunSpecBatterySim(bank, soc_pct=50.0, capacity_wh=10000.0)
    async with serving(bank, sim.step) as server:
        yield server, sim


def battery_subentry(port: int, **changes: Any) -> Any:
    data = {
        CONF_MODBUS_PROFILE: "sunspec_battery",
        CONF_MODBUS_LINK: "tcp",
        CONF_MODBUS_HOST: "127.0.0.1",
        CONF_MODBUS_PORT: port,
        CONF_MODBUS_UNIT_ID: 1,
        CONF_PRIORITY: 1,
        CONF_DEVICE_PHASES: ["1"],
        CONF_MAX_CHARGE_POWER: MAX_CHARGE_W,
        CONF_MAX_DISCHARGE_POWER: MAX_CHARGE_W,
        CONF_MIN_SOC: 10,
        CONF_BATTERY_CAPACITY: 10,
        **changes,
    }
    return subentry(BATTERY_ID, SUBENTRY_MODBUS, "Thuisaccu", data)


async def setup_home(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    device: Any,
    *,
    prices: object = CHEAP_NOW,
    meter_w: float = 1000.0,
) -> tuple[NetbewustRuntime, PlanningRuntime]:
    """A planned connection with one Modbus `device` (a subentry)."""
    aioclient_mock.get(NORDPOOL_URL, json=prices)
    set_meter(hass, meter_w)
    # The clock runs in real time (Modbus timeouts need it): on a loaded machine setting up
    # and the first poll can take longer than the default 10 s meter timeout, and the guard
    # would go to its safe state before the reading the tests give it.
    entry = make_entry((device, PLANNER), data={**MAIN_DATA, CONF_STALE_AFTER: 120.0})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    runtime: NetbewustRuntime = entry.runtime_data
    assert runtime.modbus is not None
    assert runtime.planner is not None
    return runtime, runtime.planner


async def poll(hass: HomeAssistant, runtime: NetbewustRuntime) -> None:
    """One poll round, and any re-plan it asks for."""
    assert runtime.modbus is not None
    await runtime.modbus.poll_once()
    await hass.async_block_till_done()


async def written(runtime: NetbewustRuntime) -> None:
    assert runtime.modbus is not None
    writer = runtime.modbus.runners[BATTERY_ID].writer
    assert writer is not None, "nothing was sent to the battery"
    await writer


def first_setpoint(planner: PlanningRuntime) -> object:
    assert planner.plan is not None
    return planner.plan.steps[0].setpoints.get(BATTERY_ID)


def planned_charge_w(planner: PlanningRuntime) -> float | None:
    setpoint = first_setpoint(planner)
    assert isinstance(setpoint, BatterySetpoint)
    return setpoint.power_w


async def test_the_plan_charges_the_modbus_battery_in_the_cheap_hour(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    storage: tuple[SimServer, SunSpecBatterySim],
) -> None:
    server, sim = storage
    runtime, planner = await setup_home(
        hass, make_entry, aioclient_mock, battery_subentry(server.port)
    )
    await poll(hass, runtime)
    plan = planner.plan
    assert plan is not None
    assert plan.status is PlanStatus.OPTIMAL
    assert planner.soc_unknown == frozenset()
    assert plan.steps[0].batteries[BATTERY_ID].charge_w == pytest.approx(MAX_CHARGE_W)
    # Planned from the polled charge: 5 kWh stored, so the cheap hour's 2 kWh fit.
    assert planned_charge_w(planner) == pytest.approx(MAX_CHARGE_W)
    # The dear hours after it draw on the battery instead of the grid.
    later = plan.steps[8]
    assert later.batteries[BATTERY_ID].discharge_w > 0
    # The guard takes the plan at the next reading and writes it over Modbus.
    set_meter(hass, 1100)
    await hass.async_block_till_done()
    await written(runtime)
    at = sim.chain.at
    assert sim.bank.get(1, Table.HOLDING, at(124, 3)) == [3]  # both rate limits active
    charge_pct = from_s16(sim.bank.get(1, Table.HOLDING, at(124, 11))[0]) / 100
    assert charge_pct * WCHA_MAX_W / 100 == pytest.approx(MAX_CHARGE_W)
    assert sim.bounds_w(0.0) == pytest.approx((MAX_CHARGE_W, MAX_CHARGE_W))


async def test_a_battery_without_a_readable_charge_waits_until_it_reports(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bank = RegisterBank()
    sim = SunSpecBatterySim(bank, soc_pct=50.0)
    # No simulation step: the registers hold what the test writes.
    async with serving(bank) as server:
        charge_state = sim.chain.at(124, 6)
        bank.set(1, Table.HOLDING, charge_state, [0xFFFF])  # not implemented: 6553.5 %
        caplog.set_level(logging.INFO)
        runtime, planner = await setup_home(
            hass, make_entry, aioclient_mock, battery_subentry(server.port)
        )
        await poll(hass, runtime)
        await planner.async_replan("test")
        assert planner.plan is not None
        assert planner.plan.status is PlanStatus.OPTIMAL
        assert first_setpoint(planner) is None
        assert planner.soc_unknown == {BATTERY_ID}
        assert "Thuisaccu: state of charge unknown; not planned" in caplog.text
        replans = planner.replans
        await poll(hass, runtime)
        assert planner.replans == replans  # still unknown: nothing new to plan
        # The charge reads again: the next poll re-plans with the battery in it.
        bank.set(1, Table.HOLDING, charge_state, [500])
        await poll(hass, runtime)
        assert planner.replans == replans + 1
        assert planner.soc_unknown == frozenset()
        assert planned_charge_w(planner) == pytest.approx(MAX_CHARGE_W)


async def test_an_unreachable_battery_is_not_planned(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    bank = RegisterBank()
    SunSpecBatterySim(bank)
    async with serving(bank) as server:
        port = server.port
    # The server is gone: every poll fails.
    runtime, planner = await setup_home(hass, make_entry, aioclient_mock, battery_subentry(port))
    await poll(hass, runtime)
    await planner.async_replan("test")
    assert planner.plan is not None
    assert first_setpoint(planner) is None
    assert planner.soc_unknown == {BATTERY_ID}


async def test_a_battery_without_a_capacity_keeps_its_own_mode_quietly(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    storage: tuple[SimServer, SunSpecBatterySim],
) -> None:
    server, _ = storage
    battery = battery_subentry(server.port)
    del battery["data"][CONF_BATTERY_CAPACITY]
    runtime, planner = await setup_home(hass, make_entry, aioclient_mock, battery)
    await poll(hass, runtime)
    await planner.async_replan("test")
    assert first_setpoint(planner) is None
    assert planner.soc_unknown == frozenset()


@pytest.mark.parametrize("capacity", [True, -5, float("nan"), "10"])
async def test_a_bad_capacity_is_logged_and_not_planned(
    hass: HomeAssistant,
    *,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    storage: tuple[SimServer, SunSpecBatterySim],
    caplog: pytest.LogCaptureFixture,
    capacity: object,
) -> None:
    server, _ = storage
    battery = battery_subentry(server.port, **{CONF_BATTERY_CAPACITY: capacity})
    runtime, planner = await setup_home(hass, make_entry, aioclient_mock, battery)
    await poll(hass, runtime)
    assert "Thuisaccu: ignoring battery capacity" in caplog.text
    assert planner.battery_capacity_wh == {}
    await planner.async_replan("test")
    assert first_setpoint(planner) is None


async def test_the_community_is_told_of_the_modbus_battery_and_its_charge(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    storage: tuple[SimServer, SunSpecBatterySim],
) -> None:
    """The capabilities and telemetry a member sends carry a Modbus battery like an
    entity one: its capacity and powers, and its polled charge once known."""
    server, sim = storage
    runtime, _planner = await setup_home(
        hass, make_entry, aioclient_mock, battery_subentry(server.port)
    )
    now = clock_now()
    capabilities = build_capabilities(
        household_assets(runtime, hass.states.get, now, UTC, ean=None, tariff_class=None), now
    )
    assert capabilities.battery is not None
    assert capabilities.battery.energy_wh == pytest.approx(10_000.0)
    assert capabilities.battery.max_charge_w == pytest.approx(MAX_CHARGE_W)
    assert battery_soc_pct(runtime, hass.states.get) == pytest.approx(50.0)
    sim.soc_pct = 80.0
    server.step()
    await poll(hass, runtime)
    assert battery_soc_pct(runtime, hass.states.get) == pytest.approx(80.0, abs=0.2)
