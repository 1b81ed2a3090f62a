"""Baselines: what a household would have imported had nobody asked it to hold back.

A household commits a day's baseline before gate closure: 12:00 local time the day before.
A commitment that arrives later, or not at all, or whose length is not the day's, is
replaced by the mean of comparable past days (the same kind of day, Monday-Friday or
weekend, among the last `lookback_days`, at most `comparable_days` of them). Either way the
baseline of each quarter is capped at the highest import the home itself measured in that
quarter of the day on those comparable days, plus a tolerance, so an inflated baseline
earns nothing. History only uses quarters that were measured, unlimited and not paused;
where fewer than `min_history_days` days of the same kind qualify (a limit every weekday
evening), the most recent days of either kind stand in; with fewer still, the quarter has
no baseline (no credit).
Days are compared by local clock time, so DST days line up with ordinary ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final

import numpy as np

from ..timegrid import HOURS_PER_QUARTER, QUARTER, QUARTERS_PER_DAY, as_utc

if TYPE_CHECKING:
    from collections.abc import Mapping
    from zoneinfo import ZoneInfo

    from numpy.typing import NDArray

GATE_CLOSURE: Final = time(12, 0)  # local time, the day before the baseline's day


def gate_closure(day: date, zone: ZoneInfo) -> datetime:
    """The last moment (UTC) a baseline for local `day` may be committed."""
    return datetime.combine(day - timedelta(days=1), GATE_CLOSURE, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class BaselineCommitment:
    """A household's committed baseline for one local day (mean grid power per quarter)."""

    day: date
    committed_at: datetime  # when the server received it (never the household's clock)
    power_w: tuple[float, ...]

    def on_time(self, zone: ZoneInfo) -> bool:
        return as_utc(self.committed_at) <= gate_closure(self.day, zone)


@dataclass(frozen=True, slots=True)
class BaselineRule:
    lookback_days: int = 28
    comparable_days: int = 10
    min_history_days: int = 3
    tolerance: float = 0.10  # the cap: highest comparable import * (1 + tolerance) ...
    tolerance_kwh: float = 0.05  # ... + this much per quarter

    def __post_init__(self) -> None:
        if not 1 <= self.min_history_days <= self.comparable_days <= self.lookback_days <= 60:
            raise ValueError("need 1 <= min_history_days <= comparable_days <= lookback_days <= 60")
        if not (0 <= self.tolerance <= 1 and 0 <= self.tolerance_kwh <= 1):
            raise ValueError("tolerances are 0-1")


class Timeline:
    """Consecutive quarter hours from a local midnight, with their local day and clock slot."""

    def __init__(self, first_day: date, days: int, zone: ZoneInfo) -> None:
        self.first_day = first_day
        self.zone = zone
        start = datetime.combine(first_day, time(0), tzinfo=zone).astimezone(UTC)
        end = datetime.combine(first_day + timedelta(days=days), time(0), tzinfo=zone)
        self.start = start
        self.quarters = int((end.astimezone(UTC) - start) / QUARTER)
        day_index = np.empty(self.quarters, dtype=np.int64)
        slot = np.empty(self.quarters, dtype=np.int64)
        for index in range(self.quarters):
            local = (start + index * QUARTER).astimezone(zone)
            day_index[index] = (local.date() - first_day).days
            slot[index] = local.hour * 4 + local.minute // 15
        self.day_index = day_index
        self.slot = slot
        self.days = days

    def index_of(self, moment: datetime) -> int:
        return int((as_utc(moment) - self.start) / QUARTER)

    def day_quarters(self, day: int) -> NDArray[np.int64]:
        """Positions of local day number `day` (from `first_day`)."""
        return np.flatnonzero(self.day_index == day)


@dataclass(frozen=True, slots=True)
class BaselineDays:
    """How many of a household's days got which kind of baseline."""

    committed: int = 0
    late: int = 0  # committed after gate closure: history used instead
    invalid: int = 0  # wrong length for the day: history used instead
    history: int = 0  # nothing committed: history used
    capped_quarters: int = 0  # committed quarters lowered to the home's own history


