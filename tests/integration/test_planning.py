"""The planner in Home Assistant: prices in, a plan out, the guard applying its step."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.netbewust.const import (
    CONF_BATTERY_CAPACITY,
    CONF_ENERGY_TAX,
    CONF_PRICE_ENTITY,
    CONF_PRICE_SOURCE,
    CONF_VAT,
    DOMAIN,
    SUBENTRY_PLANNER,
)
from custom_components.netbewust.core.limits import ExternalLimit, LimitInterval, LimitSource
from custom_components.netbewust.core.model import ChargerSetpoint
from custom_components.netbewust.core.planning.problem import PlanStatus

from .conftest import (
    BATTERY,
    CHARGER,
    CHARGER_CURRENT,
    CHARGER_ID,
    HEAT_PUMP,
    HEAT_PUMP_ID,
    HP_SG1,
    set_meter,
    state_value,
    subentry,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

    from custom_components.netbewust.core.planning.problem import Plan, PlanStep
    from custom_components.netbewust.planner.runtime import PlanningRuntime

NORDPOOL_URL = "https://dataportal-api.nordpoolgroup.com/api/DayAheadPrices"
# 11:02 in Amsterdam: today's prices are out, tomorrow's are not yet.
NOW = datetime(2026, 1, 15, 10, 2, tzinfo=UTC)
DAY_START = datetime(2026, 1, 14, 23, 0, tzinfo=UTC)  # 15 January 00:00 CET
PLANNER = subentry("sub_planner", SUBENTRY_PLANNER, "Planner", {CONF_ENERGY_TAX: 0.1, CONF_VAT: 21})
BATTERY_WITH_CAPACITY = subentry(
    BATTERY["subentry_id"],
    BATTERY["subentry_type"],
    BATTERY["title"],
    {**BATTERY["data"], CONF_BATTERY_CAPACITY: 10},
)


def hourly_prices(eur_per_mwh: Callable[[int], float]) -> dict[str, Any]:
    """A Nord Pool answer for 15 January with hourly prices (hour index in the CET day)."""
    entries = [
        {
            "deliveryStart": (DAY_START + timedelta(hours=h)).isoformat().replace("+00:00", "Z"),
            "deliveryEnd": (DAY_START + timedelta(hours=h + 1)).isoformat().replace("+00:00", "Z"),
            "entryPerArea": {"NL": eur_per_mwh(h)},
        }
        for h in range(24)
    ]
    return {
        "deliveryDateCET": "2026-01-15",
        "version": 3,
        "updatedAt": "2026-01-14T12:00:00Z",
        "deliveryAreas": ["NL"],
        "market": "DayAhead",
        "multiAreaEntries": entries,
        "blockPriceAggregates": [],
        "currency": "EUR",
        "exchangeRate": 1,
        "areaStates": [{"state": "Final", "areas": ["NL"]}],
        "areaAverages": [{"areaCode": "NL", "price": 80.0}],
    }


# Expensive until 20:00 CET, then cheap: the car should wait.
EVENING_CHEAP = hourly_prices(lambda hour: 20.0 if hour >= 20 else 200.0)


@pytest.fixture(autouse=True)
async def amsterdam(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    freezer.move_to(NOW)


async def setup_planner(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    planner: Any = PLANNER,
) -> tuple[MockConfigEntry, PlanningRuntime]:
    entry = make_entry(subentries=(CHARGER, BATTERY_WITH_CAPACITY, planner))
    # A live meter first: without one the guard is in safe mode and pauses everything.
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    runtime = entry.runtime_data.planner
    assert runtime is not None
    return entry, runtime


@pytest.mark.usefixtures("targets")
async def test_nordpool_prices_make_a_plan_the_guard_applies(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    _, planner = await setup_planner(hass, make_entry)
    plan = planner.plan
    assert plan is not None
    assert plan.status is PlanStatus.OPTIMAL
    # From 11:00 CET to the end of the day: 13 hours of quarter hours.
    assert len(plan.steps) == 52
    # All-in import: (spot + 0.10 tax) x 1.21.
    assert plan.steps[0].import_price_eur_per_kwh == pytest.approx((0.2 + 0.1) * 1.21)
    # The car waits for the cheap evening: paused now, charging from 20:00 CET.
    assert plan.steps[0].setpoints[CHARGER_ID] == ChargerSetpoint(0.0, 1)
    evening = next(s for s in plan.steps if s.start == datetime(2026, 1, 15, 19, 0, tzinfo=UTC))
    assert evening.chargers[CHARGER_ID].charge_w > 0
    # The guard takes the plan: the charger is paused at the next meter reading.
    freezer.tick(timedelta(seconds=2))
    set_meter(hass, 1100)
    await hass.async_block_till_done()
    assert float(state_value(hass, CHARGER_CURRENT)) == 0
    sensor = hass.states.get("sensor.home_plan")
    assert sensor is not None
    assert sensor.state == "optimal"
    assert sensor.attributes["reason"] is None
    assert len(sensor.attributes["schedule"]) == 52
    car = next(d for d in sensor.attributes["devices"] if d["device"] == "Jan's car")
    assert car == {
        "device": "Jan's car",
        "action": "pause",
        "amount": None,
        "unit": None,
        "next_change": "2026-01-15T19:00:00+00:00",
        "next_action": "charge",
    }
    # Per quarter hour what a chart plots: the price and the powers of the plan.
    rows = sensor.attributes["schedule"]
    first, evening_row = rows[0], rows[plan.steps.index(evening)]
    assert first["start"] == plan.steps[0].start.isoformat()
    assert first["price"] == pytest.approx((0.2 + 0.1) * 1.21, abs=1e-5)
    assert (first["charger_w"], first["battery_w"]) == (0, round(_battery_w(plan.steps[0])))
    assert evening_row["start"] == evening.start.isoformat()
    assert evening_row["charger_w"] == round(evening.chargers[CHARGER_ID].charge_w) > 0
    assert evening_row["grid_w"] == round(evening.import_w - evening.export_w)
    today = hass.states.get("sensor.home_expected_cost_today")
    assert today is not None
    # Nothing metered yet today (the first quarter hour is still open): the plan alone.
    assert float(today.state) == pytest.approx(plan.energy_cost_eur, abs=1e-3)
    assert today.attributes["quarter_hours_metered"] == 0
    assert today.attributes["quarter_hours_unmetered"] == 44  # 00:00-11:00 CET
    baseline = hass.states.get("sensor.home_baseline_cost")
    assert baseline is not None
    assert float(baseline.state) > float(today.state)
    action = hass.states.get("sensor.jan_s_car_next_action")
    assert action is not None
    assert action.state == "pause"
    assert action.attributes["next_change"] == "2026-01-15T19:00:00+00:00"
    assert action.attributes["next_action"] == "charge"
    assert isinstance(asked_then := evening.setpoints[CHARGER_ID], ChargerSetpoint)
    assert action.attributes["next_amount"] == round(asked_then.current_a) > 0
    # Tomorrow's prices are not out: its cost is unknown, not 0.
    assert state_value(hass, "sensor.home_expected_cost_tomorrow") == "unknown"


def _battery_w(step: PlanStep) -> float:
    return sum(b.charge_w - b.discharge_w for b in step.batteries.values())


@pytest.mark.usefixtures("targets")
async def test_missing_prices_fall_back_and_say_so(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, status=204)
    entry, planner = await setup_planner(hass, make_entry)
    assert planner.plan is not None
    assert planner.plan.status is PlanStatus.FALLBACK
    assert "no day-ahead prices" in planner.plan.reason
    sensor = hass.states.get("sensor.home_plan")
    assert sensor is not None
    assert sensor.state == "fallback"
    assert sensor.attributes["reason"] == "no_prices"
    # Costs are unknown without prices, not priced at 0.
    assert planner.plan.expected_cost_eur is None
    assert state_value(hass, "sensor.home_expected_cost_today") == "unknown"
    assert state_value(hass, "sensor.home_baseline_cost") == "unknown"
    assert sensor.attributes["schedule"][0]["price"] is None
    # A repair issue says so; the log says it once per outage.
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"no_prices_{entry.entry_id}")
    assert issue is not None
    assert "not_yet_published" in (issue.translation_placeholders or {})["detail"]
    await planner.async_replan("quarter hour")
    assert caplog.text.count("planning as without Netbewust") == 1
    # The simple rule charges the car at full power; the guard never paused it.
    freezer.tick(timedelta(seconds=2))
    set_meter(hass, 1000)
    await hass.async_block_till_done()
    assert float(state_value(hass, CHARGER_CURRENT)) == 16

    # Prices arrive: the issue clears. (No solver here: the solve is not under test, so
    # the plan is the "not started" fallback, now with prices and costs.)
    planner._solver = None
    aioclient_mock.clear_requests()
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    await planner.async_refresh_prices()
    priced = planner.plan
    assert priced is not None
    assert priced.reason == "planner not started"
    assert priced.expected_cost_eur is not None
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"no_prices_{entry.entry_id}") is None
    assert "raising repair issue no_prices" in caplog.text
    assert "no_prices resolved" in caplog.text


@pytest.mark.usefixtures("targets")
async def test_without_prices_or_weather_an_sg_ready_pump_is_never_blocked(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(datetime(2026, 12, 7, 6, 0, tzinfo=UTC))  # a December morning
    aioclient_mock.get(NORDPOOL_URL, status=204)
    entry = make_entry(subentries=(HEAT_PUMP, PLANNER))
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    planner = entry.runtime_data.planner
    fallback = planner.plan
    assert fallback is not None
    assert fallback.status is PlanStatus.FALLBACK
    assert len(fallback.steps) == 96
    assert all(HEAT_PUMP_ID not in step.setpoints for step in fallback.steps)
    # 20 minutes, a telegram every 5 s, across a quarter hour's re-plan: never blocked.
    for second in range(0, 20 * 60, 5):
        freezer.tick(timedelta(seconds=5))
        async_fire_time_changed(hass)
        set_meter(hass, 1000 + second % 7)
        await hass.async_block_till_done()
        assert state_value(hass, HP_SG1) == "off"
    assert planner.replans >= 2


@pytest.mark.usefixtures("targets")
async def test_prices_from_an_entity(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry]
) -> None:
    raw = [
        {
            "start": (DAY_START + timedelta(hours=h)).isoformat(),
            "end": (DAY_START + timedelta(hours=h + 1)).isoformat(),
            "value": 0.02 if h >= 20 else 0.2,
        }
        for h in range(24)
    ]
    hass.states.async_set(
        "sensor.prices", "0.2", {"unit_of_measurement": "EUR/kWh", "raw_today": raw}
    )
    planner_entry = subentry(
        "sub_planner",
        SUBENTRY_PLANNER,
        "Planner",
        {CONF_PRICE_SOURCE: "entity", CONF_PRICE_ENTITY: "sensor.prices"},
    )
    _, planner = await setup_planner(hass, make_entry, planner_entry)
    assert planner.plan is not None
    assert planner.plan.status is PlanStatus.OPTIMAL
    assert planner.plan.steps[0].import_price_eur_per_kwh == pytest.approx(0.2)


@pytest.mark.usefixtures("targets")
async def test_replans_on_limit_service_and_ev_change(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    _, planner = await setup_planner(hass, make_entry)
    count = planner.replans
    # A community limit caps the evening import: the car must charge less then.
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
        intervals=(
            LimitInterval(
                start=datetime(2026, 1, 15, 19, 0, tzinfo=UTC),
                end=datetime(2026, 1, 15, 23, 0, tzinfo=UTC),
                max_import_w=2000,
            ),
        ),
    )
    planner.async_set_external_limit(limit)
    await hass.async_block_till_done()
    assert planner.replans == count + 1
    assert planner.plan is not None
    capped = [s for s in planner.plan.steps if s.start >= limit.intervals[0].start]
    assert capped
    assert all(s.import_w <= 2000 + 1e-6 for s in capped)

    await hass.services.async_call(DOMAIN, "replan", {}, blocking=True)
    assert planner.replans == count + 2

    await hass.services.async_call(
        "number",
        "set_value",
        {"entity_id": "number.jan_s_car_ev_energy_to_add", "value": 0},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert planner.replans == count + 3
    assert planner.plan is not None
    assert all(s.chargers[CHARGER_ID].charge_w == 0 for s in planner.plan.steps)

    await hass.services.async_call(
        "time",
        "set_value",
        {"entity_id": "time.jan_s_car_departure", "time": "22:00:00"},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert planner.ev[CHARGER_ID].departure.hour == 22
    state = hass.states.get("time.jan_s_car_departure")
    assert state is not None
    assert state.state == "22:00:00"


@pytest.mark.usefixtures("targets")
async def test_replan_service_needs_a_planner(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry]
) -> None:
    entry = make_entry(subentries=(CHARGER,))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(DOMAIN, "replan", {}, blocking=True)


def nordpool_action_answer(day_start: datetime, eur_per_mwh: float) -> list[dict[str, Any]]:
    """Hourly entries as HA's `nordpool.get_prices_for_date` returns them: per MWh."""
    return [
        {
            "start": (day_start + timedelta(hours=h)).isoformat(),
            "end": (day_start + timedelta(hours=h + 1)).isoformat(),
            "price": eur_per_mwh,
        }
        for h in range(24)
    ]


