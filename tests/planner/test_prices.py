"""Price parsing: 15-minute and hourly data, gaps, DST days, tariff rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from netbewust_core.planning.prices import (
    ExportRule,
    PriceError,
    PricePoint,
    PriceSeries,
    TariffRules,
    quarter_hour_series,
)
from netbewust_core.timegrid import (
    floor_to_quarter_hour,
    local_day_bounds,
    local_day_windows,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
Q = timedelta(minutes=15)
H = timedelta(hours=1)


def _points(start: datetime, length: timedelta, prices: list[float]) -> list[PricePoint]:
    return [
        PricePoint(start + i * length, start + (i + 1) * length, p) for i, p in enumerate(prices)
    ]


def test_hourly_prices_are_expanded_to_quarter_hours() -> None:
    start = datetime(2026, 3, 2, 23, tzinfo=UTC)
    series = quarter_hour_series(_points(start, H, [0.1, 0.2]))
    assert series.start == start
    assert series.values == (0.1,) * 4 + (0.2,) * 4
    assert series.end == start + 2 * H


def test_quarter_hour_prices_are_kept_and_may_arrive_unordered() -> None:
    start = datetime(2026, 3, 2, 23, tzinfo=UTC)
    points = _points(start, Q, [0.1, 0.2, 0.3])
    series = quarter_hour_series(reversed(points))
    assert series.values == (0.1, 0.2, 0.3)


def test_local_times_are_converted_to_utc() -> None:
    local = datetime(2026, 7, 1, 0, tzinfo=AMSTERDAM)
    series = quarter_hour_series(_points(local, Q, [0.1]))
    assert series.start == datetime(2026, 6, 30, 22, tzinfo=UTC)


def test_missing_day_stops_the_series_at_the_gap() -> None:
    day1 = datetime(2026, 3, 1, 23, tzinfo=UTC)
    day3 = day1 + timedelta(days=2)
    series = quarter_hour_series(_points(day1, Q, [0.1] * 96) + _points(day3, Q, [0.2] * 96))
    assert len(series.values) == 96
    assert series.window(day1, 96) == (0.1,) * 96
    assert series.window(day1, 97) is None  # tomorrow unknown: no invented prices
    assert series.window(day1 + 7 * Q, 4) == (0.1,) * 4
    assert series.window(day1 + timedelta(minutes=5), 4) is None  # off the grid
    assert series.window(day1 - Q, 4) is None


def test_series_from_an_explicit_start_inside_the_data() -> None:
    start = datetime(2026, 3, 2, 23, tzinfo=UTC)
    series = quarter_hour_series(_points(start, H, [0.1, 0.2]), start=start + 5 * Q)
    assert series.values == (0.2,) * 3


@pytest.mark.parametrize(
    ("day", "quarters"),
    [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100), (date(2026, 6, 1), 96)],
)
def test_dst_days_have_92_or_100_quarter_hours(day: date, quarters: int) -> None:
    start, end = local_day_bounds(day, AMSTERDAM)
    assert (end - start) / Q == quarters
    # A day of hourly prices (23, 25 or 24 of them) expands to the same count.
    series = quarter_hour_series(_points(start, H, [0.1] * (quarters // 4)))
    assert len(series.values) == quarters
    assert series.end == end


def test_horizon_over_the_autumn_change_splits_into_local_days() -> None:
    start = datetime(2026, 10, 24, 12, tzinfo=UTC)  # 14:00 local
    windows = local_day_windows(start, 48 * 4, Q, AMSTERDAM)
    assert [w.day for w in windows] == [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)]
    assert [w.steps_in_day for w in windows] == [96, 100, 96]
    assert windows[0].end_step - windows[0].start_step == 10 * 4  # 14:00 to midnight
    assert windows[1].end_step - windows[1].start_step == 100
    assert windows[0].end_step == windows[1].start_step
    assert windows[-1].end_step == 192
    assert windows[0].fraction == pytest.approx(40 / 96)


def test_quarter_hour_alignment() -> None:
    moment = datetime(2026, 3, 29, 1, 59, 59, tzinfo=AMSTERDAM)
    assert floor_to_quarter_hour(moment) == datetime(2026, 3, 29, 0, 45, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        floor_to_quarter_hour(datetime(2026, 3, 29, 1, 0))


@pytest.mark.parametrize(
    ("start", "end", "price", "message"),
    [
        (
            datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
            datetime(2026, 1, 1, 0, 20, tzinfo=UTC),
            0.1,
            "aligned",
        ),
        (datetime(2026, 1, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, tzinfo=UTC), 0.1, "aligned"),
        (
            datetime(2026, 1, 1, 0, tzinfo=UTC),
            datetime(2026, 1, 1, 1, tzinfo=UTC),
            float("nan"),
            "number",
        ),
        (datetime(2026, 1, 1, 0), datetime(2026, 1, 1, 1), 0.1, "timezone-aware"),
    ],
)
def test_bad_price_points_are_rejected(
    start: datetime, end: datetime, price: float, message: str
) -> None:
    with pytest.raises(PriceError, match=message):
        PricePoint(start, end, price)


def test_conflicting_and_empty_price_data_is_rejected() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(PriceError, match="two different prices"):
        quarter_hour_series([PricePoint(start, start + H, 0.1), PricePoint(start, start + Q, 0.2)])
    with pytest.raises(PriceError, match="no prices"):
        quarter_hour_series([])
    assert PriceSeries(start, (0.1,)).window(start, 1) == (0.1,)


def test_all_in_import_price_adds_tax_and_markup_then_vat() -> None:
    rules = TariffRules(energy_tax_eur_per_kwh=0.10, supplier_markup_eur_per_kwh=0.02, vat_pct=21)
    assert rules.import_price(0.08) == pytest.approx(0.20 * 1.21)
    assert rules.import_price(-0.30) == pytest.approx(-0.18 * 1.21)
    assert rules.export_price(-0.05) == -0.05


@pytest.mark.parametrize(
    ("rule", "expected"),
    [(ExportRule.SPOT, -0.05), (ExportRule.SPOT_MINUS_FEE, -0.07), (ExportRule.FIXED, 0.01)],
)
def test_export_rules(rule: ExportRule, expected: float) -> None:
    rules = TariffRules(
        vat_pct=21, export_rule=rule, export_fee_eur_per_kwh=0.02, export_fixed_eur_per_kwh=0.01
    )
    assert rules.export_price(-0.05) == pytest.approx(expected)
    imports, exports = rules.all_in((-0.05, 0.1))
    assert exports[0] == pytest.approx(expected)
    assert imports == pytest.approx((-0.05 * 1.21, 0.1 * 1.21))


def test_scenario_rule_spot_plus_tax() -> None:
    rules = TariffRules(energy_tax_eur_per_kwh=0.15)
    imports, exports = rules.all_in((-0.01751,))
    assert imports == pytest.approx((0.13249,))
    assert exports == (-0.01751,)


def test_bad_tariff_rules_are_rejected() -> None:
    with pytest.raises(PriceError, match="VAT"):
        TariffRules(vat_pct=121)
    with pytest.raises(PriceError, match="numbers"):
        TariffRules(energy_tax_eur_per_kwh=float("inf"))
