"""A charger added as a Modbus device is planned like an entity charger.

A simulated Alfen NG9xx runs on loopback: the planner learns from its polled IEC 61851
state whether a car is plugged in, and the plan's current reaches the charger's
max-current register through the guard.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from freezegun.api import TickingDateTimeFactory
from homeassistant.core import State
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import mock_restore_cache_with_extra_data

from custom_components.netbewust.community.capabilities import household_assets
from custom_components.netbewust.const import (
    DOMAIN,
)
from custom_components.netbewust.core.model import ChargerSetpoint
from custom_components.netbewust.core.planning.problem import PlanStatus
from custom_components.netbewust.core.protocol.messages import AssetKind
from custom_components.netbewust.core.protocol.session import build_capabilities
from tests.clock import clock_now
from tests.modbus.conftest import serving
from tests.modbus.sim_chargers import VOLTAGE_V, AlfenSim
from tests.modbus.simulator import RegisterBank, Table, to_f32

from .conftest import set_meter, state_value
from .test_modbus_runtime import ALFEN_MAX_CURRENT, CHARGER_ID, charger_subentry
from .test_planning import NOW, hourly_prices
from .test_planning_modbus import poll
from .test_planning_modbus import setup_home as setup_modbus_home

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from custom_components.netbewust.core.planning.problem import Plan
    from custom_components.netbewust.core.protocol.messages import FlexEnvelope
    from custom_components.netbewust.guard.runtime import NetbewustRuntime
    from custom_components.netbewust.planner.runtime import PlanningRuntime
    from tests.modbus.simulator import SimServer

MAX_CURRENT_A = 10.0  # below the simulator's 16 A safe current: a write shows
ENERGY_ENTITY = "number.oprit_ev_energy_to_add"
DEPARTURE_ENTITY = "time.oprit_departure"
BASE_W = 800.0
# Readings for 12 s: the guard holds a charger's setpoint 10 s after a change.
READINGS = 6
READING_INTERVAL_S = 2.0
# Cheapest in the hour under way (11:00 CET, where the tests' clock stands), cheap in
# the evening, dear in between: 5 kWh fit in the evening, not in the hour under way.
CHEAP_NOW_AND_EVENING = hourly_prices(
    lambda hour: 5.0 if hour == 11 else (20.0 if hour >= 20 else 300.0)
)
NOON = datetime(2026, 1, 15, 11, 0, tzinfo=UTC)  # 12:00 CET, a dear hour
EVENING = datetime(2026, 1, 15, 19, 0, tzinfo=UTC)  # 20:00 CET, cheap again


@pytest.fixture(autouse=True)
def _loopback(socket_enabled: None) -> None:
    """The simulator is a real TCP server on 127.0.0.1."""


@pytest.fixture(autouse=True)
async def clock(hass: HomeAssistant) -> AsyncIterator[TickingDateTimeFactory]:
    """The day of the price fixtures; the clock keeps running, as Modbus timeouts need."""
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    with freeze_time(NOW, tick=True) as frozen:
        assert isinstance(frozen, TickingDateTimeFactory)
        yield frozen


@pytest.fixture
async def alfen() -> AsyncIterator[tuple[SimServer, AlfenSim]]:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.1, safe_current_a=16.0)
    sim.cars[1].phases = 1
    async with serving(bank, sim.step) as server:
        yield server, sim


async def setup_home(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    port: int,
) -> tuple[NetbewustRuntime, PlanningRuntime]:
    return await setup_modbus_home(
        hass,
        make_entry,
        aioclient_mock,
        charger_subentry(port, max_current_a=MAX_CURRENT_A),
        prices=CHEAP_NOW_AND_EVENING,
        meter_w=BASE_W,
    )


async def set_energy(hass: HomeAssistant, kwh: float) -> None:
    await hass.services.async_call(
        "number", "set_value", {"entity_id": ENERGY_ENTITY, "value": kwh}, blocking=True
    )
    await hass.async_block_till_done()


async def written_a(
    hass: HomeAssistant, runtime: NetbewustRuntime, sim: AlfenSim, clock: TickingDateTimeFactory
) -> float:
    """P1 readings (base load plus the car's real draw) every two seconds until the guard
    may change the charger again; what it then wrote to the max-current register."""
    assert runtime.modbus is not None
    runner = runtime.modbus.runners[CHARGER_ID]
    for _ in range(READINGS):
        clock.tick(READING_INTERVAL_S)
        set_meter(hass, round(BASE_W + sim.cars[1].power_w), 0, VOLTAGE_V)
        await hass.async_block_till_done()
        # A write in flight ends before the clock jumps again: a tick as long as the
        # write timeout would time it out (the guard writes at the first reading now).
        if runner.writer is not None:
            await runner.writer
    writer = runner.writer
    assert writer is not None, "nothing was sent to the charger"
    await writer
    return to_f32(sim.bank.get(1, Table.HOLDING, ALFEN_MAX_CURRENT, 2))


def charged_wh(plan: Plan | None) -> float:
    assert plan is not None
    return sum(step.chargers[CHARGER_ID].charge_w for step in plan.steps) / 4


async def test_the_plan_charges_the_modbus_charger_in_the_cheap_quarter_hours(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    alfen: tuple[SimServer, AlfenSim],
    clock: TickingDateTimeFactory,
) -> None:
    server, sim = alfen
    runtime, planner = await setup_home(hass, make_entry, aioclient_mock, server.port)
    await poll(hass, runtime)
    assert planner.planned_plugs == {CHARGER_ID: True}
    await set_energy(hass, 5.0)
    plan = planner.plan
    assert plan is not None
    assert plan.status is PlanStatus.OPTIMAL
    assert charged_wh(plan) == pytest.approx(5000.0)
    # The cheapest hour at full power, the rest in the cheap evening, nothing between.
    max_w = MAX_CURRENT_A * VOLTAGE_V
    assert plan.steps[0].chargers[CHARGER_ID].charge_w == pytest.approx(max_w)
    assert plan.steps[0].setpoints[CHARGER_ID] == ChargerSetpoint(MAX_CURRENT_A, 1)
    dear = [s for s in plan.steps if NOON <= s.start < EVENING]
    assert dear
    assert all(s.chargers[CHARGER_ID].charge_w == 0 for s in dear)
    assert sum(s.chargers[CHARGER_ID].charge_w for s in plan.steps if s.start >= EVENING) > 0
    # The guard takes the plan at the next reading and writes it over Modbus.
    assert await written_a(hass, runtime, sim, clock) == MAX_CURRENT_A
    plan_state = hass.states.get("sensor.home_plan")
    assert plan_state is not None
    assert plan_state.state == "optimal"
    oprit = next(d for d in plan_state.attributes["devices"] if d["device"] == "Oprit")
    assert (oprit["action"], oprit["amount"], oprit["unit"]) == ("charge", 10, "A")
    # Its own next-action sensor, on the charger's device: charging now, paused at noon.
    action = hass.states.get("sensor.oprit_next_action")
    assert action is not None
    assert (action.state, action.attributes["amount"], action.attributes["unit"]) == (
        "charge",
        10,
        "A",
    )
    assert action.attributes["next_change"] == NOON.isoformat()
    assert action.attributes["next_action"] == "pause"
    registry = er.async_get(hass)
    entity = registry.async_get("sensor.oprit_next_action")
    assert entity is not None
    assert entity.unique_id == f"{CHARGER_ID}_next_action_{CHARGER_ID}"
    device = dr.async_get(hass).async_get(entity.device_id or "")
    assert isinstance(device, dr.DeviceEntry)
    assert (device.manufacturer, device.model) == ("Alfen NV", "NG910")

    # A dear quarter hour: the re-plan pauses the car and the charger is told 0 A.
    clock.move_to(NOON.replace(second=30))
    await planner.async_replan("quarter hour")
    at_noon = planner.plan
    assert at_noon is not None
    assert at_noon.steps[0].start == NOON
    assert at_noon.steps[0].setpoints[CHARGER_ID] == ChargerSetpoint(0.0, 1)
    # The 5 kWh move to the evening. Checked on this plan: the ticking readings below may
    # meet a poll that re-plans again.
    assert charged_wh(at_noon) == pytest.approx(5000.0)
    assert await written_a(hass, runtime, sim, clock) == 0.0


async def test_no_session_without_a_car_and_a_replan_when_one_arrives(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    alfen: tuple[SimServer, AlfenSim],
) -> None:
    server, sim = alfen
    sim.cars[1].plugged = False  # state A
    server.step()
    runtime, planner = await setup_home(hass, make_entry, aioclient_mock, server.port)
    await poll(hass, runtime)
    assert planner.planned_plugs == {CHARGER_ID: False}
    assert charged_wh(planner.plan) == 0.0
    replans = planner.replans
    for _ in range(3):
        await poll(hass, runtime)
    assert planner.replans == replans  # nothing changed: polls alone do not re-plan
    # The car arrives: the next poll re-plans with a session for it, once.
    sim.cars[1].plugged = True
    server.step()
    await poll(hass, runtime)
    assert planner.replans == replans + 1
    assert planner.planned_plugs == {CHARGER_ID: True}
    assert charged_wh(planner.plan) == pytest.approx(10000.0)  # the default energy
    # Charging (state C) after connected (B) is the same car: no new re-plan.
    await poll(hass, runtime)
    assert planner.replans == replans + 1


async def test_ev_settings_entities_belong_to_the_modbus_charger(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    alfen: tuple[SimServer, AlfenSim],
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(ENERGY_ENTITY, "7.5"),
                {
                    "native_value": 7.5,
                    "native_min_value": 0.0,
                    "native_max_value": 150.0,
                    "native_step": 0.5,
                    "native_unit_of_measurement": "kWh",
                },
            ),
            (State(DEPARTURE_ENTITY, "06:30:00"), {}),
        ],
    )
    server, _ = alfen
    runtime, planner = await setup_home(hass, make_entry, aioclient_mock, server.port)
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, CHARGER_ID), runtime.entry.entry_id
    )
    assert device is not None
    # The EV settings describe the device as the probe found it, like its sensors.
    assert (device.manufacturer, device.model) == ("Alfen NV", "NG910")
    assert device.entry_type is None
    entities = {
        entry.unique_id: entry.entity_id
        for entry in er.async_entries_for_device(er.async_get(hass), device.id)
    }
    assert entities[f"{CHARGER_ID}_ev_energy"] == ENERGY_ENTITY
    assert entities[f"{CHARGER_ID}_ev_departure"] == DEPARTURE_ENTITY
    assert f"{CHARGER_ID}_ev_guaranteed_energy" in entities
    assert f"{CHARGER_ID}_ev_guaranteed_by" in entities
    # Restored like an entity charger's.
    assert planner.ev[CHARGER_ID].energy_kwh == 7.5
    assert planner.ev[CHARGER_ID].departure == time(6, 30)
    assert float(state_value(hass, ENERGY_ENTITY)) == 7.5

    await poll(hass, runtime)
    replans = planner.replans
    await set_energy(hass, 3.0)
    assert planner.replans == replans + 1
    assert planner.ev[CHARGER_ID].energy_kwh == 3.0
    assert charged_wh(planner.plan) == pytest.approx(3000.0)


async def test_lost_communication_drops_the_session_and_logs_once(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    alfen: tuple[SimServer, AlfenSim],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.netbewust")
    server, _ = alfen
    runtime, planner = await setup_home(hass, make_entry, aioclient_mock, server.port)
    await poll(hass, runtime)
    assert planner.planned_plugs == {CHARGER_ID: True}
    assert charged_wh(planner.plan) > 0
    caplog.clear()
    replans = planner.replans

    await server.stop_serving()
    for _ in range(3):
        await poll(hass, runtime)
    assert runtime.modbus is not None
    assert runtime.modbus.states()[CHARGER_ID].available is False
    # One re-plan for the loss, without a session for the unknown car.
    assert planner.replans == replans + 1
    assert planner.planned_plugs == {CHARGER_ID: None}
    plan = planner.plan
    assert plan is not None
    assert plan.status is PlanStatus.OPTIMAL
    assert charged_wh(plan) == 0.0
    await planner.async_replan("quarter hour")
    assert caplog.text.count("Oprit: charger state unknown") == 1


async def test_the_community_is_offered_the_modbus_chargers_car(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    alfen: tuple[SimServer, AlfenSim],
) -> None:
    """A car on a Modbus charger is flexibility the community plan can use, like one
    on an entity charger: an envelope while plugged in, none once it leaves."""
    server, sim = alfen
    runtime, _planner = await setup_home(hass, make_entry, aioclient_mock, server.port)
    await poll(hass, runtime)
    zone = ZoneInfo(hass.config.time_zone)

    def offered() -> tuple[FlexEnvelope, ...]:
        now = clock_now()
        assets = household_assets(runtime, hass.states.get, now, zone, ean=None, tariff_class=None)
        return build_capabilities(assets, now).envelopes

    (envelope,) = offered()
    assert envelope.asset is AssetKind.EV
    assert envelope.energy_wh == pytest.approx(10000.0)  # the default energy to add
    assert envelope.max_power_w == pytest.approx(MAX_CURRENT_A * VOLTAGE_V)
    assert envelope.min_power_w == pytest.approx(6 * VOLTAGE_V)
    assert envelope.deadline.astimezone(zone).time() == time(7, 0)  # the default departure
    sim.cars[1].plugged = False  # state A
    server.step()
    await poll(hass, runtime)
    assert offered() == ()