def ha_nordpool_price_entity(
    hass: HomeAssistant, action: Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]]
) -> str:
    """A current-price sensor of HA's Nord Pool integration for an entry with NL and BE,
    whose `get_prices_for_date` action is `action`."""
    hass.services.async_register(
        "nordpool", "get_prices_for_date", action, supports_response=SupportsResponse.ONLY
    )
    nordpool = MockConfigEntry(domain="nordpool", data={"areas": ["NL", "BE"]})
    nordpool.add_to_hass(hass)
    registered = er.async_get(hass).async_get_or_create(
        "sensor", "nordpool", "NL-current_price", config_entry=nordpool
    )
    hass.states.async_set(registered.entity_id, "0.2", {"unit_of_measurement": "EUR/kWh"})
    return registered.entity_id


async def plan_with_ha_nordpool(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    action: Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]],
    **settings: Any,
) -> Plan:
    """The first plan of a planner whose prices come from HA's Nord Pool `action`."""
    entity_id = ha_nordpool_price_entity(hass, action)
    planner_entry = subentry(
        "sub_planner",
        SUBENTRY_PLANNER,
        "Planner",
        {CONF_PRICE_SOURCE: "entity", CONF_PRICE_ENTITY: entity_id, **settings},
    )
    _, planner = await setup_planner(hass, make_entry, planner_entry)
    assert planner.plan is not None
    return planner.plan


