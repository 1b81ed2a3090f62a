"""The DSO's capacity signals: one typed cap series per transformer, whatever the channel.

Both inputs (OpenADR 3 and the plain HTTP API) produce a `CapSignal`; allocation reads
the caps in force from it. Caps are for the whole transformer, members and non-members.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from netbewust_core.limits import LimitInterval

MAX_INTERVALS = 2000  # ~20 days of quarter hours; anything longer is hostile or a mistake
# A signal starting further ahead than this is a mistake (a year typed wrong, 9999).
MAX_AHEAD = timedelta(days=366)
# Above any transformer; also the live allocator's bound on the non-member load.
MAX_SIGNAL_W = 1e9


class SignalError(ValueError):
    """A DSO signal that does not validate; the message says why, for the DSO to read."""


class CapMode(StrEnum):
    """The pilot's three modes."""

    FRAME = "frame"
    EMERGENCY = "emergency"
    DYNAMIC = "dynamic"


class SignalSource(StrEnum):
    """Which channel a cap came from; fallbacks are sources too, so they show in the audit."""

    OPENADR = "openadr"
    HTTP = "http"
    SAFE_MODE = "safe_mode"
    CONFIGURED_DEFAULT = "configured_default"


def _require_utc(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise SignalError(f"{name} must be a UTC timestamp, got {value!r}")


def _check_watts(value: float | None, name: str) -> None:
    if value is not None and not 0 <= value <= MAX_SIGNAL_W:  # also rejects NaN
        raise SignalError(
            f"{name} must be finite and within [0, {MAX_SIGNAL_W:.0f}] W, got {value!r}"
        )


def parse_timestamp(value: object, name: str) -> datetime:
    """An ISO 8601 timestamp with an offset, in UTC (both DSO inputs send them)."""
    if not isinstance(value, str) or len(value) > 40:
        raise SignalError(f"{name} must be an ISO 8601 timestamp with an offset")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SignalError(f"{name} is not an ISO 8601 timestamp: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise SignalError(f"{name} needs a UTC offset (e.g. 'Z')")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the last UTC date-time
        raise SignalError(f"{name} is out of range: {value!r}") from None


def check_ahead(start: datetime, now: datetime, name: str) -> None:
    """A new signal's start may be at most `MAX_AHEAD` from `now` (checked on receipt only:
    what is stored stays readable)."""
    if start > now + MAX_AHEAD:
        raise SignalError(f"{name} {start.isoformat()} is more than {MAX_AHEAD.days} days ahead")


@dataclass(frozen=True, slots=True)
class CapInterval:
    """Transformer caps from `start` (inclusive) to `end` (exclusive); None: no cap.

    `non_member_load_w` is the DSO's measurement (or forecast) of the load behind the
    transformer that is not ours, when the DSO sends one. `load_forecast_w` is the DSO's
    forecast of the whole transformer load (members and non-members), for a dynamic limit.
    """

    start: datetime
    end: datetime
    import_w: float | None
    export_w: float | None = None
    non_member_load_w: float | None = None
    load_forecast_w: float | None = None

    def __post_init__(self) -> None:
        _require_utc(self.start, "start")
        _require_utc(self.end, "end")
        if self.end <= self.start:
            raise SignalError(f"interval ends ({self.end}) before it starts ({self.start})")
        if self.import_w is None and self.export_w is None:
            raise SignalError(f"interval at {self.start.isoformat()} caps nothing")
        _check_watts(self.import_w, "import cap")
        _check_watts(self.export_w, "export cap")
        _check_watts(self.non_member_load_w, "non-member load")
        _check_watts(self.load_forecast_w, "load forecast")

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def as_limit_interval(self) -> LimitInterval:
        """The engine's interval type, for allocation (transformer totals, no phases)."""
        return LimitInterval(
            start=self.start, end=self.end, max_import_w=self.import_w, max_export_w=self.export_w
        )


@dataclass(frozen=True, slots=True)
class CapSignal:
    """One signal from the DSO for one transformer, as received (before any cancel)."""

    signal_id: str
    transformer_id: str
    source: SignalSource
    mode: CapMode
    received_at: datetime
    intervals: tuple[CapInterval, ...]
    issuer: str  # the DSO account, the VTN's program id, or "server" for fallbacks
    request_id: str | None = None  # the DSO's idempotency key (HTTP) or event id (OpenADR)
    cancelled_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_utc(self.received_at, "received_at")
        if not self.intervals:
            raise SignalError("a signal needs at least one interval")
        if len(self.intervals) > MAX_INTERVALS:
            raise SignalError(f"at most {MAX_INTERVALS} intervals, got {len(self.intervals)}")
        ordered = tuple(sorted(self.intervals, key=lambda interval: interval.start))
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise SignalError(f"intervals overlap at {after.start.isoformat()}")
        object.__setattr__(self, "intervals", ordered)

    @property
    def start(self) -> datetime:
        return self.intervals[0].start

    @property
    def end(self) -> datetime:
        return self.intervals[-1].end

    def is_active(self, now: datetime) -> bool:
        return self.cancelled_at is None or now < self.cancelled_at

    def interval_at(self, now: datetime) -> CapInterval | None:
        if not self.is_active(now):
            return None
        for interval in self.intervals:
            if interval.contains(now):
                return interval
        return None
