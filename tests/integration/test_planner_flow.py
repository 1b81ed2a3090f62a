"""The planner subentry flow, and the battery capacity the planner needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.const import CONF_NAME
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.netbewust.const import (
    CONF_BATTERY_CAPACITY,
    CONF_CAPACITY_TARIFF,
    CONF_ENERGY_TAX,
    CONF_EXPORT_FEE,
    CONF_EXPORT_FIXED,
    CONF_EXPORT_RULE,
    CONF_HEAT_BASE_TEMPERATURE,
    CONF_HEAT_FIXED,
    CONF_HEAT_PER_DEGREE_DAY,
    CONF_NORDPOOL_AREA,
    CONF_PRICE_ENTITY,
    CONF_PRICE_SOURCE,
    CONF_PV_FORECAST_ENTITY,
    CONF_SUPPLIER_MARKUP,
    CONF_VAT,
    CONF_WEATHER_ENTITY,
    SUBENTRY_BATTERY,
    SUBENTRY_PLANNER,
)
from custom_components.netbewust.core.planning.prices import ExportRule
from custom_components.netbewust.planner.config import (
    PlannerConfigError,
    PriceSourceKind,
    parse_planner_config,
)

from .test_subentry_flows import (
    BATTERY,
    STRINGS,
    add,
    assert_errors,
    by_title,
    make_entry,
    start,
    subentry,
    submit,
    suggested,
)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

PLANNER = {
    CONF_PRICE_SOURCE: "nordpool",
    CONF_NORDPOOL_AREA: "NL",
    CONF_ENERGY_TAX: 0.1088,
    CONF_SUPPLIER_MARKUP: 0.02,
    CONF_VAT: 21,
    CONF_EXPORT_RULE: "spot",
    CONF_HEAT_BASE_TEMPERATURE: 18,
    CONF_HEAT_PER_DEGREE_DAY: 5,
    CONF_HEAT_FIXED: 2,
}
PRICE_LIST = [
    {"start": "2026-01-15T00:00:00+01:00", "end": "2026-01-15T01:00:00+01:00", "value": 0.21},
]
SOLCAST = [{"period_start": "2026-01-15T12:00:00+01:00", "pv_estimate": 1.2}]

pytestmark = pytest.mark.usefixtures("no_setup")


def _dutch() -> dict[str, Any]:
    path = Path(__file__).parents[2] / "custom_components/netbewust/translations/nl.json"
    strings: dict[str, Any] = json.loads(path.read_text())
    return strings


@pytest.fixture(autouse=True)
def battery_entities(hass: HomeAssistant) -> None:
    hass.states.async_set("number.battery_setpoint", "0", {"unit_of_measurement": "W"})
    hass.states.async_set(
        "sensor.battery_soc", "55", {"device_class": "battery", "unit_of_measurement": "%"}
    )
    hass.states.async_set(
        "sensor.battery_power", "-500", {"device_class": "power", "unit_of_measurement": "W"}
    )


@pytest.fixture(autouse=True)
def source_entities(hass: HomeAssistant) -> None:
    hass.states.async_set(
        "sensor.prices", "0.21", {"unit_of_measurement": "EUR/kWh", "raw_today": PRICE_LIST}
    )
    hass.states.async_set("sensor.price_now", "0.21", {"unit_of_measurement": "EUR/kWh"})
    hass.states.async_set("sensor.solcast", "12.5", {"detailedForecast": SOLCAST})
    hass.states.async_set("sensor.pv_today", "12.5", {"unit_of_measurement": "kWh"})
    hass.states.async_set("weather.home", "cloudy", {"temperature": 4})


async def test_add_planner_with_nordpool(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await start(hass, entry, SUBENTRY_PLANNER)
    assert result["step_id"] == "user"
    defaults = suggested(result)
    assert defaults[CONF_NORDPOOL_AREA] == "NL"
    assert defaults[CONF_PRICE_SOURCE] == "nordpool"
    result = await submit(
        hass, result, {**PLANNER, CONF_PRICE_ENTITY: "sensor.prices", CONF_EXPORT_FEE: 0.01}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert created.subentry_type == SUBENTRY_PLANNER
    # What the chosen source and export rule do not use is not stored.
    assert dict(created.data) == PLANNER
    config = parse_planner_config(created.data)
    assert config.price_source is PriceSourceKind.NORDPOOL
    assert config.tariff.import_price(0.0) == pytest.approx((0.1088 + 0.02) * 1.21)
    assert config.degree_days.per_degree_day_wh == 5000


async def test_add_planner_with_every_option(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    user_input = {
        **PLANNER,
        CONF_PRICE_SOURCE: "entity",
        CONF_PRICE_ENTITY: "sensor.prices",
        CONF_EXPORT_RULE: "spot_minus_fee",
        CONF_EXPORT_FEE: 0.015,
        CONF_EXPORT_FIXED: 0.07,
        CONF_CAPACITY_TARIFF: 3.5,
        CONF_PV_FORECAST_ENTITY: "sensor.solcast",
        CONF_WEATHER_ENTITY: "weather.home",
    }
    result = await add(hass, entry, SUBENTRY_PLANNER, user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert CONF_NORDPOOL_AREA not in created.data
    assert CONF_EXPORT_FIXED not in created.data
    config = parse_planner_config(created.data)
    assert config.price_entity == "sensor.prices"
    assert config.tariff.export_rule is ExportRule.SPOT_MINUS_FEE
    assert config.tariff.export_price(0.1) == pytest.approx(0.085)
    assert config.capacity_tariff.peak_price_eur_per_kw == 3.5
    assert config.pv_forecast_entity == "sensor.solcast"
    assert config.weather_entity == "weather.home"


async def test_one_planner_per_connection(hass: HomeAssistant) -> None:
    entry = make_entry(hass, subentries=[subentry(SUBENTRY_PLANNER, "Planner", **PLANNER)])
    result = await start(hass, entry, SUBENTRY_PLANNER)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert "already_configured" in STRINGS["config_subentries"][SUBENTRY_PLANNER]["abort"]


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({CONF_PRICE_SOURCE: "entity"}, {CONF_PRICE_ENTITY: "price_entity_required"}),
        (
            {CONF_PRICE_SOURCE: "entity", CONF_PRICE_ENTITY: "sensor.gone"},
            {CONF_PRICE_ENTITY: "entity_not_found"},
        ),
        (
            {CONF_PRICE_SOURCE: "entity", CONF_PRICE_ENTITY: "sensor.price_now"},
            {CONF_PRICE_ENTITY: "no_price_list"},
        ),
        ({CONF_VAT: 121}, {CONF_VAT: "out_of_range"}),
        ({CONF_VAT: -1}, {CONF_VAT: "out_of_range"}),
        ({CONF_HEAT_PER_DEGREE_DAY: -0.5}, {CONF_HEAT_PER_DEGREE_DAY: "negative"}),
        ({CONF_HEAT_FIXED: -1}, {CONF_HEAT_FIXED: "negative"}),
        ({CONF_CAPACITY_TARIFF: -2}, {CONF_CAPACITY_TARIFF: "negative"}),
        ({CONF_EXPORT_RULE: "spot_minus_fee"}, {CONF_EXPORT_FEE: "value_required"}),
        ({CONF_EXPORT_RULE: "fixed"}, {CONF_EXPORT_FIXED: "value_required"}),
        ({CONF_PV_FORECAST_ENTITY: "sensor.gone"}, {CONF_PV_FORECAST_ENTITY: "entity_not_found"}),
        (
            {CONF_PV_FORECAST_ENTITY: "sensor.pv_today"},
            {CONF_PV_FORECAST_ENTITY: "no_forecast_list"},
        ),
        ({CONF_WEATHER_ENTITY: "weather.gone"}, {CONF_WEATHER_ENTITY: "entity_not_found"}),
        ({CONF_WEATHER_ENTITY: "sensor.prices"}, {CONF_WEATHER_ENTITY: "wrong_domain"}),
        # Several problems are shown together.
        (
            {CONF_WEATHER_ENTITY: "weather.gone", CONF_VAT: 200},
            {CONF_WEATHER_ENTITY: "entity_not_found", CONF_VAT: "out_of_range"},
        ),
    ],
)
async def test_planner_errors(
    hass: HomeAssistant, change: dict[str, Any], errors: dict[str, str]
) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_PLANNER, {**PLANNER, **change})
    assert_errors(result, SUBENTRY_PLANNER, errors)
    assert not entry.subentries
    # The form comes back with what was entered.
    assert suggested(result)[CONF_VAT] == {**PLANNER, **change}[CONF_VAT]


@pytest.mark.parametrize(
    "change",
    [
        {CONF_NORDPOOL_AREA: "XX"},
        {CONF_PRICE_SOURCE: "tibber"},
        {CONF_EXPORT_RULE: "net_metering"},
        {CONF_VAT: "lots"},
    ],
)
async def test_values_outside_the_choices_are_refused_by_the_form(
    hass: HomeAssistant, change: dict[str, Any]
) -> None:
    entry = make_entry(hass)
    result = await start(hass, entry, SUBENTRY_PLANNER)
    with pytest.raises(InvalidData):
        await submit(hass, result, {**PLANNER, **change})


async def test_a_nordpool_integration_entity_needs_no_price_list(hass: HomeAssistant) -> None:
    """HA's Nord Pool sensors are asked through its action, so their attributes do not matter."""
    nordpool = MockConfigEntry(domain="nordpool", data={})
    nordpool.add_to_hass(hass)
    er.async_get(hass).async_get_or_create(
        "sensor", "nordpool", "NL-current_price", config_entry=nordpool, suggested_object_id="np"
    )
    hass.states.async_set("sensor.np", "0.2", {"unit_of_measurement": "EUR/kWh"})
    entry = make_entry(hass)
    user_input = {**PLANNER, CONF_PRICE_SOURCE: "entity", CONF_PRICE_ENTITY: "sensor.np"}
    result = await add(hass, entry, SUBENTRY_PLANNER, user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_reconfigure_planner(hass: HomeAssistant) -> None:
    entry = make_entry(hass, subentries=[subentry(SUBENTRY_PLANNER, "Planner", **PLANNER)])
    planner_id = by_title(entry, "Planner")
    result = await entry.start_subentry_reconfigure_flow(hass, planner_id)
    assert result["step_id"] == "reconfigure"
    assert suggested(result)[CONF_ENERGY_TAX] == 0.1088
    # Validated like adding: nothing changes on a bad value.
    result = await submit(hass, result, {**PLANNER, CONF_EXPORT_RULE: "fixed"})
    assert_errors(result, SUBENTRY_PLANNER, {CONF_EXPORT_FIXED: "value_required"})
    assert entry.subentries[planner_id].data[CONF_EXPORT_RULE] == "spot"
    result = await submit(
        hass, result, {**PLANNER, CONF_EXPORT_RULE: "fixed", CONF_EXPORT_FIXED: 0.05}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    data = entry.subentries[planner_id].data
    assert data[CONF_EXPORT_FIXED] == 0.05
    assert parse_planner_config(data).tariff.export_price(0.3) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({CONF_VAT: float("nan")}, CONF_VAT, "not_a_number"),
        ({CONF_ENERGY_TAX: True}, CONF_ENERGY_TAX, "not_a_number"),
        ({CONF_SUPPLIER_MARKUP: "0.02"}, CONF_SUPPLIER_MARKUP, "not_a_number"),
        ({CONF_PV_FORECAST_ENTITY: "solcast"}, CONF_PV_FORECAST_ENTITY, "invalid_entity_id"),
        ({CONF_NORDPOOL_AREA: "XX"}, CONF_NORDPOOL_AREA, "unknown_area"),
        ({CONF_PRICE_SOURCE: "tibber"}, CONF_PRICE_SOURCE, "unknown_price_source"),
        ({CONF_EXPORT_RULE: "net_metering"}, CONF_EXPORT_RULE, "unknown_export_rule"),
    ],
)
def test_stored_settings_are_checked_too(data: dict[str, Any], field: str, code: str) -> None:
    """A subentry edited outside the flow still gets a named error, never a crash."""
    with pytest.raises(PlannerConfigError) as caught:
        parse_planner_config({**PLANNER, **data})
    assert (caught.value.field, caught.value.code) == (field, code)
    assert code in STRINGS["config_subentries"][SUBENTRY_PLANNER]["error"]