@pytest.mark.usefixtures("targets")
async def test_prices_through_the_ha_nordpool_action(
    hass: HomeAssistant, make_entry: Callable[..., MockConfigEntry]
) -> None:
    calls: list[dict[str, Any]] = []

    async def get_prices_for_date(call: ServiceCall) -> ServiceResponse:
        calls.append(dict(call.data))
        # Both areas of the entry, as the action answers when no area is asked for.
        return {
            "NL": nordpool_action_answer(DAY_START, 200.0),  # type: ignore[dict-item]
            "BE": nordpool_action_answer(DAY_START, 90.0),  # type: ignore[dict-item]
        }

    plan = await plan_with_ha_nordpool(
        hass, make_entry, get_prices_for_date, **{CONF_ENERGY_TAX: 0.1, CONF_VAT: 21}
    )
    assert calls
    assert calls[0]["date"] == "2026-01-15"
    assert calls[0]["areas"] == ["NL"]
    assert plan.status is PlanStatus.OPTIMAL
    # 200 EUR/MWh is 0.20 EUR/kWh spot, then tax and VAT; Belgium's prices are not mixed in.
    assert plan.steps[0].import_price_eur_per_kwh == pytest.approx((0.2 + 0.1) * 1.21)


async def _failing_action(call: ServiceCall) -> ServiceResponse:
    raise ServiceValidationError("connection_error")


