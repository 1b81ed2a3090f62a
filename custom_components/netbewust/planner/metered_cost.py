"""What the connection actually imported and exported per quarter hour, from the
guard's readings, and what that cost: the part of today the plan no longer covers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from homeassistant.util import dt as dt_util

from ..core.timegrid import QUARTER, floor_to_quarter_hour

# A reading stands for the power until the next one, but not across a gap longer than
# this: a silent meter (or Home Assistant down) is no data, not the last value repeated.
MAX_HOLD = timedelta(seconds=60)
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class MeteredQuarter:
    """One closed quarter hour. Costs are None when no price (or plan) was known."""

    start: datetime
    import_wh: float
    export_wh: float
    cost_eur: float | None
    baseline_eur: float | None

    def as_list(self) -> list[Any]:
        return [
            self.start.isoformat(),
            self.import_wh,
            self.export_wh,
            self.cost_eur,
            self.baseline_eur,
        ]

    @classmethod
    def from_list(cls, raw: Any) -> MeteredQuarter | None:
        """A stored quarter, or None when the stored data does not validate."""
        if not isinstance(raw, list) or len(raw) != 5:
            return None
        start = dt_util.parse_datetime(str(raw[0]))
        energies, costs = raw[1:3], raw[3:5]
        if start is None or start.tzinfo is None:
            return None
        if not all(_finite(v) and v >= 0 for v in energies):
            return None
        if not all(v is None or _finite(v) for v in costs):
            return None
        return cls(start, float(energies[0]), float(energies[1]), costs[0], costs[1])


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(slots=True)
class OpenQuarter:
    start: datetime
    import_wh: float = 0.0
    export_wh: float = 0.0


class QuarterHourMeter:
    """Integrates net grid power (W, import positive) into energy per quarter hour."""

    def __init__(self) -> None:
        self.open: OpenQuarter | None = None
        self._last: tuple[datetime, float] | None = None

    def add(self, moment: datetime, net_w: float) -> list[OpenQuarter]:
        """Record a reading; returns the quarter hours it closed, oldest first."""
        closed: list[OpenQuarter] = []
        if not math.isfinite(net_w):
            return closed
        last, self._last = self._last, (moment, net_w)
        if last is None or moment <= last[0]:
            if self.open is None:
                self.open = OpenQuarter(floor_to_quarter_hour(moment))
            return closed
        begin, power = last
        end = min(moment, begin + MAX_HOLD)
        while begin < end:
            quarter = floor_to_quarter_hour(begin)
            if self.open is None or self.open.start != quarter:
                if self.open is not None and self.open.start < quarter:
                    closed.append(self.open)
                self.open = OpenQuarter(quarter)
            part_end = min(end, quarter + QUARTER)
            wh = power * ((part_end - begin) / HOUR)
            if wh >= 0:
                self.open.import_wh += wh
            else:
                self.open.export_wh -= wh
            begin = part_end
        current = floor_to_quarter_hour(moment)
        if self.open is not None and self.open.start < current:
            closed.append(self.open)
            self.open = OpenQuarter(current)
        return closed
