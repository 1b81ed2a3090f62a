"""The Alfen profile against a simulator written from Alfen's register document."""

from __future__ import annotations

import asyncio

import pytest

from custom_components.netbewust.core.model import ChargerSetpoint, ChargerState
from custom_components.netbewust.modbus import (
    ModbusDevice,
    ModbusDeviceException,
    ModbusTransport,
    Profile,
    probe,
)

from .conftest import device_for, serving, settings_for
from .sim_chargers import AlfenSim
from .simulator import RegisterBank, Table, to_f32


async def test_probe_reads_identity_from_station_unit(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank)
    async with serving(bank, sim.step) as server:
        identity = await probe(settings_for(server), 1, profiles["alfen_ng9xx"])
    assert identity.manufacturer == "Alfen NV"
    assert identity.model == "NG910"
    assert identity.firmware == "6.4.0-4210"
    assert identity.serial == "ACE0012345"


async def test_reads_map_to_engine_types(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0)
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["alfen_ng9xx"], 1, "alfen")
        await device.apply(ChargerSetpoint(current_a=10.0, phases=3))
        await asyncio.sleep(0.1)
        snapshot = await device.read()
    state = snapshot.state
    assert state.device_id == "alfen"
    assert state.charger_state is ChargerState.C
    assert snapshot.raw_charger_state == "C2"
    assert state.phase_currents_a == (10.0, 10.0, 10.0)
    assert state.power_w == 3 * 10.0 * 230.0
    assert state.active_phases == 3
    assert snapshot.values["safe_current"] == 6.0


async def test_writes_max_current_as_float_and_car_follows_after_lag(
    profiles: dict[str, Profile],
) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.2)
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["alfen_ng9xx"], 1)
        await device.apply(ChargerSetpoint(current_a=13.0, phases=3))
        assert to_f32(bank.get(1, Table.HOLDING, 1210, 2)) == 13.0
        assert sim.cars[1].current_a != 13.0  # not yet: the device's own lag
        await asyncio.sleep(0.4)
        snapshot = await device.read()
    assert snapshot.state.phase_currents_a == (13.0, 13.0, 13.0)
    assert snapshot.values["max_current_valid_time"] is not None


async def test_pause_writes_zero_and_phase_switch_writes_1215(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0)
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["alfen_ng9xx"], 1)
        await device.apply(ChargerSetpoint(current_a=8.0, phases=1))
        assert bank.get(1, Table.HOLDING, 1215) == [1]
        await device.apply(ChargerSetpoint(current_a=4.0, phases=1))  # below 6 A: pause
        assert to_f32(bank.get(1, Table.HOLDING, 1210, 2)) == 0.0
        await asyncio.sleep(0.1)
        snapshot = await device.read()
    assert snapshot.state.phase_currents_a == (0.0, 0.0, 0.0)
    assert snapshot.raw_charger_state == "C1"
    assert snapshot.state.charger_state is ChargerState.C


async def test_charger_falls_back_to_safe_current_when_writes_stop(
    profiles: dict[str, Profile],
) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0, validity_s=1.0, safe_current_a=6.0)
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["alfen_ng9xx"], 1)
        await device.apply(ChargerSetpoint(current_a=16.0, phases=3))
        await asyncio.sleep(0.1)
        assert sim.cars[1].current_a == 16.0
        await asyncio.sleep(1.1)  # "Home Assistant stopped": no rewrite within validity
        assert sim.cars[1].current_a == 6.0
        assert (await device.read()).values["max_current_valid_time"] == 0


async def test_keep_alive_rewrites_before_validity_runs_out(profiles: dict[str, Profile]) -> None:
    now = [0.0]
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0)
    async with serving(bank, sim.step) as server:
        transport = ModbusTransport(settings_for(server))
        device = ModbusDevice(transport, 1, profiles["alfen_ng9xx"], "alfen", clock=lambda: now[0])
        await device.apply(ChargerSetpoint(current_a=11.0, phases=3))
        first_write = sim.written_at[1]
        now[0] = 10.0
        assert await device.keep_alive() is False  # 10 s < refresh 20 s
        now[0] = 21.0
        assert await device.keep_alive() is True
        assert sim.written_at[1] > first_write
        assert sim.written_a[1] == 11.0


async def test_two_sockets_behind_one_connection(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, sockets=(1, 2), lag_s=0.0)
    async with serving(bank, sim.step) as server:
        left = device_for(server, profiles["alfen_ng9xx"], 1, "left")
        right = device_for(server, profiles["alfen_ng9xx"], 2, "right")
        right.transport = left.transport  # one shared connection
        await asyncio.gather(
            left.apply(ChargerSetpoint(current_a=7.0, phases=3)),
            right.apply(ChargerSetpoint(current_a=12.0, phases=3)),
        )
        await asyncio.sleep(0.1)
        a, b = await asyncio.gather(left.read(), right.read())
    assert a.state.phase_currents_a == (7.0, 7.0, 7.0)
    assert b.state.phase_currents_a == (12.0, 12.0, 12.0)


async def test_unchanged_phase_setting_is_not_written(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = AlfenSim(bank, lag_s=0.0)
    bank.writable.discard((1, Table.HOLDING, 1215))  # phase switching not allowed on site
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["alfen_ng9xx"], 1)
        await device.read()
        await device.apply(ChargerSetpoint(current_a=9.0, phases=3))
        assert to_f32(bank.get(1, Table.HOLDING, 1210, 2)) == 9.0
        with pytest.raises(ModbusDeviceException, match="illegal data address"):
            await device.apply(ChargerSetpoint(current_a=9.0, phases=1))
