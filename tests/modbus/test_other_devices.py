"""Phoenix Contact, Victron EVCS, the generic charger, Victron GX ESS and SG-Ready relays."""

from __future__ import annotations

import asyncio

import pytest

from custom_components.netbewust.core.model import (
    BatterySetpoint,
    ChargerSetpoint,
    ChargerState,
    HeatPumpSetpoint,
)
from custom_components.netbewust.modbus import Profile, probe

from .conftest import device_for, serving, settings_for
from .sim_chargers import PhoenixSim, VictronEvcsSim
from .sim_victron import RelayModuleSim, VictronGxSim
from .simulator import RegisterBank, Table, from_s16, text


async def test_phoenix_reads_low_word_first_scaled_values(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = PhoenixSim(bank, lag_s=0.0)
    sim.car.demand_a = 13.5
    async with serving(bank, sim.step) as server:
        await probe(settings_for(server), PhoenixSim.UNIT, profiles["phoenix_em_cp_pp_eth"])
        device = device_for(server, profiles["phoenix_em_cp_pp_eth"], PhoenixSim.UNIT)
        await asyncio.sleep(0.1)
        snapshot = await device.read()
    assert snapshot.state.charger_state is ChargerState.C
    assert snapshot.state.phase_currents_a == (13.5, 13.5, 13.5)
    assert snapshot.state.power_w == pytest.approx(3 * 13.5 * 230.0)


async def test_phoenix_pauses_with_the_enable_coil(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = PhoenixSim(bank, lag_s=0.0)
    async with serving(bank, sim.step) as server:
        device = device_for(server, profiles["phoenix_em_cp_pp_eth"], PhoenixSim.UNIT)
        await device.apply(ChargerSetpoint(current_a=10.0, phases=3))
        assert bank.get(PhoenixSim.UNIT, Table.HOLDING, 300) == [10]
        assert bank.get(PhoenixSim.UNIT, Table.COIL, 400) == [1]
        await device.apply(ChargerSetpoint(current_a=0.0, phases=3))
        assert bank.get(PhoenixSim.UNIT, Table.COIL, 400) == [0]
        await asyncio.sleep(0.1)
        paused = await device.read()
        await device.apply(ChargerSetpoint(current_a=8.0, phases=3))
        assert bank.get(PhoenixSim.UNIT, Table.COIL, 400) == [1]
    assert paused.state.charger_state is ChargerState.B
    assert paused.state.phase_currents_a == (0.0, 0.0, 0.0)


async def test_victron_evcs_current_and_start_stop(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = VictronEvcsSim(bank, lag_s=0.0)
    async with serving(bank, sim.step) as server:
        identity = await probe(settings_for(server), 1, profiles["victron_evcs"])
        device = device_for(server, profiles["victron_evcs"], 1)
        await device.apply(ChargerSetpoint(current_a=12.0, phases=3))
        await asyncio.sleep(0.1)
        charging = await device.read()
        await device.apply(ChargerSetpoint(current_a=0.0, phases=3))
        await asyncio.sleep(0.1)
        paused = await device.read()
    assert identity.manufacturer == "Victron Energy"
    assert bank.get(1, Table.HOLDING, 5016) == [12]
    assert charging.state.charger_state is ChargerState.C
    # Per-phase currents come from the per-phase power (the map has no phase currents).
    assert charging.state.phase_currents_a == pytest.approx((12.0, 12.0, 12.0), abs=0.01)
    assert charging.values["current"] == pytest.approx(12.0)
    assert paused.state.charger_state is ChargerState.B
    assert bank.get(1, Table.HOLDING, 5010) == [0]


async def test_generic_charger_template_layout(profiles: dict[str, Profile]) -> None:
    # The layout documented in docs/modbus-profiles.md ("generic charger").
    bank = RegisterBank()
    bank.set(1, Table.HOLDING, 0, [*text("C", 1), 100, 101, 0, 0, 1380, 0, 5000])
    bank.set(1, Table.HOLDING, 8, [0, 0])
    bank.set(1, Table.HOLDING, 10, [160, 3], writable=True)
    async with serving(bank) as server:
        device = device_for(server, profiles["generic_charger"], 1)
        snapshot = await device.read()
        await device.apply(ChargerSetpoint(current_a=7.5, phases=1))
    assert snapshot.state.charger_state is ChargerState.C
    assert snapshot.state.phase_currents_a == pytest.approx((10.0, 10.1, 0.0))
    assert snapshot.state.power_w == 1380.0
    assert snapshot.energy_wh == 5000
    assert bank.get(1, Table.HOLDING, 10, 2) == [75, 1]


async def test_victron_gx_grid_setpoint_places_battery_power(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    sim = VictronGxSim(bank)
    async with serving(bank, sim.step) as server:
        await probe(settings_for(server), VictronGxSim.UNIT, profiles["victron_gx_ess"])
        device = device_for(server, profiles["victron_gx_ess"], VictronGxSim.UNIT)
        await device.apply(BatterySetpoint(power_w=-1000.0))  # discharge 1 kW
        await asyncio.sleep(0.1)
        discharging = await device.read()
        assert from_s16(bank.get(100, Table.HOLDING, 2704)[0]) == 100  # 1000 W in 10 W units
        await device.apply(BatterySetpoint(power_w=500.0))  # charge 500 W, no discharge
        await asyncio.sleep(0.1)
        charging = await device.read()
        assert bank.get(100, Table.HOLDING, 2704) == [0]
        await device.apply(BatterySetpoint(power_w=None))
        released = (
            bank.get(100, Table.HOLDING, 2700)[0],
            from_s16(bank.get(100, Table.HOLDING, 2704)[0]),
        )
    assert discharging.state.power_w == pytest.approx(-1000.0)
    assert discharging.state.soc_pct == pytest.approx(60.0, abs=1)
    assert charging.state.power_w == pytest.approx(500.0)
    assert released == (50, -1)


async def test_sg_ready_relays_block_and_release(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    relays = RelayModuleSim(bank)
    async with serving(bank) as server:
        device = device_for(server, profiles["sg_ready_relay"], 1)
        await device.apply(HeatPumpSetpoint(on=False))
        blocked = relays.relays()
        snapshot = await device.read()
        await device.apply(HeatPumpSetpoint(on=True))
    assert blocked == (1, 0)  # SG-Ready state 1: blocked
    assert snapshot.values == {"relay_1": 1, "relay_2": 0}
    assert relays.relays() == (0, 0)  # state 2: normal


async def test_setpoint_of_the_wrong_kind_is_rejected(profiles: dict[str, Profile]) -> None:
    bank = RegisterBank()
    RelayModuleSim(bank)
    async with serving(bank) as server:
        device = device_for(server, profiles["sg_ready_relay"], 1)
        with pytest.raises(ValueError, match="cannot apply ChargerSetpoint"):
            await device.apply(ChargerSetpoint(current_a=6.0, phases=1))