def baselines(
    timeline: Timeline,
    history_kwh: NDArray[np.float64],
    days: range,
    commitments: Mapping[int, Mapping[int, BaselineCommitment]],
    rule: BaselineRule,
) -> tuple[NDArray[np.float64], list[BaselineDays]]:
    """Baseline import (kWh, NaN: none) per household and quarter of the timeline for local
    day numbers `days`, and what each household's days were based on.

    `history_kwh`: households x quarters, the measured import where it may serve as
    history (NaN elsewhere). `commitments`: household row -> day number -> commitment.
    """
    households = history_kwh.shape[0]
    grid = _by_clock(timeline, history_kwh)
    result = np.full(history_kwh.shape, np.nan)
    counts = [
        dict.fromkeys(("committed", "late", "invalid", "history", "capped"), 0)
        for _ in range(households)
    ]
    for day in days:
        weekend = (timeline.first_day + timedelta(days=day)).weekday() >= 5
        earlier = [
            past
            for past in range(day - 1, max(-1, day - 1 - rule.lookback_days), -1)
            if ((timeline.first_day + timedelta(days=past)).weekday() >= 5) == weekend
        ][: rule.comparable_days]
        positions = timeline.day_quarters(day)
        slots = timeline.slot[positions]
        recent = list(range(day - 1, max(-1, day - 1 - rule.lookback_days), -1))
        fallback, cap = _from_history(grid, earlier, rule)
        # A quarter limited on every comparable day (a recurring evening limit) has no
        # history of its own kind: the most recent days of either kind stand in.
        any_fallback, any_cap = _from_history(grid, recent[: rule.comparable_days], rule)
        missing = np.isnan(fallback)
        fallback[missing], cap[missing] = any_fallback[missing], any_cap[missing]
        result[:, positions] = fallback[:, slots]
        for row, by_day in commitments.items():
            commitment = by_day.get(day)
            if commitment is None:
                counts[row]["history"] += 1
                continue
            if len(commitment.power_w) != len(positions):
                counts[row]["invalid"] += 1
                continue
            if not commitment.on_time(timeline.zone):
                counts[row]["late"] += 1
                continue
            counts[row]["committed"] += 1
            committed = np.maximum(np.asarray(commitment.power_w), 0.0) * HOURS_PER_QUARTER / 1000
            day_cap = cap[row, slots]
            counts[row]["capped"] += int(np.count_nonzero(committed > day_cap))
            result[row, positions] = np.where(
                np.isnan(day_cap), np.nan, np.minimum(committed, day_cap)
            )
        for row in range(households):
            if row not in commitments:
                counts[row]["history"] += 1
    summary = [
        BaselineDays(
            committed=c["committed"],
            late=c["late"],
            invalid=c["invalid"],
            history=c["history"],
            capped_quarters=c["capped"],
        )
        for c in counts
    ]
    return result, summary


def _from_history(
    grid: NDArray[np.float64], days: list[int], rule: BaselineRule
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and cap per household and clock slot over `days` (NaN: too few known days)."""
    if not days:
        empty = np.full((grid.shape[0], QUARTERS_PER_DAY), np.nan)
        return empty, empty.copy()
    chosen = grid[:, days, :]
    known = ~np.isnan(chosen)
    seen = known.sum(axis=1)
    mean = np.where(known, chosen, 0.0).sum(axis=1) / np.maximum(seen, 1)
    highest = np.where(known, chosen, -np.inf).max(axis=1)
    enough = seen >= rule.min_history_days
    cap = np.where(enough, highest * (1 + rule.tolerance) + rule.tolerance_kwh, np.nan)
    return np.where(enough, mean, np.nan), cap


def _by_clock(timeline: Timeline, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """households x days x 96 local clock slots; the doubled hour of a DST end is averaged."""
    grid = np.full((values.shape[0], timeline.days, QUARTERS_PER_DAY), np.nan)
    flat = timeline.day_index * QUARTERS_PER_DAY + timeline.slot
    grid.reshape(values.shape[0], -1)[:, flat] = values  # the later of a doubled slot wins
    unique, first, repeats = np.unique(flat, return_index=True, return_counts=True)
    for index, position in zip(unique[repeats > 1], first[repeats > 1], strict=True):
        pair = values[:, [position, position + QUARTERS_PER_DAY // 24]]
        known = ~np.isnan(pair)
        mean = np.where(known, pair, 0.0).sum(axis=1) / np.maximum(known.sum(axis=1), 1)
        grid.reshape(values.shape[0], -1)[:, index] = np.where(known.any(axis=1), mean, np.nan)
    return grid
