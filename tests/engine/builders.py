"""Small builders for engine tests: readings, device states and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from netbewust_core.model import (
    ChargerState,
    DeviceState,
    MeterReading,
    PhaseReading,
)
from netbewust_core.units import NOMINAL_VOLTAGE_V as VOLTS

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def reading(seconds: float, *amps: float) -> MeterReading:
    """A per-phase reading with the given signed currents at 230 V."""
    return MeterReading(
        timestamp=at(seconds),
        phases=tuple(
            PhaseReading(power_w=a * VOLTS, voltage_v=VOLTS, current_a=float(round(abs(a))))
            for a in amps
        ),
    )


def charging(device_id: str, amps: float, phases: int = 1) -> DeviceState:
    return DeviceState(
        device_id,
        power_w=amps * VOLTS * phases,
        charger_state=ChargerState.C if amps > 0 else ChargerState.B,
        active_phases=phases,
    )


def drawing(device_id: str, watts: float, soc_pct: float | None = None) -> DeviceState:
    return DeviceState(device_id, power_w=watts, soc_pct=soc_pct)
