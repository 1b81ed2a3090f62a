"""The guard drives a simulated charger and battery over Modbus through a load step."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from custom_components.netbewust.core.model import ChargerSetpoint

from .plant import BATTERY_ID, CHARGER_ID, FUSE_A, MARGIN_A, start_household

if TYPE_CHECKING:
    from custom_components.netbewust.modbus import Profile

LIMIT_A = FUSE_A - MARGIN_A
METER_PERIOD_S = 1.0  # simulated time between meter updates


async def test_load_step_is_absorbed_by_charger_and_battery(profiles: dict[str, Profile]) -> None:
    home = await start_household(profiles, lag_s=0.1)
    try:
        for _ in range(4):  # settle: the car gets its full 16 A
            await home.on_meter(METER_PERIOD_S)
            await asyncio.sleep(0.15)
        assert home.alfen.cars[1].current_a == 16.0
        assert max(home.phase_currents_a()) <= LIMIT_A

        home.base_load_a = 20.0  # an oven and a kettle: 20 A on every phase
        assert max(home.phase_currents_a()) > LIMIT_A
        decisions = []
        for _ in range(6):
            decisions.append(await home.on_meter(METER_PERIOD_S))
            await asyncio.sleep(0.15)
        first = decisions[0]
        assert CHARGER_ID in first.changed  # tightening acts on the first reading
        charger_setpoint = first.setpoints[CHARGER_ID]
        assert isinstance(charger_setpoint, ChargerSetpoint)
        assert charger_setpoint.current_a < 16.0

        assert max(home.phase_currents_a()) <= LIMIT_A + 0.1
        assert home.alfen.cars[1].current_a < 16.0
        assert home.storage.power_w < 0  # the battery discharges to keep the car going
        battery = (await home.battery.read()).state
        assert battery.device_id == BATTERY_ID
        assert battery.power_w is not None
        assert battery.power_w < 0
    finally:
        await home.close()
