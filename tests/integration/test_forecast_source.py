"""Forecast inputs from Home Assistant data: statistics, PV lists, weather forecasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from custom_components.netbewust.forecast_source import (
    meter_net_samples,
    pv_series,
    temperature_samples,
)

HOUR = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)


def test_net_samples_need_every_import_entity() -> None:
    start = HOUR.timestamp()
    rows = {
        "sensor.import_l1": [{"start": start, "mean": 800.0}, {"start": start + 3600, "mean": 1}],
        "sensor.export_l1": [{"start": start, "mean": 300.0}],
        "sensor.import_l2": [{"start": start, "mean": 200.0}],
    }
    samples = meter_net_samples(
        rows, ["sensor.import_l1", "sensor.import_l2"], ["sensor.export_l1"]
    )
    # The second hour lacks L2: skipped rather than half counted.
    assert samples == [(HOUR + i * timedelta(minutes=15), 700.0) for i in range(4)]


def test_pv_list_in_kw_becomes_watts_per_quarter() -> None:
    entries = [
        {"period_start": (HOUR + timedelta(minutes=30 * i)).isoformat(), "pv_estimate": kw}
        for i, kw in enumerate((1.0, 2.0))
    ]
    entries.append({"period_start": "garbage", "pv_estimate": 5})
    series = pv_series({"detailedForecast": entries}, HOUR - timedelta(minutes=15), 6)
    assert series == (0.0, 1000.0, 1000.0, 2000.0, 2000.0, 0.0)


def test_no_pv_list_is_none() -> None:
    assert pv_series({"forecast": "n/a"}, HOUR, 4) is None
    assert pv_series({}, HOUR, 4) is None


def test_temperatures_from_a_weather_response() -> None:
    response = {
        "weather.home": {
            "forecast": [
                {"datetime": HOUR.isoformat(), "temperature": 4.5},
                {"datetime": "bad", "temperature": 3},
                {"datetime": HOUR.isoformat(), "temperature": None},
                "junk",
            ]
        }
    }
    assert temperature_samples(response, "weather.home") == [(HOUR, 4.5)]
    assert temperature_samples({}, "weather.home") == []
