"""A household in plain Python: meter -> Guard.on_meter -> Modbus writes -> simulators.

The meter is computed from the simulators' own physics (base load + what the simulated
charger and battery really draw), so the loop closes through real Modbus traffic.
Used by the end-to-end test and by bench/modbus_roundtrip.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from custom_components.netbewust.core.guard.engine import Guard
from custom_components.netbewust.core.model import (
    BatterySpec,
    ChargerSpec,
    Connection,
    DeviceState,
    GuardConfig,
    GuardDecision,
    MeterReading,
    PhaseReading,
)
from custom_components.netbewust.modbus import (
    ModbusDevice,
    ModbusTransport,
    Profile,
    TransportSettings,
)

from .sim_chargers import VOLTAGE_V, AlfenSim
from .sim_sunspec import SunSpecBatterySim
from .simulator import RegisterBank, SimServer

CHARGER_ID = "charger"
BATTERY_ID = "battery"
FUSE_A = 25.0
MARGIN_A = 1.0


@dataclass
class Household:
    guard: Guard
    charger: ModbusDevice
    battery: ModbusDevice
    alfen: AlfenSim
    storage: SunSpecBatterySim
    servers: tuple[SimServer, SimServer]
    base_load_a: float = 5.0
    clock: datetime = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def phase_currents_a(self) -> tuple[float, float, float]:
        """What the grid meter sees, from the simulators' actual draw."""
        car = self.alfen.cars[1].phase_currents()
        battery_a = self.storage.power_w / (3 * VOLTAGE_V)
        return (
            self.base_load_a + car[0] + battery_a,
            self.base_load_a + car[1] + battery_a,
            self.base_load_a + car[2] + battery_a,
        )

    def meter_reading(self, period_s: float) -> MeterReading:
        self.clock += timedelta(seconds=period_s)
        return MeterReading(
            timestamp=self.clock,
            phases=tuple(
                PhaseReading(power_w=current * VOLTAGE_V, voltage_v=VOLTAGE_V)
                for current in self.phase_currents_a()
            ),
        )

    async def device_states(self) -> dict[str, DeviceState]:
        states: dict[str, DeviceState] = {}
        for device in (self.charger, self.battery):
            try:
                states[device.device_id] = (await device.read()).state
            except Exception:
                states[device.device_id] = device.unavailable_state()
        return states

    async def on_meter(self, period_s: float) -> GuardDecision:
        """One meter update through the whole chain; writes only changed setpoints."""
        decision = self.guard.on_meter(self.meter_reading(period_s), await self.device_states())
        writes = [
            device.apply(decision.setpoints[device.device_id])
            for device in (self.charger, self.battery)
            if device.device_id in decision.changed
        ]
        await asyncio.gather(*writes)
        return decision

    async def close(self) -> None:
        for device in (self.charger, self.battery):
            await device.transport.close()
        for server in self.servers:
            await server.close()


async def start_household(profiles: dict[str, Profile], *, lag_s: float = 0.2) -> Household:
    charger_bank, battery_bank = RegisterBank(), RegisterBank()
    alfen = AlfenSim(charger_bank, lag_s=lag_s)
    storage = SunSpecBatterySim(battery_bank, soc_pct=80.0)
    servers = (SimServer(charger_bank), SimServer(battery_bank))
    servers[0].on_tick(alfen.step)
    servers[1].on_tick(storage.step)
    for server in servers:
        server.step()
        await server.start()

    def device(server: SimServer, profile: str, device_id: str) -> ModbusDevice:
        settings = TransportSettings(host="127.0.0.1", port=server.port, timeout_s=0.5)
        return ModbusDevice(ModbusTransport(settings), 1, profiles[profile], device_id)

    config = GuardConfig(
        connection=Connection(phases=3, fuse_current_a=FUSE_A, safety_margin_a=MARGIN_A),
        devices=(
            ChargerSpec(
                device_id=CHARGER_ID, name="Car", priority=1, phases=(1, 2, 3), max_current_a=16.0
            ),
            BatterySpec(
                device_id=BATTERY_ID,
                name="Battery",
                priority=2,
                phases=(1, 2, 3),
                max_charge_w=5000.0,
                max_discharge_w=5000.0,
            ),
        ),
    )
    return Household(
        guard=Guard(config),
        charger=device(servers[0], "alfen_ng9xx", CHARGER_ID),
        battery=device(servers[1], "sunspec_battery", BATTERY_ID),
        alfen=alfen,
        storage=storage,
        servers=servers,
    )
