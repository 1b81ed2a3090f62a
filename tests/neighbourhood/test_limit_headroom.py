"""Day-ahead limits carry headroom for the home's base-load forecast error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from community_server.neighbourhood.planning import _with_headroom
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource

START = datetime(2026, 1, 12, 11, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def test_import_caps_rise_within_the_fuse_and_export_caps_stay() -> None:
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=START,
        expires_at=START + 3 * QUARTER,
        intervals=(
            LimitInterval(START, START + QUARTER, max_import_w=4000.0),
            LimitInterval(START + QUARTER, START + 2 * QUARTER, max_import_w=17_100.0),
            LimitInterval(START + 2 * QUARTER, START + 3 * QUARTER, max_export_w=2000.0),
        ),
    )
    raised = _with_headroom(limit, 300.0, fuse_w=17_250.0)
    assert [i.max_import_w for i in raised.intervals] == [4300.0, 17_250.0, None]
    assert raised.intervals[2].max_export_w == 2000.0
    assert (raised.source, raised.expires_at) == (limit.source, limit.expires_at)
