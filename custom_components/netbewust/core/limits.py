"""External limits: the one type every remote or planned cap on the connection uses.

A limit only ever lowers what the fuse allows. It is a series of intervals with an
expiry; nothing is applied past the expiry, and outside its intervals it caps nothing.
The planner, the community protocol and the DSO inputs all produce this type.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class LimitSource(StrEnum):
    """Where a cap on the connection comes from, in the order they are usually shown."""

    FUSE = "fuse"
    HOUSEHOLD_PEAK = "household_peak"
    PLANNER = "planner"
    COMMUNITY = "community"
    DSO = "dso"
    EMERGENCY = "emergency"


class LimitError(ValueError):
    """An external limit that does not validate."""


def _require_utc(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise LimitError(f"{name} must be a UTC timestamp, got {value!r}")


def _check_optional_watts(value: float | None, name: str) -> None:
    if value is not None and not value >= 0:  # also rejects NaN
        raise LimitError(f"{name} must be >= 0 W, got {value!r}")


@dataclass(frozen=True, slots=True)
class LimitInterval:
    """A cap in force from `start` (inclusive) to `end` (exclusive).

    `None` means "no cap" for that direction. Per-phase caps, when given, have one
    value per phase of the connection (L1, L2, L3) and apply on top of the totals.
    """

    start: datetime
    end: datetime
    max_import_w: float | None = None
    max_export_w: float | None = None
    max_import_w_per_phase: tuple[float, ...] | None = None
    max_export_w_per_phase: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _require_utc(self.start, "start")
        _require_utc(self.end, "end")
        if self.end <= self.start:
            raise LimitError(f"interval ends ({self.end}) before it starts ({self.start})")
        _check_optional_watts(self.max_import_w, "max_import_w")
        _check_optional_watts(self.max_export_w, "max_export_w")
        for name in ("max_import_w_per_phase", "max_export_w_per_phase"):
            per_phase: tuple[float, ...] | None = getattr(self, name)
            if per_phase is None:
                continue
            if len(per_phase) not in (1, 3):
                raise LimitError(f"{name} needs 1 or 3 values, got {len(per_phase)}")
            for value in per_phase:
                _check_optional_watts(value, name)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class ExternalLimit:
    """A series of capped intervals from one source, valid until `expires_at`."""

    source: LimitSource
    issued_at: datetime
    expires_at: datetime
    intervals: tuple[LimitInterval, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        _require_utc(self.issued_at, "issued_at")
        _require_utc(self.expires_at, "expires_at")
        if self.expires_at <= self.issued_at:
            raise LimitError("a limit must expire after it is issued")
        ordered = sorted(self.intervals, key=lambda interval: interval.start)
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise LimitError(f"intervals overlap at {after.start.isoformat()}")
        object.__setattr__(self, "intervals", tuple(ordered))

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def interval_at(self, now: datetime) -> LimitInterval | None:
        """The interval in force at `now`; None when expired or between intervals."""
        if self.is_expired(now):
            return None
        for interval in self.intervals:
            if interval.contains(now):
                return interval
            if interval.start > now:
                break
        return None

    def next_interval_after(self, now: datetime) -> LimitInterval | None:
        """The first interval starting after `now` that begins before expiry."""
        for interval in self.intervals:
            if interval.start > now and interval.start < self.expires_at:
                return interval
        return None
