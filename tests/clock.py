"""The tests' clock: one fixed instant, and clocks that start there.

No test reads the machine's wall clock (ruff's banned-api, TID251, forbids it under tests/;
this module alone may, to read the test clock), so the suite passes at any hour. A test that
needs "now" uses `NOW`; one that moves time by hand uses a `FixedClock`, injected wherever
production code takes a `clock`. Where real servers, brokers and threads need time to flow,
`running_clock()` starts the wall clock at `NOW` and lets it run, and `clock_now()` reads it.
Every Home Assistant test runs on such a clock, and its `freezer` stops it there
(tests/conftest.py); time then moves with `freezer.tick` and `async_fire_time_changed`, as
in Home Assistant's own tests.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import freezegun
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

if TYPE_CHECKING:
    from collections.abc import Iterator

# A Sunday noon in winter: 13:00 in Amsterdam, 04:00 in Home Assistant's test time zone
# (US/Pacific), so the planners' default 07:00 departure lies three hours ahead.
NOW: Final = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@dataclass
class FixedClock:
    """A clock that stands still until the test moves it; call it for the time."""

    current: datetime = NOW

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> datetime:
        self.current += delta
        return self.current


# freezegun answers the real time to calls made a few frames below a module it ignores, such
# as `threading`, so that waits in threads end while the clock stands still.
_THREADS_SEE_REAL_TIME: Final = freezegun.api.call_stack_inspection_limit


@contextmanager
def _stack_inspection(limit: int) -> Iterator[None]:
    before = freezegun.api.call_stack_inspection_limit
    freezegun.api.call_stack_inspection_limit = limit
    try:
        yield
    finally:
        freezegun.api.call_stack_inspection_limit = before


@contextmanager
def running_clock(start: datetime = NOW) -> Iterator[None]:
    """The wall clock (datetime, time.time, Home Assistant's dt_util) from `start`, running.

    Monotonic time keeps pace, so timeouts and keep-alives of real servers behave.
    """
    # A running clock needs no real time for threads, and it would mix two clocks: a deadline
    # an executor job's first function sets in real time, the next function down compares
    # with the ticking one.
    with _stack_inspection(0), freeze_time(start, tick=True):
        yield


@contextmanager
def stopped_clock() -> Iterator[FrozenDateTimeFactory]:
    """The test clock stopped where it stands, to be moved by hand (Home Assistant's freezer)."""
    with _stack_inspection(_THREADS_SEE_REAL_TIME), freeze_time(clock_now()) as frozen:
        assert isinstance(frozen, FrozenDateTimeFactory)  # it neither ticks nor auto-ticks
        yield frozen


def clock_now() -> datetime:
    """What the running or frozen test clock says; never the machine's time."""
    if not freezegun.api.freeze_factories:
        raise RuntimeError("no test clock runs: use running_clock() or the freezer fixture")
    return datetime.now(UTC)