def test_every_field_and_choice_is_translated() -> None:
    for strings in (STRINGS, _dutch()):
        planner = strings["config_subentries"][SUBENTRY_PLANNER]
        for step in ("user", "reconfigure"):
            assert set(planner["step"][step]["data"]) >= set(PLANNER) | {
                CONF_PRICE_ENTITY,
                CONF_EXPORT_FEE,
                CONF_EXPORT_FIXED,
                CONF_CAPACITY_TARIFF,
                CONF_PV_FORECAST_ENTITY,
                CONF_WEATHER_ENTITY,
            }
        assert set(strings["selector"]["export_rule"]["options"]) == {r.value for r in ExportRule}
        assert set(strings["selector"]["price_source"]["options"]) == {
            k.value for k in PriceSourceKind
        }


# ---------- battery capacity: what the planner needs to plan a battery ----------


async def test_battery_capacity_is_stored_for_the_planner(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_BATTERY, {**BATTERY, CONF_BATTERY_CAPACITY: 10.5})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert created.data[CONF_BATTERY_CAPACITY] == 10.5


async def test_battery_without_capacity_is_still_accepted(hass: HomeAssistant) -> None:
    """The guard limits it all the same; only the planner leaves it alone."""
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_BATTERY, BATTERY)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (created,) = entry.subentries.values()
    assert CONF_BATTERY_CAPACITY not in created.data


