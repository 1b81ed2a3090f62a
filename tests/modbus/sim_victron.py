"""Simulated Victron GX (ESS) and an SG-Ready relay module."""

from __future__ import annotations

from .simulator import RegisterBank, Table, from_s16, s16


class VictronGxSim:
    """A GX device with a single-phase ESS Multi on L1, per Victron's 'CCGX Modbus-TCP
    register list' (rev 3.x): unit 100; com.victronenergy.system 820-822 grid L1-L3
    (int16 W), 842 battery power (int16 W, + charging), 843 SoC (%), 844 state;
    com.victronenergy.settings 2700 ESS setpoint (int16 W), 2704 max discharge power
    (int16, x10 W, -1 = no limit), 2902 ESS mode (1 = with phase compensation).

    The ESS loop moves the battery so the grid reads the setpoint, within the battery's
    limits and the max discharge power.
    """

    UNIT = 100
    MAX_CHARGE_W = 3000.0
    MAX_DISCHARGE_W = 3000.0

    def __init__(
        self, bank: RegisterBank, *, soc_pct: float = 60.0, capacity_wh: float = 5000.0
    ) -> None:
        self.bank = bank
        self.loads_w = [800.0, 200.0, 300.0]
        self.battery_w = 0.0
        self.soc_pct = soc_pct
        self.capacity_wh = capacity_wh
        bank.set(self.UNIT, Table.HOLDING, 820, [0, 0, 0])
        bank.set(self.UNIT, Table.HOLDING, 842, [0, 0, 0])
        bank.set(self.UNIT, Table.HOLDING, 2700, [50], writable=True)
        bank.set(self.UNIT, Table.HOLDING, 2704, [s16(-1)], writable=True)
        bank.set(self.UNIT, Table.HOLDING, 2902, [1])
        self.step(0.0, 0.0)

    @property
    def setpoint_w(self) -> int:
        return from_s16(self.bank.get(self.UNIT, Table.HOLDING, 2700)[0])

    @property
    def max_discharge_w(self) -> float:
        raw = from_s16(self.bank.get(self.UNIT, Table.HOLDING, 2704)[0])
        return self.MAX_DISCHARGE_W if raw < 0 else min(raw * 10.0, self.MAX_DISCHARGE_W)

    def grid_w(self) -> list[float]:
        return [self.loads_w[0] + self.battery_w, self.loads_w[1], self.loads_w[2]]

    def step(self, now: float, dt: float) -> None:
        wanted = self.setpoint_w - sum(self.loads_w)  # grid = loads + battery
        battery = max(-self.max_discharge_w, min(self.MAX_CHARGE_W, wanted))
        if (self.soc_pct >= 100 and battery > 0) or (self.soc_pct <= 0 and battery < 0):
            battery = 0.0
        self.battery_w = battery
        self.soc_pct = max(
            0.0, min(100.0, self.soc_pct + battery * dt / 3600 / self.capacity_wh * 100)
        )
        grid = self.grid_w()
        state = 1 if battery > 0 else (2 if battery < 0 else 0)
        self.bank.set(self.UNIT, Table.HOLDING, 820, [s16(round(p)) for p in grid])
        self.bank.set(
            self.UNIT, Table.HOLDING, 842, [s16(round(battery)), round(self.soc_pct), state]
        )


class RelayModuleSim:
    """A Modbus relay module (Waveshare 'Modbus POE ETH Relay' style): coils 0-7 at unit 1."""

    UNIT = 1

    def __init__(self, bank: RegisterBank) -> None:
        self.bank = bank
        bank.set(self.UNIT, Table.COIL, 0, [0] * 8, writable=True)

    def relays(self) -> tuple[int, int]:
        first, second = self.bank.get(self.UNIT, Table.COIL, 0, 2)
        return first, second

    def step(self, now: float, dt: float) -> None:
        """Relays have no physics."""
