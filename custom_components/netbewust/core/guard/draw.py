"""What a device is measured to draw, per real phase, from its own sensors.

Device readings are validated the same way as the meter's: non-finite or absurd values
count as missing, so the guard falls back to what it last commanded.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..model import DeviceState

MAX_PLAUSIBLE_DEVICE_POWER_W = 100_000.0
MAX_PLAUSIBLE_DEVICE_CURRENT_A = 250.0

PhaseDraw = dict[int, float]  # real phase (1-based) -> A, positive when drawing


def _plausible(value: float | None, limit: float) -> float | None:
    if value is None or not math.isfinite(value) or abs(value) > limit:
        return None
    return value


def measured_draw(
    state: DeviceState | None,
    phases: Sequence[int],
    connection_phases: int,
    voltage_of: Sequence[float],
) -> PhaseDraw | None:
    """Per-phase current from the device's own sensors, or None when it has none.

    `phase_currents_a` is read in the order of the phases in use, or by L1..L3 when it
    has one value per connection phase. Power is spread evenly over the phases in use.
    """
    if state is None or not state.available or not phases:
        return None
    currents = state.phase_currents_a
    if currents is not None:
        clean = [_plausible(c, MAX_PLAUSIBLE_DEVICE_CURRENT_A) for c in currents]
        if all(c is not None for c in clean):
            values = [c for c in clean if c is not None]
            if len(values) == len(phases):
                return dict(zip(phases, values, strict=True))
            if len(values) == connection_phases:
                return {phase: values[phase - 1] for phase in range(1, connection_phases + 1)}
    power = _plausible(state.power_w, MAX_PLAUSIBLE_DEVICE_POWER_W)
    if power is None:
        return None
    per_phase_w = power / len(phases)
    return {phase: per_phase_w / voltage_of[phase - 1] for phase in phases}


def symmetric_current(draw: PhaseDraw, phases: Sequence[int]) -> float:
    """The largest current on the device's phases: what its per-phase setpoint must cover."""
    values = [draw.get(phase, 0.0) for phase in phases]
    return max(values, key=abs) if values else 0.0


def clean_soc(state: DeviceState | None) -> float | None:
    if state is None or not state.available or state.soc_pct is None:
        return None
    soc = state.soc_pct
    return soc if math.isfinite(soc) and 0 <= soc <= 100 else None
