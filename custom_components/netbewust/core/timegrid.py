"""The quarter-hour time grid: alignment and local days, safe across DST changes.

Everything runs on UTC; local time only decides where a day starts. Dutch offsets are
whole hours, so a UTC quarter hour is also a local quarter hour. A local day has 92,
96 or 100 quarter hours (spring forward, normal, fall back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

QUARTER = timedelta(minutes=15)
HOURS_PER_QUARTER: Final = QUARTER / timedelta(hours=1)  # 0.25: Wh per W over a quarter hour
QUARTERS_PER_HOUR: Final = timedelta(hours=1) // QUARTER
QUARTERS_PER_DAY: Final = timedelta(days=1) // QUARTER  # 96, a day without a DST change


def as_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; naive datetimes are refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is required, got {moment!r}")
    return moment.astimezone(UTC)


def floor_to_quarter_hour(moment: datetime) -> datetime:
    moment = as_utc(moment)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def is_quarter_aligned(moment: datetime) -> bool:
    return floor_to_quarter_hour(moment) == as_utc(moment)


def local_day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC start (inclusive) and end (exclusive) of a local calendar day."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


@dataclass(frozen=True, slots=True)
class DayWindow:
    """The steps [start_step, end_step) of a horizon that fall on local day `day`."""

    day: date
    start_step: int
    end_step: int
    steps_in_day: int  # the whole local day, for prorating a daily quantity

    @property
    def fraction(self) -> float:
        return (self.end_step - self.start_step) / self.steps_in_day


def local_day_windows(
    start: datetime, n_steps: int, step: timedelta, zone: ZoneInfo
) -> tuple[DayWindow, ...]:
    """Split a horizon of `n_steps` steps from `start` into local days."""
    start = as_utc(start)
    end = start + n_steps * step
    windows = []
    day = start.astimezone(zone).date()
    while True:
        day_start, day_end = local_day_bounds(day, zone)
        if day_start >= end:
            break
        first = max(0, _steps_between(start, day_start, step))
        last = min(n_steps, _steps_between(start, day_end, step))
        if last > first:
            windows.append(DayWindow(day, first, last, _steps_between(day_start, day_end, step)))
        day += timedelta(days=1)
    return tuple(windows)


def _steps_between(first: datetime, second: datetime, step: timedelta) -> int:
    return int((second - first) // step)
