"""Forecast helpers: base-load profile, degree-day heat demand and its calibration."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from netbewust_core.planning.forecast import (
    DegreeDayModel,
    ForecastError,
    base_load_profile,
    calibrate_degree_days,
    daily_mean_temperatures,
    heat_pump_days,
)
from netbewust_core.timegrid import local_day_windows

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
Q = timedelta(minutes=15)


def test_profile_averages_per_local_weekday_and_quarter_hour() -> None:
    monday_0800 = datetime(2026, 1, 5, 8, tzinfo=AMSTERDAM)
    samples = [
        (monday_0800, 400.0),
        (monday_0800 + timedelta(weeks=1), 600.0),  # same slot a week later
        (monday_0800 + Q, 1000.0),
        (monday_0800 + timedelta(days=1), 2000.0),  # Tuesday 08:00
    ]
    profile = base_load_profile(samples, AMSTERDAM)
    start = monday_0800 + timedelta(weeks=3)
    forecast = profile.forecast(start, 2, Q)
    assert forecast == (500.0, 1000.0)
    assert profile.forecast(start + timedelta(days=1), 1, Q) == (2000.0,)
    # Wednesday 08:00 has no samples: the mean of 08:00 over all weekdays.
    assert profile.forecast(start + timedelta(days=2), 1, Q) == pytest.approx((1000.0,))
    # A quarter hour never seen on any day: the overall mean.
    assert profile.forecast(start + timedelta(hours=3), 1, Q) == pytest.approx((1000.0,))


def test_profile_follows_local_time_across_dst() -> None:
    summer = datetime(2026, 7, 6, 8, tzinfo=AMSTERDAM)  # Monday 08:00 CEST
    profile = base_load_profile([(summer, 700.0), (summer + Q, 100.0)], AMSTERDAM)
    winter = datetime(2026, 11, 2, 8, tzinfo=AMSTERDAM)  # Monday 08:00 CET
    assert profile.forecast(winter.astimezone(UTC), 1, Q) == (700.0,)


def test_profile_skips_glitches_and_needs_some_data() -> None:
    moment = datetime(2026, 1, 5, 8, tzinfo=UTC)
    profile = base_load_profile(
        [(moment, 300.0), (moment, float("nan")), (moment, -5.0)], AMSTERDAM
    )
    assert profile.forecast(moment, 1, Q) == (300.0,)
    with pytest.raises(ForecastError, match="no usable"):
        base_load_profile([(moment, float("nan"))], AMSTERDAM)


def test_degree_day_heat_need() -> None:
    model = DegreeDayModel(base_temperature_c=18, per_degree_day_wh=5000, fixed_wh=2000)
    assert model.heat_need_wh(8.0) == 52000
    assert model.heat_need_wh(25.0) == 2000  # no heating, only the fixed part
    with pytest.raises(ForecastError):
        DegreeDayModel(per_degree_day_wh=-1)


def test_calibration_recovers_the_model() -> None:
    truth = DegreeDayModel(base_temperature_c=18, per_degree_day_wh=4500, fixed_wh=3000)
    observations = [(t, truth.heat_need_wh(t)) for t in (-2.0, 3.0, 7.5, 12.0, 16.0)]
    fitted = calibrate_degree_days(observations)
    assert fitted.per_degree_day_wh == pytest.approx(4500)
    assert fitted.fixed_wh == pytest.approx(3000)


def test_calibration_clips_negative_parameters_and_rejects_too_little_data() -> None:
    fitted = calibrate_degree_days([(0.0, 30000.0), (10.0, 10000.0), (5.0, 22000.0)], 12.0)
    assert fitted.fixed_wh >= 0
    assert fitted.per_degree_day_wh > 0
    with pytest.raises(ForecastError, match="two or more days"):
        calibrate_degree_days([(5.0, 1000.0), (5.0, 1200.0)])
    with pytest.raises(ForecastError):
        calibrate_degree_days([(5.0, float("nan"))])


def test_daily_means_and_heat_pump_days_over_a_partial_day() -> None:
    start = datetime(2026, 1, 5, 11, tzinfo=UTC)  # 12:00 local: half a day left
    forecast = [(start + i * timedelta(hours=1), 4.0 if i < 12 else 8.0) for i in range(36)]
    means = daily_mean_temperatures(forecast, AMSTERDAM)
    assert means[date(2026, 1, 5)] == pytest.approx(4.0)
    model = DegreeDayModel(per_degree_day_wh=1000)
    needs = {day: model.heat_need_wh(t) for day, t in means.items()}
    windows = local_day_windows(start, 48, Q, AMSTERDAM)
    days = heat_pump_days(windows, needs, max_starts=3)
    assert days[0].start_step == 0
    assert days[0].end_step == 48
    assert days[0].heat_need_wh == pytest.approx(14000 / 2)  # half the day remains
    assert days[0].max_starts == 3
    assert heat_pump_days(windows, {}, max_starts=3) == ()
