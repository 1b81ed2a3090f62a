"""The notice limiter: one notice per household and code per window, whatever the flood."""

from __future__ import annotations

from datetime import timedelta

from community_server import notices
from community_server.notices import NOTICE_INTERVAL, NoticeLimiter
from netbewust_core.protocol.messages import Message, Notice, NoticeCode

from .conftest import NOW
from .messages import telemetry

AHEAD = NoticeCode.FUTURE_TIMESTAMP


def test_one_notice_per_household_per_window_naming_the_refused_message() -> None:
    limiter = NoticeLimiter()
    first = limiter.notice(telemetry(0), AHEAD, NOW)
    assert first is not None
    assert (first.community, first.household, first.sent_at) == ("wijk-1", "huis-1", NOW)
    assert first.body == Notice(ref_id="huis-1-t0", code=AHEAD, server_time=NOW)
    flood = [limiter.notice(telemetry(i), AHEAD, NOW + timedelta(seconds=i)) for i in range(100)]
    assert flood == [None] * 100
    # Another household has a window of its own.
    assert limiter.notice(telemetry(0, "huis-2"), AHEAD, NOW) is not None
    just_before = NOW + NOTICE_INTERVAL - timedelta(microseconds=1)
    assert limiter.notice(telemetry(1), AHEAD, just_before) is None
    again = limiter.notice(telemetry(2), AHEAD, NOW + NOTICE_INTERVAL)
    assert isinstance(again, Message)
    assert isinstance(again.body, Notice)
    assert again.body.ref_id == "huis-1-t2"


def test_a_clock_that_went_back_does_not_close_the_window_for_long() -> None:
    limiter = NoticeLimiter()
    assert limiter.notice(telemetry(0), AHEAD, NOW) is not None
    assert limiter.notice(telemetry(1), AHEAD, NOW - timedelta(hours=1)) is not None


def test_households_whose_window_passed_are_forgotten_beyond_a_bound() -> None:
    limiter = NoticeLimiter()
    for index in range(notices._PRUNE_ABOVE + 2):
        assert limiter.notice(telemetry(0, f"huis-{index}"), AHEAD, NOW) is not None
    later = NOW + NOTICE_INTERVAL
    assert limiter.notice(telemetry(0, "huis-new"), AHEAD, later) is not None
    assert list(limiter._last) == [("wijk-1", "huis-new", AHEAD)]  # memory stays bounded
