"""Turning Home Assistant entity states into numbers the engine trusts.

Anything that is not a finite number in a plausible range becomes None: the engine
treats a missing value as missing, never as zero.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping

from homeassistant.const import (
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfPower,
)
from homeassistant.core import State

from ..const import LOGGER

type StateGetter = Callable[[str], State | None]

POWER_SCALE: Mapping[str, float] = {
    UnitOfPower.MILLIWATT: 0.001,
    UnitOfPower.WATT: 1.0,
    UnitOfPower.KILO_WATT: 1000.0,
    UnitOfPower.MEGA_WATT: 1_000_000.0,
}
VOLTAGE_SCALE: Mapping[str, float] = {
    UnitOfElectricPotential.MILLIVOLT: 0.001,
    UnitOfElectricPotential.VOLT: 1.0,
    UnitOfElectricPotential.KILOVOLT: 1000.0,
}
CURRENT_SCALE: Mapping[str, float] = {
    UnitOfElectricCurrent.MILLIAMPERE: 0.001,
    UnitOfElectricCurrent.AMPERE: 1.0,
}
PERCENT_SCALE: Mapping[str, float] = {"%": 1.0}


class Rejections:
    """Counts values that could not be used, by reason, for diagnostics."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()

    def reject(self, entity_id: str, reason: str, raw: str) -> None:
        self.by_reason[reason] += 1
        LOGGER.debug("Ignoring %s = %r: %s", entity_id, raw, reason)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


def read_number(
    get_state: StateGetter,
    entity_id: str | None,
    scale: Mapping[str, float],
    valid: tuple[float, float],
    rejections: Rejections,
    *,
    default_unit: str | None = None,
) -> float | None:
    """The entity's value in the base unit of `scale`, or None when it cannot be trusted.

    `default_unit` applies when the entity has no unit (input_number, template sensors).
    """
    if entity_id is None:
        return None
    state = get_state(entity_id)
    if state is None:
        rejections.reject(entity_id, "missing_entity", "")
        return None
    raw = state.state
    if raw in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        rejections.reject(entity_id, raw, raw)
        return None
    try:
        value = float(raw)
    except ValueError:
        rejections.reject(entity_id, "not_a_number", raw)
        return None
    if not math.isfinite(value):
        rejections.reject(entity_id, "not_finite", raw)
        return None
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT, default_unit)
    factor = scale.get(unit) if isinstance(unit, str) else None
    if factor is None:
        rejections.reject(entity_id, "unsupported_unit", f"{raw} {unit}")
        return None
    value *= factor
    low, high = valid
    if not low <= value <= high:
        rejections.reject(entity_id, "out_of_range", raw)
        return None
    return value
