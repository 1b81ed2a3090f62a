"""Today's cost covers the whole day: metered quarter hours, then the plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.netbewust.const import DOMAIN
from custom_components.netbewust.planner.metered_cost import MeteredQuarter, QuarterHourMeter

from .conftest import CHARGER, set_meter
from .test_planning import BATTERY_WITH_CAPACITY, EVENING_CHEAP, NORDPOOL_URL, NOW, PLANNER

if TYPE_CHECKING:
    from collections.abc import Callable

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

QUARTER_START = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
IMPORT_PRICE = (0.2 + 0.1) * 1.21  # 200 EUR/MWh spot, 0.10 tax, 21 % VAT


def test_power_held_between_readings_splits_at_the_quarter() -> None:
    meter = QuarterHourMeter()
    start = QUARTER_START + timedelta(minutes=14)
    assert meter.add(start, 1200.0) == []
    closed = meter.add(start + timedelta(seconds=60), -600.0)
    # 60 s at 1200 W: the whole minute falls in 10:00-10:15.
    assert [(q.start, q.export_wh) for q in closed] == [(QUARTER_START, 0.0)]
    assert closed[0].import_wh == pytest.approx(20.0)
    assert meter.add(start + timedelta(seconds=90), 0.0) == []
    assert meter.open is not None
    assert meter.open.export_wh == pytest.approx(5.0)  # 30 s exporting 600 W


def test_a_silent_meter_is_no_data_and_bad_values_are_skipped() -> None:
    meter = QuarterHourMeter()
    meter.add(QUARTER_START, 3600.0)
    meter.add(QUARTER_START + timedelta(seconds=10), float("nan"))
    # Ten minutes without a reading: only the first minute counts.
    closed = meter.add(QUARTER_START + timedelta(minutes=20), 0.0)
    assert [q.import_wh for q in closed] == [pytest.approx(60.0)]


def test_stored_quarters_are_validated() -> None:
    good = MeteredQuarter(QUARTER_START, 100.0, 0.0, 0.03, None)
    assert MeteredQuarter.from_list(good.as_list()) == good
    for bad in (
        ["2026-01-15T10:00:00", 1, 0, None, None],  # naive time
        [QUARTER_START.isoformat(), -1, 0, None, None],
        [QUARTER_START.isoformat(), 1, 0, "cheap", None],
        [QUARTER_START.isoformat(), 1, 0],
        "junk",
    ):
        assert MeteredQuarter.from_list(bad) is None


@pytest.mark.usefixtures("targets")
async def test_metered_quarters_count_towards_today_and_persist(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    freezer.move_to(NOW)
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    entry = make_entry(subentries=(CHARGER, BATTERY_WITH_CAPACITY, PLANNER))
    key = f"{DOMAIN}.metered_{entry.entry_id}"
    earlier = MeteredQuarter(QUARTER_START - timedelta(hours=1), 500.0, 0.0, 0.2, 0.25)
    hass_storage[key] = {
        "version": 1,
        "minor_version": 1,
        "key": key,
        "data": {"quarters": [earlier.as_list(), ["garbage"]]},
    }
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    planner = entry.runtime_data.planner
    assert planner is not None
    assert planner.metered[earlier.start] == earlier

    # 2000 W read every 30 s from 10:02:30 until after 10:15; the metering starts with
    # the first reading after set-up.
    for step in range(1, 29):
        freezer.move_to(NOW + timedelta(seconds=30 * step))
        set_meter(hass, 2000)
        await hass.async_block_till_done()
    metered = planner.metered[QUARTER_START]
    expected_wh = 2000 * 750 / 3600
    assert metered.import_wh == pytest.approx(expected_wh, rel=1e-3)
    assert metered.cost_eur == pytest.approx(expected_wh / 1000 * IMPORT_PRICE, rel=1e-3)
    assert metered.baseline_eur is not None

    await hass.services.async_call(DOMAIN, "replan", {}, blocking=True)
    today = hass.states.get("sensor.home_expected_cost_today")
    assert today is not None
    assert today.attributes["quarter_hours_metered"] == 2
    assert today.attributes["quarter_hours_unmetered"] == 43
    assert today.attributes["metered"] == pytest.approx(0.2 + metered.cost_eur, abs=1e-4)
    assert float(today.state) == pytest.approx(
        today.attributes["metered"] + today.attributes["planned"], abs=1e-3
    )
    baseline = hass.states.get("sensor.home_baseline_cost")
    assert baseline is not None
    assert float(baseline.state) == pytest.approx(today.attributes["baseline"], abs=1e-3)

    # Saved shortly after the quarter closed, for the next start.
    async_fire_time_changed(hass, NOW + timedelta(minutes=20))
    await hass.async_block_till_done()
    saved = [row[0] for row in hass_storage[key]["data"]["quarters"]]
    assert saved == [earlier.start.isoformat(), QUARTER_START.isoformat()]
