"""SunSpec model discovery, reads and writes against simulators with real model chains."""

from __future__ import annotations

import asyncio

import pytest

from custom_components.netbewust.core.model import BatterySetpoint, PvSetpoint
from custom_components.netbewust.modbus import ModbusTransport, Profile, ProfileMismatch, probe
from custom_components.netbewust.modbus.sunspec import discover

from .conftest import device_for, serving, settings_for
from .sim_sunspec import (
    BASE,
    SunSpecBatterySim,
    SunSpecInverterSim,
    SunSpecMeterSim,
    build_chain,
)
from .simulator import RegisterBank, Table, from_s16


async def test_discovery_walks_the_model_chain() -> None:
    bank = RegisterBank()
    SunSpecBatterySim(bank)
    async with serving(bank) as server:
        transport = ModbusTransport(settings_for(server))
        found = await discover(transport, 1, (50000, 40000))
        await transport.close()
    assert found.base_address == BASE
    assert found.model_ids == (1, 124, 802)
    battery = found.find(802)
    assert battery is not None
    assert battery.length == 62
    assert battery.start == BASE + 2 + (2 + 66) + (2 + 24) + 2


async def test_discovery_at_base_zero_and_broken_chains() -> None:
    bank = RegisterBank()
    build_chain(bank, 1, [1, 203], base=0)
    async with serving(bank) as server:
        transport = ModbusTransport(settings_for(server))
        found = await discover(transport, 1, (40000, 0))
        assert found.base_address == 0
        assert found.model_ids == (1, 203)
        bank.set(1, Table.HOLDING, 2 + 2 + 66, [203, 0])  # a model of length 0
        with pytest.raises(ProfileMismatch, match="invalid length 0"):
            await discover(transport, 1, (0,))
        bank.set(1, Table.HOLDING, 0, [0x1234, 0x5678])
        with pytest.raises(ProfileMismatch, match="no SunSpec 'SunS' marker"):
            await discover(transport, 1, (0, 40000))
        await transport.close()


async def test_battery_probe_and_reads(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = SunSpecBatterySim(bank, soc_pct=42.5)
    async with serving(bank, sim.step) as server:
        identity = await probe(settings_for(server), 1, profiles["sunspec_battery"])
        sim.autonomous_w = -1200.0  # discharging on its own
        await asyncio.sleep(0.1)
        snapshot = await device_for(server, profiles["sunspec_battery"], 1).read()
    assert identity.manufacturer == "SimSpec"
    assert identity.model == "SimBattery"
    assert identity.firmware == "1.2.3"
    assert identity.serial == "SN-0042"
    assert identity.sunspec_models == (1, 124, 802)
    assert snapshot.state.soc_pct == pytest.approx(42.5, abs=0.2)
    assert snapshot.state.power_w == pytest.approx(-1200.0)  # + charges, - discharges
    assert snapshot.values["WChaMax"] == 5000.0


async def test_battery_setpoints_force_power_and_soc_moves(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = SunSpecBatterySim(bank, soc_pct=50.0, capacity_wh=1.0)  # tiny: SoC moves visibly
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["sunspec_battery"], 1)
        await device.apply(BatterySetpoint(power_w=2000.0))
        at = sim.chain.at
        assert bank.get(1, Table.HOLDING, at(124, 3)) == [3]  # both limits active
        assert from_s16(bank.get(1, Table.HOLDING, at(124, 11))[0]) == 4000  # 40.00 %
        assert from_s16(bank.get(1, Table.HOLDING, at(124, 10))[0]) == -4000
        assert bank.get(1, Table.HOLDING, at(124, 13)) == [120]  # revert timer
        await asyncio.sleep(0.1)
        assert sim.power_w == pytest.approx(2000.0)
        soc_before = sim.soc_pct
        await asyncio.sleep(0.1)
        assert sim.soc_pct > soc_before
        await device.apply(BatterySetpoint(power_w=-1000.0))
        await asyncio.sleep(0.1)
        assert sim.power_w == pytest.approx(-1000.0)
        await device.apply(BatterySetpoint(power_w=None))
        assert bank.get(1, Table.HOLDING, at(124, 3)) == [0]


async def test_battery_without_model_802_reads_soc_from_124(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = SunSpecBatterySim(bank, soc_pct=77.0, with_802=False)
    async with serving(bank, sim.step) as server:
        snapshot = await device_for(server, profiles["sunspec_battery"], 1).read()
    assert snapshot.state.soc_pct == pytest.approx(77.0)
    assert snapshot.state.power_w is None


async def test_meter_model_203_becomes_a_meter_reading(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = SunSpecMeterSim(bank)
    sim.set_phases((2300.0, -460.0, 1150.0))
    async with serving(bank) as server:
        snapshot = await device_for(server, profiles["sunspec_meter"], 1).read()
    meter = snapshot.meter
    assert meter is not None
    assert [phase.power_w for phase in meter.phases] == [2300.0, -460.0, 1150.0]
    assert [phase.voltage_v for phase in meter.phases] == [230.0, 231.0, 229.0]
    assert meter.phases[0].current_a == pytest.approx(10.0)
    assert meter.total_power_w == pytest.approx(2990.0)
    assert snapshot.energy_wh == 123456
    assert snapshot.values["TotWhExp"] == 6543


async def test_inverter_power_limit(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = SunSpecInverterSim(bank, available_w=4000.0)
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["sunspec_inverter"], 1)
        before = await device.read()
        await device.apply(PvSetpoint(power_limit_w=1500.0))
        at = sim.chain.at
        assert bank.get(1, Table.HOLDING, at(123, 3)) == [250]  # 25.0 % of 6000 W
        assert bank.get(1, Table.HOLDING, at(123, 7)) == [1]
        await asyncio.sleep(0.1)
        limited = await device.read()
        await device.apply(PvSetpoint(power_limit_w=None))
        await asyncio.sleep(0.1)
        released = await device.read()
    assert before.state.power_w == pytest.approx(-4000.0)  # producing: negative draw
    assert limited.state.power_w == pytest.approx(-1500.0)
    assert released.state.power_w == pytest.approx(-4000.0)


async def test_missing_required_model_is_a_mismatch(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    SunSpecMeterSim(bank)
    async with serving(bank) as server:
        with pytest.raises(ProfileMismatch, match=r"lacks model\(s\) 124"):
            await probe(settings_for(server), 1, profiles["sunspec_battery"])
