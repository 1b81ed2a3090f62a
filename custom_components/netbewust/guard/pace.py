"""How often the meter really updates, measured from its entity's updates."""

from __future__ import annotations

import statistics
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

# Enough intervals to ignore a single late telegram, few enough to notice a change.
WINDOW = 9
MIN_SAMPLES = 5


class MeterPace:
    """Median interval between the last few updates of the meter's pace entity."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._intervals: deque[float] = deque(maxlen=WINDOW)

    def record(self, moment: datetime) -> None:
        if self._last is not None:
            interval = (moment - self._last).total_seconds()
            if interval > 0:
                self._intervals.append(interval)
        self._last = moment

    @property
    def interval_s(self) -> float | None:
        """None until enough updates were seen to judge."""
        if len(self._intervals) < MIN_SAMPLES:
            return None
        return statistics.median(self._intervals)
