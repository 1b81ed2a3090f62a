"""Price entities' attribute lists and the price book's fetch schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from custom_components.netbewust.core.planning.prices import (
    DayAheadPrices,
    FetchStatus,
    PriceError,
    PricePoint,
)
from custom_components.netbewust.planner.price_source import (
    PriceBook,
    points_from_attributes,
    unit_scale,
)

START = datetime(2026, 1, 14, 23, 0, tzinfo=UTC)


def test_hourly_entries_without_end_last_until_the_next() -> None:
    entries = [
        {"time": (START + timedelta(hours=h)).isoformat(), "price": 80 + h} for h in range(3)
    ]
    points = points_from_attributes({"prices": entries}, "EUR/MWh")
    assert [p.end - p.start for p in points] == [timedelta(hours=1)] * 3
    assert points[1].price_eur_per_kwh == pytest.approx(0.081)


@pytest.mark.parametrize(
    ("unit", "scale"), [("EUR/MWh", 0.001), ("ct/kWh", 0.01), ("EUR/kWh", 1.0), (None, 1.0)]
)
def test_units(unit: str | None, scale: float) -> None:
    assert unit_scale(unit) == scale


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"raw_today": "not a list"},
        {"raw_today": [{"start": "2026-01-15T00:00:00", "end": None, "value": 1}]},  # naive
        {"raw_today": [{"start": START.isoformat(), "value": "high"}]},
        {"raw_today": [{"start": START.isoformat(), "value": float("nan")}]},
        {"raw_today": [{"start": START.isoformat(), "value": 0.1}]},  # one entry, no end
        {"raw_today": [7]},
    ],
)
def test_bad_attributes_are_rejected(attributes: dict[str, object]) -> None:
    with pytest.raises(PriceError):
        points_from_attributes(attributes, "EUR/kWh")


def published(day: date) -> DayAheadPrices:
    point = PricePoint(START, START + timedelta(hours=1), 0.1)
    return DayAheadPrices(FetchStatus.PUBLISHED, day, "NL", (point,))


def test_tomorrow_is_wanted_from_13_cet_and_failures_back_off() -> None:
    book = PriceBook()
    morning = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)  # 11:00 CET
    assert book.wanted(morning) == [date(2026, 1, 15)]
    assert book.record(published(date(2026, 1, 15)))
    # Nothing missing: ask again when tomorrow's prices are published, 13:00 CET.
    assert book.next_attempt(morning) == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    afternoon = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
    assert book.wanted(afternoon) == [date(2026, 1, 16)]
    late = DayAheadPrices(FetchStatus.NOT_YET_PUBLISHED, date(2026, 1, 16), "NL")
    delays = []
    for _ in range(7):
        book.record(late)
        delays.append(book.next_attempt(afternoon) - afternoon)
    assert delays[:3] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert delays[-1] == timedelta(minutes=30)  # capped
    assert "not_yet_published" in book.last_detail


def test_dst_day_has_92_quarter_hours() -> None:
    # 29 March 2026: clocks go forward; the CET day runs 23:00 UTC to 22:00 UTC.
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    entries = [
        {"start": (start + timedelta(hours=h)).isoformat(), "value": 0.1 + h / 100}
        for h in range(23)
    ]
    book = PriceBook()
    points = points_from_attributes({"prices_today": entries}, "EUR/kWh")
    book.record(DayAheadPrices(FetchStatus.PUBLISHED, date(2026, 3, 29), "NL", points))
    series = book.series()
    assert series is not None
    assert len(series.values) == 92
    assert series.end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


def test_a_day_with_two_prices_for_one_quarter_hour_is_rejected_not_kept() -> None:
    """Ambiguous data (e.g. two areas mixed) is a failed fetch, retried, never a crash."""
    book = PriceBook()
    clash = (
        PricePoint(START, START + timedelta(hours=1), 0.1),
        PricePoint(START, START + timedelta(hours=1), 0.2),
    )
    result = DayAheadPrices(FetchStatus.PUBLISHED, date(2026, 1, 15), "NL", clash)
    assert not book.record(result)
    assert book.series() is None
    assert book.failures[date(2026, 1, 15)] == 1
    assert "two different prices" in book.last_detail