@pytest.mark.parametrize("capacity", [0, -5])
async def test_battery_capacity_must_be_positive(hass: HomeAssistant, capacity: float) -> None:
    entry = make_entry(hass)
    result = await add(hass, entry, SUBENTRY_BATTERY, {**BATTERY, CONF_BATTERY_CAPACITY: capacity})
    assert_errors(result, SUBENTRY_BATTERY, {CONF_BATTERY_CAPACITY: "capacity_not_positive"})
    assert not entry.subentries


async def test_battery_capacity_can_be_added_later(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await add(hass, entry, SUBENTRY_BATTERY, BATTERY)
    battery_id = by_title(entry, str(BATTERY[CONF_NAME]))
    result = await entry.start_subentry_reconfigure_flow(hass, battery_id)
    result = await submit(hass, result, {**BATTERY, CONF_BATTERY_CAPACITY: 5})
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[battery_id].data[CONF_BATTERY_CAPACITY] == 5


def test_battery_capacity_is_translated() -> None:
    for strings in (STRINGS, _dutch()):
        battery = strings["config_subentries"][SUBENTRY_BATTERY]
        for step in ("user", "reconfigure"):
            assert battery["step"][step]["data"][CONF_BATTERY_CAPACITY]
        assert battery["error"]["capacity_not_positive"]


async def test_reconfigure_of_a_loaded_entry_leaves_the_reload_to_its_listener(
    hass: HomeAssistant,
) -> None:
    entry = make_entry(hass, subentries=[subentry(SUBENTRY_PLANNER, "Planner", **PLANNER)])
    planner_id = by_title(entry, "Planner")
    reloads: list[str] = []

    async def listener(hass: HomeAssistant, changed: Any) -> None:
        reloads.append(changed.entry_id)

    entry.add_update_listener(listener)
    result = await entry.start_subentry_reconfigure_flow(hass, planner_id)
    result = await submit(hass, result, {**PLANNER, CONF_ENERGY_TAX: 0.12})
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.subentries[planner_id].data[CONF_ENERGY_TAX] == 0.12
    assert reloads == [entry.entry_id]
