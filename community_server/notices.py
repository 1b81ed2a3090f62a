"""Telling a household why its messages are refused, without amplifying a flood.

A household whose clock runs ahead has every report refused (`future_timestamp`); protocol
v1 answers households with no rejection, so the server sends it a `notice` on its
receipts channel (QoS 0, like a receipt: a household that does not read that channel
never subscribes, and the broker drops it). At most one per household and code every
`NOTICE_INTERVAL`, however many messages it refuses: the household forgets a notice's
news after two such windows without one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from netbewust_core.protocol.messages import Message, Notice, NoticeCode

if TYPE_CHECKING:
    from datetime import datetime

NOTICE_INTERVAL = timedelta(minutes=5)
# Above this many households remembered, those whose window has passed are forgotten.
_PRUNE_ABOVE = 1000


class NoticeLimiter:
    """Decides which refusals get a notice."""

    def __init__(self, interval: timedelta = NOTICE_INTERVAL) -> None:
        self._interval = interval
        self._last: dict[tuple[str, str, NoticeCode], datetime] = {}

    def notice(self, refused: Message, code: NoticeCode, now: datetime) -> Message | None:
        """The notice to send the sender of `refused`, or None within its window."""
        key = (refused.community, refused.household, code)
        last = self._last.get(key)
        # A clock that went back (last > now) opens the window again rather than closing it.
        if last is not None and last <= now < last + self._interval:
            return None
        if len(self._last) > _PRUNE_ABOVE:
            self._last = {k: t for k, t in self._last.items() if t <= now < t + self._interval}
        self._last[key] = now
        return Message(
            community=refused.community,
            household=refused.household,
            sent_at=now,
            body=Notice(ref_id=refused.message_id, code=code, server_time=now),
        )
