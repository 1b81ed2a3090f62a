"""The demo's offline day-ahead prices: Nord Pool's shape of answer, never Nord Pool's data."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from community_server.demo_prices import DEMO_AREA, LABEL, DemoPrices
from community_server.neighbourhood.scenario import WINTER_DAY_AHEAD
from netbewust_core.planning.prices import FetchStatus, quarter_hour_series
from netbewust_core.protocol.messages import QUARTER_HOUR

WINTER_DAY = date(2026, 1, 14)


async def test_a_winter_day_in_quarter_hours_with_cheap_night_and_evening_peak() -> None:
    answer = await DemoPrices().fetch_day(WINTER_DAY)
    assert answer.status is FetchStatus.PUBLISHED
    assert answer.final
    assert answer.area == DEMO_AREA
    assert "not Nord Pool" in answer.detail
    assert answer.detail == LABEL
    points = answer.points
    assert len(points) == 96
    # The Amsterdam delivery day: 23:00 UTC the evening before (CET), gap-free.
    assert points[0].start == datetime(2026, 1, 13, 23, 0, tzinfo=UTC)
    series = quarter_hour_series(points)
    assert len(series.values) == 96
    assert all(point.end - point.start == QUARTER_HOUR for point in points)
    by_hour = [sum(series.values[4 * h : 4 * h + 4]) / 4 for h in range(24)]
    assert by_hour.index(min(by_hour)) in range(6)
    assert by_hour.index(max(by_hour)) == WINTER_DAY_AHEAD.index(max(WINTER_DAY_AHEAD))
    assert max(by_hour[0:5]) < min(by_hour[17:20])
    assert all(0.03 < value < 0.35 for value in series.values)


async def test_the_same_day_is_the_same_in_any_order_and_seeds_differ() -> None:
    prices = DemoPrices(seed=3)
    later = await prices.fetch_day(WINTER_DAY + timedelta(days=1))
    first = await prices.fetch_day(WINTER_DAY)
    assert first == await DemoPrices(seed=3).fetch_day(WINTER_DAY)
    assert later == await DemoPrices(seed=3).fetch_day(WINTER_DAY + timedelta(days=1))
    assert first.points != (await DemoPrices(seed=4).fetch_day(WINTER_DAY)).points


@pytest.mark.parametrize(("day", "quarters"), [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100)])
async def test_dst_days_have_92_or_100_quarter_hours(day: date, quarters: int) -> None:
    answer = await DemoPrices().fetch_day(day)
    assert answer.status is FetchStatus.PUBLISHED
    assert len(answer.points) == quarters
    assert len(quarter_hour_series(answer.points).values) == quarters


@pytest.mark.parametrize(
    "day", [date.min, date.max, date(1970, 1, 1), date(2024, 2, 29), date(9999, 12, 30)]
)
async def test_no_date_makes_it_raise(day: date) -> None:
    answer = await DemoPrices().fetch_day(day)
    assert answer.delivery_day == day
    if answer.status is FetchStatus.PUBLISHED:
        assert answer.points
    else:
        assert answer.status is FetchStatus.FAILED
        assert not answer.points
        assert LABEL in answer.detail


async def test_a_broken_demo_clock_is_a_failed_answer_not_an_error() -> None:
    def broken(moment: datetime) -> datetime:
        raise OverflowError("date value out of range")

    answer = await DemoPrices(demo_moment=broken).fetch_day(WINTER_DAY)
    assert answer.status is FetchStatus.FAILED
    assert "out of range" in answer.detail


async def test_on_the_demo_clock_the_evening_comes_when_the_profiles_are_at_evening() -> None:
    # The demo starts its profiles at 17:30 local (16:30 UTC) while it is 08:00 UTC.
    started = datetime.combine(WINTER_DAY, time(8), tzinfo=UTC)
    profile_start = datetime.combine(WINTER_DAY, time(16, 30), tzinfo=UTC)

    def demo_moment(real: datetime) -> datetime:
        return profile_start + (real - started)

    shifted = DemoPrices(demo_moment=demo_moment)
    plain = DemoPrices()
    # Real 09:30 UTC is 19:00 local on the demo clock: the evening peak, not the morning.
    evening = datetime.combine(WINTER_DAY, time(9, 30), tzinfo=UTC)
    night = evening + timedelta(hours=8)  # 03:00 on the demo clock
    assert shifted.price(evening) > 1.5 * shifted.price(night)
    # Without the demo clock the same real moments are 10:30 and 18:30 local.
    assert plain.price(evening) < plain.price(night)
