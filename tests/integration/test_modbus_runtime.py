"""Modbus devices in Home Assistant: guard device, entities, device registry, availability.

A simulated Alfen charger runs on loopback; the P1 meter's entities are computed from
the simulated car's real draw, so the loop closes through real Modbus traffic.
"""

from __future__ import annotations

import asyncio
import logging
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from homeassistant.config_entries import ConfigEntryState, ConfigSubentry
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components.netbewust.const import (
    CONF_CONNECTION_TYPE,
    CONF_DEVICE_PHASES,
    CONF_MAX_CURRENT,
    CONF_MIN_CURRENT,
    CONF_MODBUS_HOST,
    CONF_MODBUS_IDENTITY,
    CONF_MODBUS_LINK,
    CONF_MODBUS_PORT,
    CONF_MODBUS_PROFILE,
    CONF_MODBUS_UNIT_ID,
    CONF_PRIORITY,
    CONF_SAFE_CURRENT,
    CONF_SAFETY_MARGIN,
    CONF_STALE_AFTER,
    DOMAIN,
    SUBENTRY_MODBUS,
)
from custom_components.netbewust.core.guard.charger import ChargerController
from custom_components.netbewust.core.model import (
    ChargerSetpoint,
    GuardDecision,
    GuardState,
    Setpoint,
)
from custom_components.netbewust.modbus.runtime import ModbusDevices, ModbusRunner
from tests.modbus.conftest import serving
from tests.modbus.sim_chargers import VOLTAGE_V, AlfenSim
from tests.modbus.sim_sunspec import SunSpecMeterSim
from tests.modbus.simulator import RegisterBank, Table, to_f32

from .conftest import BATTERY, BATTERY_ID, set_meter, state_value, subentry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.netbewust.guard.runtime import NetbewustRuntime
    from tests.modbus.simulator import SimServer

CHARGER_ID = "sub_modbus_charger"
METER_ID = "sub_modbus_meter"
LIMIT_A = 24.0  # 1x25 A minus the 1 A margin
ALFEN_MAX_CURRENT = 1210  # Alfen v2.3 section 3.4: "Modbus Slave Max Current", float32


@pytest.fixture(autouse=True)
def _loopback(socket_enabled: None) -> None:
    """The simulator is a real TCP server on 127.0.0.1."""


@pytest.fixture
async def alfen() -> AsyncIterator[tuple[SimServer, AlfenSim]]:
    bank = RegisterBank()
    # The charger's safe current is 16 A: until Netbewust writes, the car takes 16 A.
    sim = AlfenSim(bank, lag_s=0.1, safe_current_a=16.0)
    sim.cars[1].phases = 1
    async with serving(bank, sim.step) as server:
        yield server, sim


def charger_subentry(
    port: int,
    identity: dict[str, Any] | None = None,
    *,
    max_current_a: float = 16,
    safe_current_a: float | None = None,
) -> Any:
    safe = {} if safe_current_a is None else {CONF_SAFE_CURRENT: safe_current_a}
    return subentry(
        CHARGER_ID,
        SUBENTRY_MODBUS,
        "Oprit",
        {
            **safe,
            CONF_MODBUS_PROFILE: "alfen_ng9xx",
            CONF_MODBUS_LINK: "tcp",
            CONF_MODBUS_HOST: "127.0.0.1",
            CONF_MODBUS_PORT: port,
            CONF_MODBUS_UNIT_ID: 1,
            CONF_PRIORITY: 1,
            CONF_DEVICE_PHASES: ["1"],
            CONF_MIN_CURRENT: 6,
            CONF_MAX_CURRENT: max_current_a,
            CONF_MODBUS_IDENTITY: identity
            or {"manufacturer": "Alfen NV", "model": "NG910", "firmware": "6.4.0-4210"},
        },
    )


async def setup_home(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry], port: int
) -> NetbewustRuntime:
    set_meter(hass, 800, 0, VOLTAGE_V)
    entry = make_entry((charger_subentry(port),))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    runtime: NetbewustRuntime = entry.runtime_data
    assert runtime.modbus is not None
    return runtime


async def meter_update(hass: HomeAssistant, sim: AlfenSim, base_w: float) -> None:
    """One P1 telegram: the house's base load plus what the simulated car really draws."""
    set_meter(hass, round(base_w + sim.cars[1].power_w), 0, VOLTAGE_V)
    await hass.async_block_till_done()


