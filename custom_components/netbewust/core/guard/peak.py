"""Household peak limit: instantaneous, or a quarter-hour average as capacity tariffs bill it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..model import Connection, PeakMode
from ..timegrid import QUARTER, floor_to_quarter_hour

if TYPE_CHECKING:
    from datetime import datetime

QUARTER_S = QUARTER.total_seconds()
# Never integrate a gap longer than this: a dropped stretch of readings says nothing.
MAX_INTEGRATION_STEP_S = 30.0


class PeakTracker:
    """Tracks import energy in the running quarter hour and turns the peak into a power cap."""

    def __init__(self, connection: Connection) -> None:
        self._limit_w = connection.peak_limit_w
        self._mode = connection.peak_mode
        self._quarter: datetime | None = None
        self._energy_ws = 0.0
        self._last: tuple[datetime, float] | None = None
        self._meter_average: tuple[datetime, float] | None = None

    def update(self, moment: datetime, import_w: float, meter_average_w: float | None) -> None:
        """Account one reading; `meter_average_w` is the meter's own running average."""
        start = floor_to_quarter_hour(moment)
        if start != self._quarter:
            self._quarter = start
            self._energy_ws = 0.0
            self._last = None
            self._meter_average = None
        if self._last is not None:
            previous_time, previous_w = self._last
            step = (moment - previous_time).total_seconds()
            if step > 0:
                self._energy_ws += max(previous_w, 0.0) * min(step, MAX_INTEGRATION_STEP_S)
        self._last = (moment, import_w)
        if meter_average_w is not None and math.isfinite(meter_average_w) and meter_average_w >= 0:
            self._meter_average = (moment, meter_average_w)

    def cap_w(self, moment: datetime) -> float | None:
        """Import power allowed now so the quarter's average stays within the peak limit."""
        if self._limit_w is None:
            return None
        if self._mode is PeakMode.INSTANTANEOUS or self._quarter is None:
            return self._limit_w
        elapsed = (moment - self._quarter).total_seconds()
        if not 0 <= elapsed < QUARTER_S:
            return self._limit_w  # a new quarter starts with a clean slate
        energy = self._energy_ws
        if self._meter_average is not None:
            # The meter's own running average is authoritative (it is what gets billed).
            at, average = self._meter_average
            energy = average * (at - self._quarter).total_seconds()
        remaining = QUARTER_S - elapsed
        return max(0.0, (self._limit_w * QUARTER_S - energy) / remaining)
