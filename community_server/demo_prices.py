"""Offline day-ahead prices for `netbewust-server demo`: a winter shape, never Nord Pool.

The price model is the neighbourhood simulator's built-in fallback
(`neighbourhood.scenario._day_ahead`): its hourly `WINTER_DAY_AHEAD` shape (cheap
nights, morning and evening peaks, a midday dip), scaled per day by a factor drawn from
N(1, 0.12) clipped to 0.6-1.5 and jittered per quarter hour by N(0, 0.004) EUR/kWh.
Here the draws are seeded by the day and the quarter hour, so every day is the same
whichever order it is asked in, and it is asked of `DemoPrices.fetch_day` as the
collective runtime asks Nord Pool: per delivery day (a day in Amsterdam), in 15-minute
points in UTC.

The demo's households run on a profile clock that may start elsewhere in the day and
run faster than real time; `demo_moment` maps a real moment to that clock, so the
cheap night the prices show is the simulated night. Every answer says it is demo
prices (area `demo`, the detail, the log), so they are not mistaken for Nord Pool's.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from netbewust_core.planning.prices import DayAheadPrices, FetchStatus, PricePoint
from netbewust_core.protocol.messages import QUARTER_HOUR

from .neighbourhood.scenario import WINTER_DAY_AHEAD
from .simulation.profiles import LOCAL_OFFSET

if TYPE_CHECKING:
    from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)
DEMO_AREA = "demo"
LABEL = "demo prices (Dutch winter shape, not Nord Pool)"
DELIVERY_ZONE = ZoneInfo("Europe/Amsterdam")  # Nord Pool's delivery days
DAY_FACTOR_SD = 0.12
DAY_FACTOR_RANGE = (0.6, 1.5)
QUARTER_JITTER_SD = 0.004  # EUR/kWh


def _same(moment: datetime) -> datetime:
    return moment


@dataclass(frozen=True, slots=True)
class DemoPrices:
    """A `PriceSource` for the collective runtime that needs no internet and never raises."""

    seed: int = 0
    # The demo's clock (time of day of the simulated households) at a real moment.
    demo_moment: Callable[[datetime], datetime] = field(default=_same)

    async def fetch_day(self, delivery_day: date) -> DayAheadPrices:
        try:
            points = self.points(delivery_day)
        except Exception as err:  # any day at all gets an answer, never an error
            _LOGGER.warning("%s: none for %s: %s", LABEL, delivery_day, err)
            return DayAheadPrices(
                FetchStatus.FAILED, delivery_day, DEMO_AREA, detail=f"{LABEL}: {err}"
            )
        _LOGGER.info("%s for %s: %d quarter hours", LABEL, delivery_day, len(points))
        return DayAheadPrices(
            FetchStatus.PUBLISHED, delivery_day, DEMO_AREA, points, final=True, detail=LABEL
        )

    def points(self, delivery_day: date) -> tuple[PricePoint, ...]:
        """Every quarter hour of the delivery day (92 or 100 on DST days), EUR/kWh."""
        start = datetime.combine(delivery_day, time(0), tzinfo=DELIVERY_ZONE).astimezone(UTC)
        next_day = delivery_day + timedelta(days=1)
        end = datetime.combine(next_day, time(0), tzinfo=DELIVERY_ZONE).astimezone(UTC)
        points = []
        moment = start
        while moment < end:
            points.append(PricePoint(moment, moment + QUARTER_HOUR, self.price(moment)))
            moment += QUARTER_HOUR
        return tuple(points)

    def price(self, quarter_start: datetime) -> float:
        """The spot price of the quarter hour starting at `quarter_start` (UTC)."""
        local = self.demo_moment(quarter_start + QUARTER_HOUR / 2).astimezone(UTC) + LOCAL_OFFSET
        jitter = random.Random(f"{self.seed}/{quarter_start.isoformat()}")
        value = WINTER_DAY_AHEAD[local.hour] * _day_factor(self.seed, local.date())
        return round(value + jitter.gauss(0.0, QUARTER_JITTER_SD), 5)


def _day_factor(seed: int, day: date) -> float:
    low, high = DAY_FACTOR_RANGE
    return min(high, max(low, random.Random(f"{seed}/{day}").gauss(1.0, DAY_FACTOR_SD)))