async def settle(hass: HomeAssistant, runtime: NetbewustRuntime) -> None:
    """Let queued Modbus writes land and the car follow (its lag is 0.1 s); poll once."""
    assert runtime.modbus is not None
    for runner in runtime.modbus.runners.values():
        if runner.writer is not None:
            await runner.writer
    await asyncio.sleep(0.3)
    await runtime.modbus.poll_once()
    await hass.async_block_till_done()


async def test_load_step_brings_the_simulated_charger_below_the_limit(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    alfen: tuple[SimServer, AlfenSim],
) -> None:
    server, sim = alfen
    runtime = await setup_home(hass, make_entry, server.port)
    assert runtime.modbus is not None
    await runtime.modbus.poll_once()
    assert runtime.modbus.states()[CHARGER_ID].charger_state is not None
    assert sim.cars[1].current_a == 16.0
    base_w = 800.0
    await meter_update(hass, sim, base_w)
    await settle(hass, runtime)

    base_w += 2500  # a kettle: 16 A + 14.3 A on a 24 A limit
    await meter_update(hass, sim, base_w)
    decision = runtime.last_decision
    assert decision is not None
    assert CHARGER_ID in decision.changed
    setpoint = decision.setpoints[CHARGER_ID]
    assert isinstance(setpoint, ChargerSetpoint)
    room_a = LIMIT_A - base_w / VOLTAGE_V
    assert setpoint.current_a <= room_a
    await settle(hass, runtime)

    written_a = to_f32(server.bank.get(1, Table.HOLDING, ALFEN_MAX_CURRENT, 2))
    assert written_a == setpoint.current_a
    assert sim.cars[1].current_a <= room_a
    assert base_w / VOLTAGE_V + sim.cars[1].current_a <= LIMIT_A
    await meter_update(hass, sim, base_w)
    assert runtime.last_decision is not None
    assert not runtime.last_decision.unresolved_overload


async def test_entities_and_device_registry_follow_the_device(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    alfen: tuple[SimServer, AlfenSim],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.netbewust")
    server, sim = alfen
    runtime = await setup_home(hass, make_entry, server.port)
    assert runtime.modbus is not None
    await settle(hass, runtime)

    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, CHARGER_ID), runtime.entry.entry_id
    )
    assert device is not None
    assert (device.manufacturer, device.model, device.sw_version) == (
        "Alfen NV",
        "NG910",
        "6.4.0-4210",
    )
    assert device.via_device_id == runtime.connection_device_id
    entities = {
        entry.unique_id: entry.entity_id
        for entry in er.async_entries_for_device(er.async_get(hass), device.id)
    }
    state_entity = entities[f"{CHARGER_ID}_modbus_charger_state"]
    current_entity = entities[f"{CHARGER_ID}_modbus_current_l1"]
    assert state_value(hass, state_entity) == "charging"
    assert float(state_value(hass, current_entity)) == pytest.approx(sim.cars[1].current_a)

    # The device goes away: unavailable for the guard and in Home Assistant, logged once.
    await server.stop_serving()
    for _ in range(3):
        await runtime.modbus.poll_once()
        await hass.async_block_till_done()
    assert state_value(hass, current_entity) == STATE_UNAVAILABLE
    assert state_value(hass, state_entity) == STATE_UNAVAILABLE
    assert runtime.modbus.states()[CHARGER_ID].available is False
    assert caplog.text.count("is unavailable") == 1

    # ... and comes back on the same port.
    await server.start()
    for _ in range(20):
        await asyncio.sleep(0.1)
        await runtime.modbus.poll_once()
        if runtime.modbus.states()[CHARGER_ID].available:
            break
    await hass.async_block_till_done()
    assert runtime.modbus.states()[CHARGER_ID].available is True
    assert state_value(hass, state_entity) == "charging"
    assert caplog.text.count("available again") == 1


