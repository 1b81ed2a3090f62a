"""Forecast inputs from Home Assistant data: statistics, PV lists, weather forecasts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.netbewust.const import CONF_PV_FORECAST_ENTITY
from custom_components.netbewust.guard.meter import MeterEntities
from custom_components.netbewust.planner.config import parse_planner_config
from custom_components.netbewust.planner.forecast_source import (
    ForecastSource,
    energy_periods_to_power,
    meter_net_samples,
    pv_series,
    temperature_samples,
)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

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


def test_period_energies_become_quarter_hour_power() -> None:
    hours = {
        "2026-01-12T07:40:00+00:00": 0,  # sunrise
        "2026-01-12T08:00:00+00:00": 100,  # 07:40-08:00
        "2026-01-12T09:00:00+00:00": 800,  # 08:00-09:00
        "2026-01-12T09:30:00+00:00": 300,  # sunset: 09:00-09:30
        "not a time": 5,
        "2026-01-12T10:00:00+00:00": -3,
    }
    series = energy_periods_to_power(hours, HOUR - timedelta(hours=3), 12)
    assert series is not None
    # 07:30-07:45 holds 5 of the 20 minutes at 300 W, 07:45-08:00 the full 300 W.
    assert series == pytest.approx((0, 0, 100, 300, 800, 800, 800, 800, 600, 600, 0, 0))
    # Energy is kept: quarter-hour means times a quarter give back the Wh.
    assert sum(series) / 4 == pytest.approx(1200)


def test_first_period_is_at_most_an_hour() -> None:
    series = energy_periods_to_power({HOUR.isoformat(): 400}, HOUR - timedelta(hours=2), 8)
    assert series == pytest.approx((0, 0, 0, 0, 400, 400, 400, 400))


def test_no_usable_energies_is_none() -> None:
    assert energy_periods_to_power({"x": 1, HOUR.isoformat(): "many"}, HOUR, 4) is None
    assert energy_periods_to_power({}, HOUR, 4) is None


FORECAST_SOLAR_API = re.compile(r"^https://api\.forecast\.solar/estimate/")
ZONE = ZoneInfo("Europe/Amsterdam")


def forecast_solar_answer(wh_by_end: dict[datetime, int]) -> dict[str, Any]:
    """An estimate answer from the Forecast.Solar API (asked with time=utc)."""
    periods = {moment.isoformat(): wh for moment, wh in wh_by_end.items()}
    return {
        "result": {
            "watts": dict.fromkeys(periods, 0),
            "watt_hours_period": periods,
            "watt_hours_day": {HOUR.date().isoformat(): sum(wh_by_end.values())},
        },
        "message": {"ratelimit": {"limit": 12}, "info": {"timezone": "UTC"}},
    }


def forecast_solar_entry(hass: HomeAssistant, kwp: int) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain="forecast_solar",
        title=f"Roof {kwp} kWp",
        version=3,
        data={"latitude": 52.1, "longitude": 5.1},
        options={"damping_morning": 0.0, "damping_evening": 0.0},
        subentries_data=[
            {
                "data": {"declination": 30, "azimuth": 180, "modules_power": kwp * 1000},
                "subentry_type": "plane",
                "title": "South",
                "unique_id": None,
            }
        ],
    )
    entry.add_to_hass(hass)
    return entry


def pv_source(hass: HomeAssistant, entity_id: str) -> ForecastSource:
    config = parse_planner_config({CONF_PV_FORECAST_ENTITY: entity_id})
    return ForecastSource(hass, MeterEntities(), config, ZONE)


async def test_forecast_solar_entries_are_summed(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    # Both roofs get the same answer from the mocked API: 500 Wh in 10:00-11:00 UTC.
    aioclient_mock.get(
        FORECAST_SOLAR_API,
        json=forecast_solar_answer({HOUR: 0, HOUR + timedelta(hours=1): 500}),
        headers={
            "Content-Type": "application/json",
            "X-Ratelimit-Limit": "12",
            "X-Ratelimit-Period": "3600",
        },
    )
    entries = [forecast_solar_entry(hass, kwp) for kwp in (3, 2)]
    # Setting up one sets up the integration, and with it every entry.
    assert await hass.config_entries.async_setup(entries[0].entry_id)
    await hass.async_block_till_done()
    assert all(entry.state is ConfigEntryState.LOADED for entry in entries)
    registered = er.async_entries_for_config_entry(er.async_get(hass), entries[0].entry_id)
    assert registered

    forecasts = await pv_source(hass, registered[0].entity_id).async_forecasts(HOUR, 8)

    assert forecasts.pv_w == pytest.approx((1000.0,) * 4 + (0.0,) * 4)
    assert not any(note.startswith("PV") for note in forecasts.notes)


async def test_forecast_solar_not_loaded_plans_without_pv_and_says_so(
    hass: HomeAssistant,
) -> None:
    entry = forecast_solar_entry(hass, 3)  # added, never set up
    registered = er.async_get(hass).async_get_or_create(
        "sensor", "forecast_solar", "roof_energy_today", config_entry=entry
    )
    forecasts = await pv_source(hass, registered.entity_id).async_forecasts(HOUR, 4)
    assert forecasts.pv_w == (0.0,) * 4
    assert "PV: no Forecast.Solar forecast yet, none assumed" in forecasts.notes


async def test_forecast_solar_api_failure_is_no_pv_not_a_crash(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    aioclient_mock.get(FORECAST_SOLAR_API, status=503)
    entry = forecast_solar_entry(hass, 3)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    registered = er.async_get(hass).async_get_or_create(
        "sensor", "forecast_solar", "roof_energy_today", config_entry=entry
    )
    forecasts = await pv_source(hass, registered.entity_id).async_forecasts(HOUR, 4)
    assert forecasts.pv_w == (0.0,) * 4
    assert "PV: no Forecast.Solar forecast yet, none assumed" in forecasts.notes


async def test_an_entity_of_another_integration_uses_its_attributes(hass: HomeAssistant) -> None:
    other = MockConfigEntry(domain="solcast_solar")
    other.add_to_hass(hass)
    registered = er.async_get(hass).async_get_or_create(
        "sensor", "solcast_solar", "today", config_entry=other
    )
    entries = [{"period_start": HOUR.isoformat(), "pv_estimate": 1.5}]
    hass.states.async_set(registered.entity_id, "3", {"detailedForecast": entries})
    forecasts = await pv_source(hass, registered.entity_id).async_forecasts(HOUR, 2)
    assert forecasts.pv_w == (1500.0, 1500.0)
