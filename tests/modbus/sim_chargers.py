"""Simulated EV chargers. Each register map is written from the vendor document named at
the map, not from the profile files, so a wrong address or scale in a profile fails a test.

Every charger follows its written limit after `lag_s` (the device's own reaction time)
and draws min(limit, the car's demand) on its active phases.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes

from .simulator import RegisterBank, Table, f32, f64, text, to_f32

VOLTAGE_V = 230.0


@dataclass
class ChargerPhysics:
    """A car behind a charger: follows the charger's limit after a lag."""

    lag_s: float = 0.2
    demand_a: float = 16.0
    plugged: bool = True
    enabled: bool = True
    phases: int = 3
    limit_a: float = 16.0
    current_a: float = 0.0
    energy_wh: float = 0.0
    _pending: list[tuple[float, float]] = field(default_factory=list)
    changes: list[tuple[float, float]] = field(default_factory=list)  # (time, current)

    def write_limit(self, limit_a: float, now: float | None = None) -> None:
        at = (time.monotonic() if now is None else now) + self.lag_s
        self._pending.append((at, limit_a))

    def step(self, now: float, dt: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            self.limit_a = self._pending.pop(0)[1]
        offered = self.limit_a if self.limit_a >= 6.0 and self.enabled else 0.0
        target = min(offered, self.demand_a) if self.plugged else 0.0
        if target != self.current_a:
            self.changes.append((now, target))
        self.current_a = target
        self.energy_wh += self.power_w * dt / 3600.0

    @property
    def power_w(self) -> float:
        return self.current_a * VOLTAGE_V * self.phases

    def phase_currents(self) -> list[float]:
        return [self.current_a if phase < self.phases else 0.0 for phase in range(3)]


class AlfenSim:
    """Alfen NG9xx, per 'Implementation of Modbus Slave TCP/IP for Alfen NG9xx platform'
    v2.3 (30-10-2020): section 3.1 product identification at unit 200 (100-178), section
    3.4 socket registers at unit 1/2 (300-425, 1200-1215), float32/float64 big-endian."""

    def __init__(
        self,
        bank: RegisterBank,
        sockets: tuple[int, ...] = (1,),
        *,
        lag_s: float = 0.2,
        validity_s: float = 60.0,
        safe_current_a: float = 6.0,
    ) -> None:
        self.bank = bank
        self.validity_s = validity_s
        self.safe_current_a = safe_current_a
        self.cars = {unit: ChargerPhysics(lag_s=lag_s, limit_a=safe_current_a) for unit in sockets}
        self.written_at: dict[int, float] = {}
        self.written_a: dict[int, float] = {}
        # 3.1 Product identification registers, unit 200.
        bank.set(200, Table.HOLDING, 100, text("ALF_1000", 17))  # Name
        bank.set(200, Table.HOLDING, 117, text("Alfen NV", 5))  # Manufacturer
        bank.set(200, Table.HOLDING, 122, [1])  # Modbus table version
        bank.set(200, Table.HOLDING, 123, text("6.4.0-4210", 17))  # Firmware version
        bank.set(200, Table.HOLDING, 140, text("NG910", 17))  # Platform type
        bank.set(200, Table.HOLDING, 157, text("ACE0012345", 11))  # Station serial number
        bank.set(200, Table.HOLDING, 168, [2026, 11, 22, 3, 0, 0, 0, 0, 0, 0, 60])  # 168-178
        # 3.2 Station status registers, unit 200.
        bank.set(200, Table.HOLDING, 1100, f32(32.0) + f32(35.0) + [0, len(sockets)])
        for unit in sockets:
            bank.set(unit, Table.HOLDING, 300, [0x03, 0, 0, 0, 0, 1])  # 300-305 meter state, type
            bank.set(unit, Table.HOLDING, 306, [0] * 120)  # 306-425 measurements, filled in step
            bank.set(unit, Table.HOLDING, 1200, [1, *text("A", 5)])  # availability, Mode 3 state
            bank.set(unit, Table.HOLDING, 1206, [*f32(0.0), 0, 0])  # applied max, valid time
            bank.set(unit, Table.HOLDING, 1210, f32(safe_current_a), writable=True)
            bank.set(unit, Table.HOLDING, 1212, [*f32(safe_current_a), 1])  # safe current, 1214
            bank.set(unit, Table.HOLDING, 1215, [3], writable=True)  # charge using 1 or 3 phases
        bank.hooks.append(self._on_write)

    def _on_write(self, unit: int, table: Table, address: int, words: list[int]) -> ExcCodes | None:
        if unit not in self.cars or table is not Table.HOLDING:
            return None
        if address in (1210, 1211):
            # 1.3: a float must be written in one request, both registers.
            if address != 1210 or len(words) != 2:
                return ExcCodes.ILLEGAL_VALUE
            value = to_f32(words)
            if not 0 <= value <= 80:
                return ExcCodes.ILLEGAL_VALUE
            self.written_at[unit] = time.monotonic()
            self.written_a[unit] = value
            self.cars[unit].write_limit(value)
        elif address == 1215:
            if words not in ([1], [3]):
                return ExcCodes.ILLEGAL_VALUE
            self.cars[unit].phases = words[0]
        return None

    def remaining_valid_s(self, unit: int, now: float) -> float:
        written = self.written_at.get(unit)
        return 0.0 if written is None else max(0.0, self.validity_s - (now - written))

    def step(self, now: float, dt: float) -> None:
        for unit, car in self.cars.items():
            remaining = self.remaining_valid_s(unit, now)
            if remaining <= 0 and car.limit_a != self.safe_current_a and not car._pending:
                car.write_limit(self.safe_current_a, now - car.lag_s)  # 1.3.1: back to safe
            car.step(now, dt)
            currents = car.phase_currents()
            volts = [VOLTAGE_V if car.plugged else 0.0] * 3
            powers = [current * VOLTAGE_V for current in currents]
            b = self.bank
            b.set(unit, Table.HOLDING, 306, f32(volts[0]) + f32(volts[1]) + f32(volts[2]))
            b.set(unit, Table.HOLDING, 320, f32(currents[0]) + f32(currents[1]) + f32(currents[2]))
            b.set(unit, Table.HOLDING, 326, f32(sum(currents)))
            b.set(unit, Table.HOLDING, 338, f32(powers[0]) + f32(powers[1]) + f32(powers[2]))
            b.set(unit, Table.HOLDING, 344, f32(sum(powers)))
            b.set(unit, Table.HOLDING, 374, f64(car.energy_wh))
            state = "A" if not car.plugged else ("C2" if car.current_a > 0 else "C1")
            b.set(unit, Table.HOLDING, 1201, text(state, 5))
            applied = car.limit_a
            b.set(unit, Table.HOLDING, 1206, [*f32(applied), 0, int(remaining)])


class PhoenixSim:
    """Phoenix Contact EM-CP-PP-ETH as evcc's charger/phoenix-em-eth.go reads it (the
    vendor manual was not available): unit 180; input 100 status letter; input 114-119
    currents and 120 power as signed 32 bit, low word first, value / (1000 x scale);
    128 energy; holding 300 current (A); holding 352-373 float scales (word-swapped);
    coil 400 enable."""

    UNIT = 180

    def __init__(self, bank: RegisterBank, *, lag_s: float = 0.2) -> None:
        self.bank = bank
        self.car = ChargerPhysics(lag_s=lag_s, limit_a=16.0)
        bank.set(self.UNIT, Table.INPUT, 100, [ord("A")] + [0] * 29)  # 100-129
        bank.set(self.UNIT, Table.INPUT, 130, [0, 0])
        bank.set(self.UNIT, Table.HOLDING, 300, [16], writable=True)
        one = f32(1.0)
        bank.set(self.UNIT, Table.HOLDING, 352, [one[1], one[0]] * 11)  # 352-373 scales = 1.0
        bank.set(self.UNIT, Table.COIL, 400, [1], writable=True)
        self.car.write_limit(16.0, 0.0)
        bank.hooks.append(self._on_write)

    def _on_write(self, unit: int, table: Table, address: int, words: list[int]) -> ExcCodes | None:
        if unit != self.UNIT:
            return None
        if table is Table.HOLDING and address == 300:
            if not 0 <= words[0] <= 80:
                return ExcCodes.ILLEGAL_VALUE
            self.car.write_limit(float(words[0]))
        if table is Table.COIL and address == 400:
            self.car.enabled = bool(words[0])
        return None

    @staticmethod
    def _lsw_first(value: int) -> list[int]:
        raw = value & 0xFFFFFFFF
        return [raw & 0xFFFF, raw >> 16]

    def step(self, now: float, dt: float) -> None:
        car = self.car
        car.step(now, dt)
        status = "A" if not car.plugged else ("C" if car.current_a > 0 else "B")
        b = self.bank
        b.set(self.UNIT, Table.INPUT, 100, [ord(status)])
        words: list[int] = []
        for volts in [VOLTAGE_V if car.plugged else 0.0] * 3:
            words += self._lsw_first(round(volts * 1000))
        for current in car.phase_currents():
            words += self._lsw_first(round(current * 1000))  # mA at scale 1.0
        b.set(self.UNIT, Table.INPUT, 108, words)
        b.set(self.UNIT, Table.INPUT, 120, self._lsw_first(round(car.power_w * 1000)))
        b.set(self.UNIT, Table.INPUT, 128, self._lsw_first(round(car.energy_wh)))


class VictronEvcsSim:
    """Victron EV Charging Station, register map as victronenergy/dbus-modbus-client
    ev_charger.py reads it: unit 1, 5000 product id (0xC024 = AC22), 5009 mode (0 manual),
    5010 start/stop, 5011-5014 power W, 5015 status, 5016 set current A, 5017 max current,
    5018 current x10, 5021 energy in 0.01 kWh."""

    UNIT = 1

    def __init__(self, bank: RegisterBank, *, lag_s: float = 0.2) -> None:
        self.bank = bank
        self.car = ChargerPhysics(lag_s=lag_s, limit_a=10.0)
        bank.set(self.UNIT, Table.HOLDING, 5000, [0xC024] + [0] * 8)  # 5000-5008
        bank.set(self.UNIT, Table.HOLDING, 5009, [0, 1], writable=True)  # mode, start/stop
        bank.set(self.UNIT, Table.HOLDING, 5011, [0] * 5)  # 5011-5015
        bank.set(self.UNIT, Table.HOLDING, 5016, [10], writable=True)
        bank.set(self.UNIT, Table.HOLDING, 5017, [32, 0, 0, 0, 0])  # 5017-5021
        self.car.write_limit(10.0, 0.0)
        bank.hooks.append(self._on_write)

    def _on_write(self, unit: int, table: Table, address: int, words: list[int]) -> ExcCodes | None:
        for offset, word in enumerate(words):
            register = address + offset
            if register == 5016:
                if word > 32:
                    return ExcCodes.ILLEGAL_VALUE
                if self.bank.get(self.UNIT, Table.HOLDING, 5009)[0] == 0:  # manual mode only
                    self.car.write_limit(float(word))
            elif register == 5010:
                self.car.enabled = bool(word)
        return None

    def step(self, now: float, dt: float) -> None:
        car = self.car
        car.step(now, dt)
        powers = [round(current * VOLTAGE_V) for current in car.phase_currents()]
        status = 0 if not car.plugged else (2 if car.current_a > 0 else 1)
        self.bank.set(self.UNIT, Table.HOLDING, 5011, [*powers, sum(powers), status])
        self.bank.set(self.UNIT, Table.HOLDING, 5018, [round(car.current_a * 10)])
        self.bank.set(self.UNIT, Table.HOLDING, 5021, [round(car.energy_wh / 10) & 0xFFFF])
