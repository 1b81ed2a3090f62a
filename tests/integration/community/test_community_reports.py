"""What a household reports to its community: capabilities and the day-ahead baseline."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from custom_components.netbewust.community.capabilities import (
    battery_soc_pct,
    next_local_time,
)
from custom_components.netbewust.community.const import CONF_HOUSEHOLD
from custom_components.netbewust.const import (
    CONF_BATTERY_CAPACITY,
    CONF_MIN_CURRENT,
    CONF_PRICE_ENTITY,
    CONF_PRICE_SOURCE,
    CONF_SOC_ENTITY,
    SUBENTRY_PLANNER,
)
from custom_components.netbewust.core.protocol.messages import BaselineForecast
from custom_components.netbewust.core.protocol.session import BaselineSource, differs
from custom_components.netbewust.core.timegrid import QUARTER
from netbewust_core.protocol.messages import AssetKind, Capabilities
from tests.clock import clock_now
from tests.server.household_client import wait_until

from ..conftest import (
    BATTERY,
    BATTERY_SOC,
    CHARGER,
    CHARGER_STATUS,
    HEAT_PUMP,
    PV,
    set_meter,
    subentry,
)
from .conftest import Community, join, membership

if TYPE_CHECKING:
    from collections.abc import Callable

    from homeassistant.config_entries import ConfigSubentryData
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

EAN = "871685900000000004"
BATTERY_WITH_CAPACITY = subentry(
    BATTERY["subentry_id"],
    BATTERY["subentry_type"],
    BATTERY["title"],
    {**BATTERY["data"], CONF_BATTERY_CAPACITY: 10},
)
# A charger whose minimum current is configured above the IEC 61851 6 A.
CHARGER_8A = subentry(
    CHARGER["subentry_id"],
    CHARGER["subentry_type"],
    CHARGER["title"],
    {**CHARGER["data"], CONF_MIN_CURRENT: 8},
)
PLANNER = subentry(
    "sub_planner",
    SUBENTRY_PLANNER,
    "Planner",
    # A price entity that has no prices: the planner makes its stated fallback plan.
    {CONF_PRICE_SOURCE: "entity", CONF_PRICE_ENTITY: "sensor.no_prices"},
)


async def connected(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    subentries: tuple[ConfigSubentryData, ...],
) -> MockConfigEntry:
    entry = make_entry(subentries=subentries)
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def stored_capabilities(community: Community, household: str) -> Capabilities | None:
    stored = community.store.household(household)
    return None if stored is None else stored.capabilities


async def test_capabilities_carry_the_households_flexibility_and_follow_changes(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    community: Community,
) -> None:
    connection = await connected(
        hass, make_entry, (CHARGER_8A, BATTERY_WITH_CAPACITY, HEAT_PUMP, PV, PLANNER)
    )
    hass.states.async_set(CHARGER_STATUS, "B")  # plugged in, not charging
    entry = await join(hass, community, connection, ean=EAN, tariff_class="1x25A")
    household = entry.data[CONF_HOUSEHOLD]
    await wait_until(lambda: stored_capabilities(community, household) is not None)
    stored = stored_capabilities(community, household)
    assert stored is not None
    assert (stored.phases, stored.fuse_current_a) == (1, 25.0)
    assert (stored.ean, stored.tariff_class) == (EAN, "1x25A")
    assert stored.pv_peak_w == 4000.0
    assert stored.battery is not None
    assert (stored.battery.energy_wh, stored.battery.max_charge_w) == (10_000.0, 2500.0)
    assert stored.heat_pump is not None
    assert stored.heat_pump.flexible_power_w == 2000.0  # SG-ready blocks it fully
    [envelope] = stored.envelopes
    assert envelope.asset is AssetKind.EV
    assert envelope.energy_wh == 10_000.0  # the planner's default: 10 kWh by 07:00
    assert envelope.max_power_w == 16 * 230.0
    assert envelope.min_power_w == 8 * 230.0  # its configured minimum, on its one phase
    assert envelope.deadline.astimezone(ZoneInfo(hass.config.time_zone)).time() == time(7, 0)

    # Unplugged: the envelope is withdrawn at the next report.
    hass.states.async_set(CHARGER_STATUS, "A")
    await wait_until(
        lambda: (c := stored_capabilities(community, household)) is not None and not c.envelopes,
        timeout_s=25,
    )

    # A device removed: the connection reloads and the new capabilities are sent.
    hass.config_entries.async_remove_subentry(connection, BATTERY_WITH_CAPACITY["subentry_id"])
    await hass.async_block_till_done()
    await wait_until(
        lambda: (c := stored_capabilities(community, household)) is not None and c.battery is None,
        timeout_s=25,
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_telemetry_carries_the_batterys_state_of_charge_while_known(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    community: Community,
) -> None:
    connection = await connected(hass, make_entry, (BATTERY_WITH_CAPACITY,))
    hass.states.async_set(BATTERY_SOC, "72.5", {"unit_of_measurement": "%"})
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]

    def reported_soc() -> float | None:
        telemetry = community.server.latest_telemetry.get(household)
        return None if telemetry is None else telemetry.battery_soc_pct

    await wait_until(lambda: reported_soc() == 72.5, timeout_s=25)
    # Unavailable: the charge is unknown, so none is reported (the key is left out).
    hass.states.async_set(BATTERY_SOC, "unavailable")
    await wait_until(
        lambda: (
            (t := community.server.latest_telemetry.get(household)) is not None
            and t.measured_at > clock_now() - timedelta(seconds=5)
            and t.battery_soc_pct is None
        ),
        timeout_s=25,
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_several_batteries_report_their_capacity_weighted_charge(
    hass: HomeAssistant, targets: None, make_entry: Callable[..., MockConfigEntry]
) -> None:
    second_soc = "sensor.second_battery_soc"
    second = subentry(
        "sub_second_battery",
        BATTERY["subentry_type"],
        "Second battery",
        {**BATTERY["data"], CONF_BATTERY_CAPACITY: 30, CONF_SOC_ENTITY: second_soc},
    )
    connection = await connected(hass, make_entry, (BATTERY_WITH_CAPACITY, second))
    runtime = connection.runtime_data
    hass.states.async_set(BATTERY_SOC, "80", {"unit_of_measurement": "%"})
    hass.states.async_set(second_soc, "40", {"unit_of_measurement": "%"})
    assert battery_soc_pct(runtime, hass.states.get) == pytest.approx(50.0)  # (10x80+30x40)/40
    hass.states.async_set(second_soc, "unknown")
    assert battery_soc_pct(runtime, hass.states.get) is None  # part of them is not the whole
    assert await hass.config_entries.async_unload(connection.entry_id)


async def test_without_a_battery_no_charge_is_reported(
    hass: HomeAssistant, targets: None, make_entry: Callable[..., MockConfigEntry]
) -> None:
    connection = await connected(hass, make_entry, (CHARGER,))
    assert battery_soc_pct(connection.runtime_data, hass.states.get) is None
    assert await hass.config_entries.async_unload(connection.entry_id)


async def test_without_a_planner_the_baseline_is_a_flat_estimate_said_as_such(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    await wait_until(lambda: community.store.latest_baseline(household) is not None)
    stored = community.store.latest_baseline(household)
    assert stored is not None
    assert len(stored.power_w) == 96
    assert set(stored.power_w) == {400.0}  # no recorder statistics in this test
    sent = membership(entry).session.baseline_sent
    assert sent is not None
    assert sent.source is BaselineSource.FLAT_ESTIMATE
    assert membership(entry).as_dict()["baseline_source"] == "flat_estimate"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_with_a_planner_the_baseline_is_the_plans_grid_power_without_the_car(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    community: Community,
) -> None:
    connection = await connected(hass, make_entry, (CHARGER, PLANNER))
    planner = connection.runtime_data.planner
    assert planner is not None
    await wait_until(lambda: planner.plan is not None)
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    await wait_until(lambda: community.store.latest_baseline(household) is not None)
    stored = community.store.latest_baseline(household)
    assert stored is not None
    sent = membership(entry).session.baseline_sent
    assert sent is not None
    assert sent.source is BaselineSource.PLAN
    # The car is offered as an envelope and planned by the community: not in the baseline.
    assert planner.plan is not None
    steps = {step.start: step for step in planner.plan.steps}
    charging = 0
    for index, power_w in enumerate(stored.power_w):
        step = steps.get(stored.start + index * QUARTER)
        if step is None:
            continue
        car_w = sum(car.charge_w for car in step.chargers.values())
        charging += car_w > 0
        assert power_w == pytest.approx(step.import_w - step.export_w - car_w, abs=1e-6)
    assert charging > 0  # the plan does charge the car: the test can tell the difference
    assert len(stored.power_w) == 96
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_a_baseline_differs_only_beyond_the_tolerance() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    old = BaselineForecast(start=start, power_w=(100.0, 200.0, 300.0))
    later = BaselineForecast(start=start + timedelta(minutes=15), power_w=(250.0, 300.0, 900.0))
    assert not differs(old, later, 100.0)  # only the overlap counts
    assert differs(old, replace(later, power_w=(500.0, 300.0)), 100.0)
    assert differs(later, old, 100.0)  # older than what was sent


def test_departure_is_the_next_local_wall_clock_time() -> None:
    zone = ZoneInfo("Europe/Amsterdam")
    # 30 March 2026 06:00 UTC is 08:00 CEST: 07:00 has passed, so the next day's.
    start = datetime(2026, 3, 30, 6, tzinfo=UTC)
    assert next_local_time(start, time(7, 0), zone) == datetime(2026, 3, 31, 5, tzinfo=UTC)
    # Across the spring DST change: 07:00 CEST on 29 March is 05:00 UTC.
    assert next_local_time(datetime(2026, 3, 28, 22, tzinfo=UTC), time(7), zone) == datetime(
        2026, 3, 29, 5, tzinfo=UTC
    )
