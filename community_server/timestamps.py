"""How far ahead of the server's clock a stamped moment may be before it is refused.

A report "measured" in 2099 would count as fresh for 73 years; a VTN event "modified"
tomorrow says one of the two clocks is wrong. Every input stamped more than
`CLOCK_TOLERANCE` ahead of our clock is rejected with a reason that names the gap
(an MQTT message's `sent_at` and a report's `measured_at`, an OpenADR event's creation
and modification times, the HTTP DSO API's `Date` header). Schedules (a frame's start, a baseline's
start) are about the future and are bounded elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# The household session refuses server messages stamped this far ahead: one tolerance
# for both directions (NTP keeps clocks within a second; five minutes covers a box
# without it).
from netbewust_core.protocol.session import CLOCK_TOLERANCE

if TYPE_CHECKING:
    from datetime import datetime, timedelta

__all__ = ["CLOCK_TOLERANCE", "FUTURE_TIMESTAMP", "ahead_by", "future_reason"]

FUTURE_TIMESTAMP = "future_timestamp"  # the rejection reason code


def ahead_by(moment: datetime, now: datetime) -> timedelta | None:
    """How far `moment` is ahead of `now` beyond the tolerance; None when it is not."""
    gap = moment - now
    return gap if gap > CLOCK_TOLERANCE else None


def future_reason(name: str, moment: datetime, now: datetime) -> str | None:
    """The rejection reason for a stamp too far ahead, or None when it is acceptable."""
    gap = ahead_by(moment, now)
    if gap is None:
        return None
    return (
        f"{name} {moment.isoformat()} is {gap} ahead of the server's clock "
        f"(tolerance {CLOCK_TOLERANCE}): check the clock"
    )
