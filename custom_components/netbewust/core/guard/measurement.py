"""Meter reading -> signed current per phase (import positive), or None when unusable.

A reading is only trusted when every phase the guard needs can be derived from it;
anything non-finite or physically implausible counts as missing, never as a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import Connection, MeterReading, PhaseReading

MAX_PLAUSIBLE_POWER_W = 250_000.0  # a 3x250 A connection tops out near 175 kW
MAX_PLAUSIBLE_CURRENT_A = 400.0
MIN_PLAUSIBLE_VOLTAGE_V = 150.0
MAX_PLAUSIBLE_VOLTAGE_V = 300.0


@dataclass(frozen=True, slots=True)
class Measurement:
    """Currents on the phases the guard enforces.

    `per_phase` False: the meter gave only a total for a 3-phase connection, so the
    guard enforces one virtual phase carrying the sum of all three.
    """

    current_a: tuple[float, ...]
    voltage_v: tuple[float, ...]
    per_phase: bool

    @property
    def total_power_w(self) -> float:
        return sum(c * v for c, v in zip(self.current_a, self.voltage_v, strict=True))


def _finite(value: float | None, limit: float) -> float | None:
    if value is None or not math.isfinite(value) or abs(value) > limit:
        return None
    return value


def _voltage(phase: PhaseReading) -> float | None:
    v = phase.voltage_v
    if v is None or not math.isfinite(v):
        return None
    return v if MIN_PLAUSIBLE_VOLTAGE_V <= v <= MAX_PLAUSIBLE_VOLTAGE_V else None


def phase_current(phase: PhaseReading, nominal_voltage_v: float) -> tuple[float, float] | None:
    """(signed current, voltage used) for one phase, or None if it cannot be derived."""
    power = _finite(phase.power_w, MAX_PLAUSIBLE_POWER_W)
    voltage = _voltage(phase)
    current = _finite(phase.current_a, MAX_PLAUSIBLE_CURRENT_A)
    if current is not None and current < 0:
        current = None  # meters report a magnitude; a negative one is garbage
    if power is not None and voltage is not None:
        return power / voltage, voltage
    if current is not None:
        # DSMR current is unsigned; without power assume import, the safe side.
        sign = -1.0 if power is not None and power < 0 else 1.0
        return sign * current, voltage or nominal_voltage_v
    if power is not None:
        return power / nominal_voltage_v, nominal_voltage_v
    return None


def measure(reading: MeterReading, connection: Connection) -> Measurement | None:
    """Currents per phase, or a single virtual phase from a total; None if unusable."""
    nominal = connection.nominal_voltage_v
    if len(reading.phases) >= connection.phases:
        derived = [phase_current(p, nominal) for p in reading.phases[: connection.phases]]
        if all(d is not None for d in derived):
            pairs = [d for d in derived if d is not None]
            return Measurement(
                current_a=tuple(c for c, _ in pairs),
                voltage_v=tuple(v for _, v in pairs),
                per_phase=True,
            )
    total = _finite(reading.total_power_w, MAX_PLAUSIBLE_POWER_W)
    if total is None:
        return None
    return Measurement(
        current_a=(total / nominal,),
        voltage_v=(nominal,),
        per_phase=connection.phases == 1,
    )
