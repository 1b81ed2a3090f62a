"""Quarter-hour figures: how telemetry windows become per-quarter energy, and the gap rule.

A telemetry report is the mean grid power over `interval_s` seconds ending at `measured_at`;
its energy is split over the quarter hours it overlaps in proportion to the overlap. A
quarter counts for settlement only when telemetry covers at least `COVERAGE_MIN` of it:
an uncovered quarter earns no flexibility credit and carries no shortfall, and is flagged.
Overlapping reports (more than the quarter's seconds) are scaled down to one quarter's worth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final

from ..timegrid import HOURS_PER_QUARTER, QUARTER, as_utc, floor_to_quarter_hour

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

QUARTER_S: Final = QUARTER.total_seconds()
COVERAGE_MIN: Final = 0.9  # a quarter counts when telemetry covers >= 90 % of it


@dataclass(frozen=True, slots=True)
class QuarterPart:
    """One telemetry report's share of one quarter hour (UTC start)."""

    start: datetime
    import_wh: float
    export_wh: float
    covered_s: float
    paused_s: float


def telemetry_parts(
    measured_at: datetime, interval_s: float, net_power_w: float, participating: bool
) -> tuple[QuarterPart, ...]:
    """The report's energy per quarter hour it overlaps (at most two: `interval_s` <= 900)."""
    if not 0 < interval_s <= QUARTER_S:
        raise ValueError(f"a telemetry window is 1-{QUARTER_S:.0f} s, got {interval_s}")
    end = as_utc(measured_at)
    start = end - timedelta(seconds=interval_s)
    parts = []
    quarter = floor_to_quarter_hour(start)
    while quarter < end:
        overlap = (min(end, quarter + QUARTER) - max(start, quarter)).total_seconds()
        if overlap > 0:
            wh = net_power_w * overlap / 3600
            parts.append(
                QuarterPart(
                    start=quarter,
                    import_wh=max(wh, 0.0),
                    export_wh=max(-wh, 0.0),
                    covered_s=overlap,
                    paused_s=0.0 if participating else overlap,
                )
            )
        quarter += QUARTER
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class QuarterFigures:
    """What one household measurably did in one quarter hour, and the limit in force."""

    household: str
    start: datetime  # UTC, on a quarter hour
    import_kwh: float
    export_kwh: float
    limit_w: float | None  # the import cap in force (community, DSO or emergency)
    covered: float  # fraction of the quarter with telemetry, 0..1
    paused: bool  # the household paused participation during (part of) the quarter

    @property
    def counts(self) -> bool:
        """Whether the quarter is measured well enough to earn credit or a shortfall."""
        return self.covered >= COVERAGE_MIN

    @property
    def limit_kwh(self) -> float | None:
        return None if self.limit_w is None else self.limit_w * HOURS_PER_QUARTER / 1000


def figures_from_sums(
    household: str,
    start: datetime,
    *,
    import_wh: float,
    export_wh: float,
    covered_s: float,
    paused_s: float,
    limit_w: float | None,
) -> QuarterFigures:
    """Figures from the summed parts; overlapping reports are scaled to one quarter."""
    scale = QUARTER_S / covered_s if covered_s > QUARTER_S else 1.0
    return QuarterFigures(
        household=household,
        start=as_utc(start),
        import_kwh=import_wh * scale / 1000,
        export_kwh=export_wh * scale / 1000,
        limit_w=limit_w,
        covered=min(covered_s / QUARTER_S, 1.0),
        paused=paused_s > 0,
    )


@dataclass(frozen=True, slots=True)
class Period:
    """A settlement period: one calendar month in local time, as a UTC interval."""

    key: str  # "YYYY-MM"
    start: datetime
    end: datetime

    @property
    def quarters(self) -> int:
        return int((self.end - self.start) / QUARTER)


def month_period(key: str, zone: ZoneInfo) -> Period:
    """The calendar month `key` ("YYYY-MM") in `zone`, DST included."""
    try:
        year, month = (int(part) for part in key.split("-"))
        if len(key) != 7 or not 1 <= month <= 12 or not 2000 <= year <= 9998:
            raise ValueError
    except ValueError:
        raise ValueError(f"a period is a month as YYYY-MM, got {key[:20]!r}") from None
    first = date(year, month, 1)
    after = date(year + month // 12, month % 12 + 1, 1)
    return Period(
        key=key,
        start=datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC),
        end=datetime.combine(after, time(0), tzinfo=zone).astimezone(UTC),
    )


def local_slot(quarter: datetime, zone: ZoneInfo) -> tuple[date, int, int]:
    """The local day of a quarter hour, its index in that day and the day's quarter count."""
    day = as_utc(quarter).astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return day, int((as_utc(quarter) - start) / QUARTER), int((end - start) / QUARTER)


def period_of(moment: datetime, zone: ZoneInfo) -> Period:
    """The month holding `moment` in local time."""
    local = as_utc(moment).astimezone(zone)
    return month_period(f"{local.year:04d}-{local.month:02d}", zone)
