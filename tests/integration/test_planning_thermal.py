"""A heat pump planned on the home's thermal model: the plan, its entities, its safe states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import ServiceCall, ServiceResponse, State, SupportsResponse
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)

from custom_components.netbewust.const import (
    CONF_BUILDING_TYPE,
    CONF_DHW_ENTITY,
    CONF_GAS_PRICE,
    CONF_HEAT_PUMP_TYPE,
    CONF_HYBRID_POWER_CAP,
    CONF_MIN_OFF_TIME,
    CONF_OUTDOOR_TEMPERATURE_ENTITY,
    CONF_POWER_ENTITY,
    SUBENTRY_HEAT_PUMP,
)
from custom_components.netbewust.core.model import HeatPumpSetpoint, HeatPumpSpec
from custom_components.netbewust.core.planning.problem import HeatPumpControl, PlanStatus
from custom_components.netbewust.core.thermal import default_parameters
from custom_components.netbewust.diagnostics import async_get_config_entry_diagnostics
from custom_components.netbewust.planner.thermal import (
    ComfortSettings,
    outdoor_series,
    thermal_config,
    thermal_heat_pump,
)

from .conftest import (
    CELSIUS,
    HEAT_PUMP,
    HEAT_PUMP_ID,
    HP_SG1,
    INDOOR,
    OUTDOOR,
    set_meter,
    state_value,
    subentry,
    thermal_pump_subentry,
)
from .test_planning import NORDPOOL_URL, PLANNER, hourly_prices

if TYPE_CHECKING:
    from collections.abc import Callable

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from custom_components.netbewust.planner.runtime import PlanningRuntime

# 11:02 in Amsterdam; test_planning's autouse fixture is not imported, so set it here.
NOW = datetime(2026, 1, 15, 10, 2, tzinfo=UTC)
HOT_WATER = "binary_sensor.heat_pump_hot_water"
THERMAL_PUMP = thermal_pump_subentry(**{CONF_DHW_ENTITY: HOT_WATER})
# 11:00-12:00 CET is dear, the rest of the day cheap: blocking that hour pays.
DEAR_HOUR = hourly_prices(lambda hour: 500.0 if hour == 11 else 100.0)


@pytest.fixture(autouse=True)
async def amsterdam(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    freezer.move_to(NOW)


def entity_id(hass: HomeAssistant, platform: str, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform, "netbewust", f"{HEAT_PUMP_ID}_{key}")
    assert found is not None, key
    return found


async def setup_home(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    *,
    indoor: str = "20.0",
    pump: object = THERMAL_PUMP,
) -> tuple[MockConfigEntry, PlanningRuntime]:
    hass.states.async_set(INDOOR, indoor, CELSIUS)
    hass.states.async_set(OUTDOOR, "5.0", CELSIUS)
    hass.states.async_set(HOT_WATER, "off")
    entry = make_entry(subentries=(pump, PLANNER))
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    planner = entry.runtime_data.planner
    assert planner is not None
    return entry, planner


async def meter_reading(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float = 2
) -> None:
    freezer.tick(timedelta(seconds=seconds))
    set_meter(hass, 1000)
    await hass.async_block_till_done()


@pytest.mark.usefixtures("targets")
async def test_a_dear_hour_is_blocked_and_a_cold_home_releases_it(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=DEAR_HOUR)
    entry, planner = await setup_home(hass, make_entry)
    plan = planner.plan
    assert plan is not None
    assert plan.status is PlanStatus.OPTIMAL
    assert plan.reason == ""
    # Planned on the model, not the daily heat need: an expected indoor temperature per step.
    first = plan.steps[0]
    assert first.setpoints[HEAT_PUMP_ID] == HeatPumpSetpoint(on=False)
    indoor = [s.heat_pumps[HEAT_PUMP_ID].indoor_temperature_c for s in plan.steps]
    assert all(t is not None and t >= 19.5 - 1e-3 for t in indoor[:40])
    assert plan.expected_cost_eur is not None
    assert plan.baseline_cost_eur is not None
    assert plan.expected_cost_eur < plan.baseline_cost_eur
    # The SG-Ready relay blocks the pump at the next meter reading.
    await meter_reading(hass, freezer)
    assert state_value(hass, HP_SG1) == "on"
    expected = hass.states.get(entity_id(hass, "sensor", "expected_indoor_temperature"))
    assert expected is not None
    assert float(expected.state) == pytest.approx(indoor[0], abs=0.01)
    assert expected.attributes["measured"] == 20.0
    assert expected.attributes["steering"] is True
    assert len(expected.attributes["forecast"]) == len(plan.steps)
    # Hot water is never blocked: the relay opens while the pump reports a run (after
    # the guard's 10 s between changes of one device).
    hass.states.async_set(HOT_WATER, "on")
    await meter_reading(hass, freezer, seconds=11)
    assert state_value(hass, HP_SG1) == "off"
    # ... and once the home is colder than the band, the plan may not block it again.
    hass.states.async_set(INDOOR, "19.0", CELSIUS)
    hass.states.async_set(HOT_WATER, "off")
    await meter_reading(hass, freezer, seconds=11)
    assert state_value(hass, HP_SG1) == "off"
    expected = hass.states.get(entity_id(hass, "sensor", "expected_indoor_temperature"))
    assert expected is not None
    assert expected.attributes["steering"] is False
    # The fit had no recorder: the building type's defaults, said so in diagnostics.
    model = hass.states.get(entity_id(hass, "sensor", "thermal_model"))
    assert model is not None
    assert model.state == "defaults"
    assert model.attributes["reason"] == "no indoor temperature or power sensor"
    assert model.attributes["resistance_k_per_kw"] == pytest.approx(1000 / 75, abs=1e-3)
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    thermal = diagnostics["thermal_heat_pumps"][HEAT_PUMP_ID]
    assert thermal["fit"]["used"] == "defaults"
    assert thermal["comfort"]["day_setpoint_c"] == 20.0
    assert thermal["comfort"]["night_start"] == "22:30:00"
    assert thermal["planned_by"] == "thermal model"


@pytest.mark.usefixtures("targets")
async def test_pause_steering_lets_the_thermostat_run_and_ends_by_itself(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=DEAR_HOUR)
    _, planner = await setup_home(hass, make_entry)
    await meter_reading(hass, freezer)
    assert state_value(hass, HP_SG1) == "on"
    duration = entity_id(hass, "number", "pause_duration")
    await hass.services.async_call(
        "number", "set_value", {"entity_id": duration, "value": 1}, blocking=True
    )
    pause = entity_id(hass, "switch", "pause_steering")
    await hass.services.async_call("switch", "turn_on", {"entity_id": pause}, blocking=True)
    await meter_reading(hass, freezer, seconds=11)
    state = hass.states.get(pause)
    assert state is not None
    assert state.state == "on"
    assert state.attributes["until"] == (NOW + timedelta(seconds=2, hours=1)).isoformat()
    # The guard released the block at the reading after its 10 s between changes.
    assert state_value(hass, HP_SG1) == "off"
    assert planner.comfort[HEAT_PUMP_ID].pause_hours == 1.0
    # An hour later the pause ends on its own.
    freezer.tick(timedelta(hours=1, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert state_value(hass, pause) == "off"
    assert not planner.comfort[HEAT_PUMP_ID].paused


@pytest.mark.usefixtures("targets")
async def test_comfort_now_holds_the_day_set_point_until_the_chosen_time(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=DEAR_HOUR)
    _, planner = await setup_home(hass, make_entry)
    until = entity_id(hass, "time", "comfort_now_until")
    await hass.services.async_call(
        "time", "set_value", {"entity_id": until, "time": "18:00:00"}, blocking=True
    )
    comfort_now = entity_id(hass, "switch", "comfort_now")
    await hass.services.async_call("switch", "turn_on", {"entity_id": comfort_now}, blocking=True)
    await hass.async_block_till_done()
    state = hass.states.get(comfort_now)
    assert state is not None
    assert state.state == "on"
    # 18:00 in Amsterdam is 17:00 UTC.
    assert state.attributes["until"] == "2026-01-15T17:00:00+00:00"
    band = planner.comfort[HEAT_PUMP_ID].band(
        datetime(2026, 1, 15, 10, 0, tzinfo=UTC), 1, planner.zone
    )
    assert band.lower_c == (20.0,)
    await hass.services.async_call("switch", "turn_off", {"entity_id": comfort_now}, blocking=True)
    assert state_value(hass, comfort_now) == "off"
    assert planner.comfort[HEAT_PUMP_ID].comfort_now_until is None


@pytest.mark.usefixtures("targets")
async def test_without_prices_or_indoor_sensor_the_pump_runs_as_without_netbewust(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, status=204)
    _, planner = await setup_home(hass, make_entry, indoor="unavailable")
    plan = planner.plan
    assert plan is not None
    assert plan.status is PlanStatus.FALLBACK
    assert all(HEAT_PUMP_ID not in step.setpoints for step in plan.steps)
    # Still the thermal model: its prediction from the day set point, with no reading.
    first = plan.steps[0].heat_pumps[HEAT_PUMP_ID]
    assert first.indoor_temperature_c == pytest.approx(20.0, abs=0.05)
    await meter_reading(hass, freezer)
    assert state_value(hass, HP_SG1) == "off"
    expected = hass.states.get(entity_id(hass, "sensor", "expected_indoor_temperature"))
    assert expected is not None
    assert expected.attributes["measured"] is None


@pytest.mark.usefixtures("targets")
async def test_comfort_settings_are_restored_after_a_restart(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, status=204)
    number = {
        "native_min_value": 10.0,
        "native_max_value": 28.0,
        "native_step": 0.5,
        "native_unit_of_measurement": "°C",
    }
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("number.heat_pump_comfort_temperature", "21.5"),
                {**number, "native_value": 21.5},
            ),
            # Out of range: a corrupted store is not taken over.
            (
                State("number.heat_pump_night_set_back_temperature", "99"),
                {**number, "native_value": 99.0},
            ),
            (State("time.heat_pump_night_set_back_from", "23:15:00"), {}),
            (
                State("switch.heat_pump_comfort_now", "on", {"until": "2026-01-15T21:00:00+00:00"}),
                {},
            ),
            # Ended while Home Assistant was down: stays off.
            (
                State(
                    "switch.heat_pump_pause_steering", "on", {"until": "2026-01-15T09:00:00+00:00"}
                ),
                {},
            ),
        ],
    )
    _, planner = await setup_home(hass, make_entry)
    settings = planner.comfort[HEAT_PUMP_ID]
    assert settings.day_setpoint_c == 21.5
    assert settings.night_setpoint_c == 16.0
    assert settings.night_start.isoformat() == "23:15:00"
    assert settings.comfort_now_until == datetime(2026, 1, 15, 21, 0, tzinfo=UTC)
    assert not settings.paused
    assert state_value(hass, "switch.heat_pump_comfort_now") == "on"
    assert state_value(hass, "switch.heat_pump_pause_steering") == "off"


@pytest.mark.usefixtures("targets")
async def test_an_old_heat_pump_without_thermal_settings_plans_as_before(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=DEAR_HOUR)
    _, planner = await setup_home(hass, make_entry, pump=HEAT_PUMP)
    assert planner.thermal == {}
    plan = planner.plan
    assert plan is not None
    assert all(s.heat_pumps[HEAT_PUMP_ID].indoor_temperature_c is None for s in plan.steps)
    registry = er.async_get(hass)
    assert (
        registry.async_get_entity_id("switch", "netbewust", f"{HEAT_PUMP_ID}_pause_steering")
        is None
    )


@pytest.mark.usefixtures("targets")
async def test_a_weather_entity_gives_the_outdoor_forecast(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=DEAR_HOUR)
    calls: list[dict[str, object]] = []

    async def forecasts(call: ServiceCall) -> ServiceResponse:
        calls.append(dict(call.data))
        hours = [NOW.replace(minute=0) + timedelta(hours=h) for h in range(1, 30)]
        return {
            "weather.home": {
                "forecast": [
                    {"datetime": moment.isoformat(), "temperature": -8.0} for moment in hours
                ]
            }
        }

    hass.services.async_register(
        "weather", "get_forecasts", forecasts, supports_response=SupportsResponse.ONLY
    )
    hass.states.async_set("weather.home", "cloudy", {"temperature": -2.0})
    pump = subentry(
        HEAT_PUMP_ID,
        SUBENTRY_HEAT_PUMP,
        "Heat pump",
        {
            **THERMAL_PUMP["data"],
            CONF_OUTDOOR_TEMPERATURE_ENTITY: "weather.home",
            CONF_POWER_ENTITY: "sensor.heat_pump_power",
        },
    )
    hass.states.async_set(
        "sensor.heat_pump_power", "300", {"device_class": "power", "unit_of_measurement": "W"}
    )
    _, planner = await setup_home(hass, make_entry, pump=pump)
    assert calls[0] == {"entity_id": "weather.home", "type": "hourly"}
    plan = planner.plan
    assert plan is not None
    assert plan.steps[0].heat_pumps[HEAT_PUMP_ID].indoor_temperature_c is not None
    # A weather entity keeps no statistics: the defaults, and the reason why.
    assert planner.fits[HEAT_PUMP_ID].reason == "a weather entity has no statistics to fit on"


def test_outdoor_series_holds_each_forecast_value_until_the_next() -> None:
    start = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    samples = [(start + timedelta(minutes=30), 3.0), (start + timedelta(hours=1), 99.0)]
    # The current reading until the first forecast; an implausible value is skipped.
    assert outdoor_series(samples, 5.0, start, 6) == (5.0, 5.0, 3.0, 3.0, 3.0, 3.0)
    assert outdoor_series(samples, None, start, 2) == (3.0, 3.0)
    assert outdoor_series([], None, start, 2) is None


@pytest.mark.parametrize(
    "change",
    [
        {CONF_BUILDING_TYPE: "castle"},
        {CONF_HEAT_PUMP_TYPE: "hybrid", CONF_GAS_PRICE: -1.0},
        {CONF_HEAT_PUMP_TYPE: "hybrid", CONF_HYBRID_POWER_CAP: "much"},
    ],
)
def test_thermal_settings_that_do_not_validate_plan_as_before(
    change: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    bad = ConfigSubentry(
        data=MappingProxyType({**THERMAL_PUMP["data"], **change}),
        subentry_type=SUBENTRY_HEAT_PUMP,
        title="Heat pump",
        unique_id=None,
    )
    assert thermal_config(bad) is None
    assert "thermal settings ignored" in caplog.text


def test_a_hybrid_is_capped_and_an_on_off_pump_blocked_in_few_short_windows() -> None:
    data = {
        **THERMAL_PUMP["data"],
        CONF_HEAT_PUMP_TYPE: "hybrid",
        CONF_HYBRID_POWER_CAP: 1200,
        CONF_GAS_PRICE: 1.2,
        CONF_MIN_OFF_TIME: 40,
    }
    config = thermal_config(
        ConfigSubentry(
            data=MappingProxyType(data),
            subentry_type=SUBENTRY_HEAT_PUMP,
            title="Hybrid",
            unique_id=None,
        )
    )
    assert config is not None
    assert config.boiler is not None
    assert config.boiler.gas_price_eur_per_m3 == 1.2
    assert config.boiler.efficiency == 0.9  # the default
    assert not config.modulating  # SG-Ready only: on/off unless told otherwise
    spec = HeatPumpSpec(
        device_id=HEAT_PUMP_ID,
        name="Hybrid",
        priority=1,
        phases=(1,),
        rated_power_w=2000,
        max_switches_per_day=4,
    )
    start = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    band = ComfortSettings().band(start, 4, ZoneInfo("Europe/Amsterdam"))
    row = thermal_heat_pump(
        spec,
        config,
        band,
        parameters=default_parameters(config.building, config.era),
        outdoor_c=(0.0,) * 4,
        indoor_c=20.0,
        min_off_s=40 * 60,
    )
    assert row.max_power_w == 1200
    assert row.control is HeatPumpControl.ON_OFF
    assert row.max_windows_per_day == 2
    assert (row.min_window_steps, row.max_window_steps) == (3, 8)
    assert row.boiler is config.boiler


@pytest.mark.usefixtures("targets")
async def test_without_an_outdoor_temperature_or_a_fit_the_pump_is_still_planned(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No outdoor reading and no forecast: the daily heat need of before; a fit that
    raises: the building type's defaults. Neither stops the plan."""
    aioclient_mock.get(NORDPOOL_URL, json=DEAR_HOUR)
    with patch(
        "custom_components.netbewust.planner.runtime.async_fit",
        side_effect=OSError("database is locked"),
    ):
        entry, planner = await setup_home(hass, make_entry)
        hass.states.async_set(OUTDOOR, "unavailable", CELSIUS)
        await planner.async_replan("test")
    plan = planner.plan
    assert plan is not None
    assert plan.status is PlanStatus.OPTIMAL
    assert plan.steps[0].heat_pumps[HEAT_PUMP_ID].indoor_temperature_c is None
    fit = planner.fits[HEAT_PUMP_ID]
    assert not fit.fitted
    # No exception text in what the household reads; the log has it.
    assert fit.reason == "fit failed"
    assert "thermal fit failed" in caplog.text
    assert "database is locked" in caplog.text
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    thermal = diagnostics["thermal_heat_pumps"][HEAT_PUMP_ID]
    assert thermal["planned_by"] == "no outdoor temperature: planned by heat need"