async def _empty_answer(call: ServiceCall) -> ServiceResponse:
    return {"NL": []}


@pytest.mark.usefixtures("targets")
@pytest.mark.parametrize(
    ("action", "reason"),
    [(_failing_action, "Nord Pool action failed"), (_empty_answer, "not_yet_published")],
)
async def test_no_prices_from_the_ha_nordpool_action_fall_back_and_say_why(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    action: Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]],
    reason: str,
) -> None:
    plan = await plan_with_ha_nordpool(hass, make_entry, action)
    assert plan.status is PlanStatus.FALLBACK
    assert reason in plan.reason


@pytest.mark.usefixtures("targets")
async def test_replans_every_quarter_hour(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    _, planner = await setup_planner(hass, make_entry)
    count = planner.replans
    assert planner.plan is not None
    assert planner.plan.steps[0].start == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    # Nothing between the quarter hours.
    moment = datetime(2026, 1, 15, 10, 10, tzinfo=UTC)
    freezer.move_to(moment)
    async_fire_time_changed(hass, moment)
    await hass.async_block_till_done()
    assert planner.replans == count
    quarter = datetime(2026, 1, 15, 10, 15, tzinfo=UTC)
    freezer.move_to(quarter)
    async_fire_time_changed(hass, quarter)
    await hass.async_block_till_done()
    assert planner.replans == count + 1
    assert planner.plan.steps[0].start == quarter
    assert len(planner.plan.steps) == 51


@pytest.mark.usefixtures("targets")
async def test_a_price_refresh_in_flight_at_unload_leaves_no_timer(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
) -> None:
    """Home Assistant runs the unload callbacks before it waits for the entry's tasks: a
    refresh still under way then must neither plan nor schedule the next price attempt."""
    aioclient_mock.get(NORDPOOL_URL, json=EVENING_CHEAP)
    entry, planner = await setup_planner(hass, make_entry)
    planning = asyncio.Event()
    release = asyncio.Event()
    replan = planner.async_replan

    async def slow_replan(reason: str) -> None:
        planning.set()
        await release.wait()
        await replan(reason)

    planner.async_replan = slow_replan  # type: ignore[method-assign]
    replans = planner.replans
    entry.async_create_task(hass, planner.async_refresh_prices(), "refresh under test")
    await planning.wait()
    unload = hass.async_create_task(hass.config_entries.async_unload(entry.entry_id))
    for _ in range(1000):  # until the unload callbacks ran and it waits for the refresh
        if planner._stopped:
            break
        await asyncio.sleep(0)
    assert planner._stopped
    release.set()
    assert await unload
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert planner._price_timer is None
    # Nor does it plan on: that would start the released solver process again.
    assert planner.replans == replans
    assert planner._solver is not None
    assert not planner._solver.running


CHEAP_NOW = hourly_prices(lambda hour: 10.0 if hour == 11 else 200.0)


@pytest.mark.usefixtures("targets")
async def test_replans_when_the_guard_clamps_the_plan(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
) -> None:
    aioclient_mock.get(NORDPOOL_URL, json=CHEAP_NOW)
    _, planner = await setup_planner(hass, make_entry)
    assert planner.plan is not None
    # 11:00 CET is the cheapest hour: the plan charges the car now.
    assert planner.plan.steps[0].chargers[CHARGER_ID].charge_w > 0
    count = planner.replans
    # A reading within the fuse: the guard follows the plan, nothing to re-plan.
    freezer.tick(timedelta(seconds=2))
    set_meter(hass, 3000)
    await hass.async_block_till_done()
    assert planner.replans == count
    # The rest of the house draws far more than forecast: the fuse holds the car back.
    freezer.tick(timedelta(seconds=2))
    set_meter(hass, 9000)
    await hass.async_block_till_done()
    decision = planner.runtime.last_decision
    assert decision is not None
    assert any(item.device_id == CHARGER_ID for item in decision.limitations)
    assert planner.replans == count + 1
    # A lasting overload re-plans at most every five minutes, not on every reading.
    freezer.tick(timedelta(seconds=2))
    set_meter(hass, 9100)
    await hass.async_block_till_done()
    assert planner.replans == count + 1
    freezer.tick(timedelta(minutes=5))
    set_meter(hass, 9000)
    await hass.async_block_till_done()
    assert planner.replans == count + 2