async def test_a_device_unreachable_at_setup_is_retried_and_the_rest_runs_on(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    alfen: tuple[SimServer, AlfenSim],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The home's one entry loads without its Modbus charger: only the charger's entities
    are unavailable, the guard and the battery run on, and the charger is retried with a
    backoff (logged once) until it answers."""
    caplog.set_level(logging.INFO, logger="custom_components.netbewust")
    server, _ = alfen
    await server.stop_serving()
    set_meter(hass, 800, 0, VOLTAGE_V)
    entry = make_entry((charger_subentry(server.port), BATTERY))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    runtime: NetbewustRuntime = entry.runtime_data
    modbus = runtime.modbus
    assert modbus is not None
    await modbus.poll_once()
    await hass.async_block_till_done()

    registered = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    charger = [e.entity_id for e in registered if e.config_subentry_id == CHARGER_ID]
    others = [
        e.entity_id
        for e in registered
        if e.config_subentry_id != CHARGER_ID and e.disabled_by is None
    ]
    assert charger
    assert {state_value(hass, entity_id) for entity_id in charger} == {STATE_UNAVAILABLE}
    assert BATTERY_ID in {e.config_subentry_id for e in registered}
    assert [e for e in others if state_value(hass, e) == STATE_UNAVAILABLE] == []
    set_meter(hass, 900, 0, VOLTAGE_V)
    await hass.async_block_till_done()
    decision = runtime.last_decision
    assert decision is not None
    assert decision.state is not GuardState.SAFE_MODE
    assert modbus.states()[CHARGER_ID].available is False

    # Backing off: the next poll does not knock again, it says when it will.
    await modbus.poll_once()
    [shown] = modbus.diagnostics()
    assert "next attempt in" in str(shown["last_error"])
    assert caplog.text.count("is unavailable") == 1
    assert caplog.text.count(f"Modbus connection to 127.0.0.1:{server.port} lost") == 1

    await server.start()
    for _ in range(40):  # the first backoff is 1 s
        await asyncio.sleep(0.1)
        await modbus.poll_once()
        if modbus.states()[CHARGER_ID].available:
            break
    await hass.async_block_till_done()
    assert modbus.states()[CHARGER_ID].available is True
    assert STATE_UNAVAILABLE not in {state_value(hass, entity_id) for entity_id in charger}
    assert caplog.text.count("available again") == 1


async def test_unknown_profile_fails_setup_with_a_clear_error(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = charger_subentry(502)
    entry = make_entry(
        (
            subentry(
                CHARGER_ID,
                SUBENTRY_MODBUS,
                "Oprit",
                {**broken["data"], CONF_MODBUS_PROFILE: "no_such_brand"},
            ),
        )
    )
    assert not await hass.config_entries.async_setup(entry.entry_id)
    # Translated for the household, naming the entry; the log says what is wrong.
    assert entry.error_reason_translation_key == "invalid_config"
    assert entry.error_reason_translation_placeholders == {"title": entry.title}
    assert "no_such_brand" in caplog.text


def _engine_bug(*_args: object, **_kwargs: object) -> NoReturn:
    raise ZeroDivisionError("engine bug")


@pytest.mark.parametrize("safe", [(None, 6.0), (10.0, 10.0), (0, 0.0)])
async def test_an_unsure_guard_writes_the_installer_set_safe_current_to_the_charger(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    alfen: tuple[SimServer, AlfenSim],
    monkeypatch: pytest.MonkeyPatch,
    safe: tuple[float | None, float],
) -> None:
    """A failing evaluation puts the charger in its safe state: the safe current set in
    its Modbus settings (none: its 6 A minimum; 0 pauses it), written to the charger."""
    safe_current_a, expected_a = safe
    server, sim = alfen
    set_meter(hass, 800, 0, VOLTAGE_V)
    entry = make_entry((charger_subentry(server.port, safe_current_a=safe_current_a),))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    runtime: NetbewustRuntime = entry.runtime_data
    assert runtime.modbus is not None
    await runtime.modbus.poll_once()
    await meter_update(hass, sim, 800.0)
    await settle(hass, runtime)
    assert sim.cars[1].current_a == 16.0  # room for all of it

    monkeypatch.setattr(ChargerController, "serve", _engine_bug)
    await meter_update(hass, sim, 900.0)
    decision = runtime.last_decision
    assert decision is not None
    assert decision.state is GuardState.SAFE_MODE
    assert decision.setpoints[CHARGER_ID] == ChargerSetpoint(expected_a, 1)
    await settle(hass, runtime)
    written_a = to_f32(server.bank.get(1, Table.HOLDING, ALFEN_MAX_CURRENT, 2))
    assert written_a == expected_a
    assert sim.cars[1].current_a == expected_a


@pytest.mark.parametrize("safe_current_a", [3.0, 20.0])
async def test_a_safe_current_outside_the_chargers_range_fails_setup_with_a_clear_error(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    safe_current_a: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = make_entry((charger_subentry(502, safe_current_a=safe_current_a),))
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.error_reason_translation_key == "invalid_config"
    assert "safe current" in caplog.text


def socket_subentry(port: int, unit_id: int) -> ConfigSubentry:
    data = dict(charger_subentry(port)["data"])
    data[CONF_MODBUS_UNIT_ID] = unit_id
    return ConfigSubentry(
        data=MappingProxyType(data),
        subentry_type=SUBENTRY_MODBUS,
        title=f"Socket {unit_id}",
        unique_id=None,
        subentry_id=f"socket_{unit_id}",
    )


def not_yet_written(runner: ModbusRunner) -> Setpoint | None:
    return runner.unwritten  # read afresh: the writer changes it between awaits


async def test_two_sockets_share_one_connection_and_a_failed_write_is_retried() -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, sockets=(1, 2), lag_s=0.05)
    async with serving(bank, sim.step) as server:
        modbus = ModbusDevices.from_subentries(
            [socket_subentry(server.port, 1), socket_subentry(server.port, 2)]
        )
        try:
            assert modbus.connections == 1
            await modbus.poll_once()
            assert all(state.available for state in modbus.states().values())

            modbus.apply("socket_1", ChargerSetpoint(current_a=8.0, phases=1))
            modbus.apply("socket_2", ChargerSetpoint(current_a=10.0, phases=1))
            for runner in modbus.runners.values():
                assert runner.writer is not None
                await runner.writer
            assert to_f32(bank.get(1, Table.HOLDING, ALFEN_MAX_CURRENT, 2)) == 8.0
            assert to_f32(bank.get(2, Table.HOLDING, ALFEN_MAX_CURRENT, 2)) == 10.0

            # The write fails while the charger is away; it lands once the charger answers.
            await server.stop_serving()
            assert modbus.apply("socket_1", ChargerSetpoint(current_a=7.0, phases=1))
            runner = modbus.runners["socket_1"]
            assert runner.writer is not None
            await runner.writer
            assert runner.unwritten == ChargerSetpoint(current_a=7.0, phases=1)
            await server.start()
            for _ in range(30):
                await asyncio.sleep(0.1)
                await modbus.poll_once()
                if runner.writer is not None:
                    await runner.writer
                if not_yet_written(runner) is None:
                    break
            assert not_yet_written(runner) is None
            assert to_f32(bank.get(1, Table.HOLDING, ALFEN_MAX_CURRENT, 2)) == 7.0
            assert modbus.apply("not_modbus", ChargerSetpoint(current_a=7.0, phases=1)) is False
        finally:
            await modbus.stop()
        assert modbus.connections == 0


def latest_decision(runtime: NetbewustRuntime) -> GuardDecision | None:
    return runtime.last_decision  # read afresh: polls decide between awaits


async def test_modbus_meter_replaces_p1_entities_and_drives_the_charger(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    alfen: tuple[SimServer, AlfenSim],
) -> None:
    server, sim = alfen
    meter_bank = RegisterBank()
    meter = SunSpecMeterSim(meter_bank)
    async with serving(meter_bank) as meter_server:
        meter_subentry = subentry(
            METER_ID,
            SUBENTRY_MODBUS,
            "Meter",
            {
                CONF_MODBUS_PROFILE: "sunspec_meter",
                CONF_MODBUS_LINK: "tcp",
                CONF_MODBUS_HOST: "127.0.0.1",
                CONF_MODBUS_PORT: meter_server.port,
                CONF_MODBUS_UNIT_ID: 1,
                CONF_PRIORITY: 9,
                CONF_DEVICE_PHASES: ["1", "2", "3"],
            },
        )
        no_p1 = {CONF_CONNECTION_TYPE: "3x25", CONF_SAFETY_MARGIN: 1.0, CONF_STALE_AFTER: 10.0}
        entry = make_entry((charger_subentry(server.port), meter_subentry), data=no_p1)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        runtime: NetbewustRuntime = entry.runtime_data
        assert runtime.modbus is not None
        assert runtime.last_decision is None

        # The car draws 16 A on L1; a 5.5 kW load on L1 comes on: 16 + 23.9 A on 24 A.
        meter.set_phases((16 * VOLTAGE_V + 5500.0, 0.0, 0.0))
        await runtime.modbus.poll_once()
        await hass.async_block_till_done()

        decision = latest_decision(runtime)
        assert decision is not None
        assert runtime.counters.meter_events >= 1
        assert decision.phase_current_a[0] == pytest.approx(16 + 5500 / VOLTAGE_V, abs=0.2)
        setpoint = decision.setpoints[CHARGER_ID]
        assert isinstance(setpoint, ChargerSetpoint)
        assert setpoint.current_a < 16.0
        await settle(hass, runtime)
        assert sim.cars[1].current_a == setpoint.current_a

        # The meter goes away: no reading reaches the guard (it goes stale on its own).
        await meter_server.stop_serving()
        await runtime.modbus.poll_once()
        assert runtime.modbus.runners[METER_ID].reachable is False
        events = runtime.counters.meter_events
        await runtime.modbus.poll_once()
        assert runtime.counters.meter_events == events
