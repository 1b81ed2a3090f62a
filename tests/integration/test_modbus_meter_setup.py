"""A household measured by a Modbus meter only: UI setup, waiting in safe mode, diagnostics,
and Modbus battery capacity reaching the planner. Real pymodbus simulators on loopback."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigSubentry
from homeassistant.const import CONF_NAME
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)

from custom_components.netbewust.const import (
    CONF_BATTERY_CAPACITY,
    CONF_CONNECTION_TYPE,
    CONF_DEVICE_PHASES,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_DISCHARGE_POWER,
    CONF_METER_MODE,
    CONF_MODBUS_HOST,
    CONF_MODBUS_LINK,
    CONF_MODBUS_PORT,
    CONF_MODBUS_PROFILE,
    CONF_MODBUS_UNIT_ID,
    CONF_PEAK_MODE,
    CONF_PRIORITY,
    CONF_SAFETY_MARGIN,
    DOMAIN,
    METER_MODE_MODBUS,
    SUBENTRY_MODBUS,
)
from custom_components.netbewust.core.model import GuardState
from custom_components.netbewust.flows.modbus import ModbusSubentryFlow
from custom_components.netbewust.modbus.runtime import MISSING_METER_ISSUE
from custom_components.netbewust.planner.setup import async_create_planner
from tests.clock import clock_now
from tests.modbus.conftest import serving
from tests.modbus.sim_sunspec import SunSpecBatterySim, SunSpecMeterSim
from tests.modbus.simulator import RegisterBank, free_port

from .test_subentry_flows import STRINGS, by_title, make_entry, start, submit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

    from custom_components.netbewust.guard.runtime import NetbewustRuntime
    from tests.modbus.simulator import SimServer

CONNECTION_3X25 = {
    CONF_NAME: "Thuis",
    CONF_CONNECTION_TYPE: "3x25",
    CONF_SAFETY_MARGIN: 1.0,
    CONF_PEAK_MODE: "instantaneous",
    CONF_METER_MODE: METER_MODE_MODBUS,
}


@pytest.fixture(autouse=True)
def _loopback(socket_enabled: None) -> Iterator[None]:
    """The simulators are real TCP servers on 127.0.0.1; probes give up quickly."""
    with patch.object(ModbusSubentryFlow, "probe_timeout_s", 0.4):
        yield


@pytest.fixture
async def meter() -> AsyncIterator[tuple[SimServer, SunSpecMeterSim]]:
    bank = RegisterBank()
    sim = SunSpecMeterSim(bank)
    async with serving(bank) as server:
        yield server, sim


def meter_input(port: int) -> dict[str, Any]:
    return {
        CONF_NAME: "Meter",
        CONF_MODBUS_PROFILE: "sunspec_meter",
        CONF_MODBUS_LINK: "tcp",
        CONF_MODBUS_HOST: "127.0.0.1",
        CONF_MODBUS_PORT: port,
        CONF_MODBUS_UNIT_ID: 1,
        CONF_PRIORITY: 9,
        CONF_DEVICE_PHASES: ["1", "2", "3"],
    }


def battery_input(port: int, **changes: Any) -> dict[str, Any]:
    data = {
        **meter_input(port),
        CONF_NAME: "Thuisbatterij",
        CONF_MODBUS_PROFILE: "sunspec_battery",
        CONF_MAX_CHARGE_POWER: 5000,
        CONF_MAX_DISCHARGE_POWER: 5000,
        **changes,
    }
    return {key: value for key, value in data.items() if value is not None}


async def create_modbus_metered_entry(hass: HomeAssistant) -> ConfigEntry:
    """Through the UI: the connection form with the Modbus meter mode, nothing else."""
    form = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(form["flow_id"], CONNECTION_3X25)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry: ConfigEntry = result["result"]
    return entry


def missing_meter_issue(hass: HomeAssistant, entry_id: str) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{MISSING_METER_ISSUE}_{entry_id}")


async def test_modbus_meter_mode_skips_the_p1_step_and_keeps_the_connection(
    hass: HomeAssistant,
) -> None:
    entry = await create_modbus_metered_entry(hass)

    assert entry.title == "Thuis"
    assert entry.data == {
        CONF_CONNECTION_TYPE: "3x25",
        CONF_SAFETY_MARGIN: 1.0,
        CONF_PEAK_MODE: "instantaneous",
        CONF_METER_MODE: METER_MODE_MODBUS,
        "phases": 3,
        "fuse_current": 25.0,
    }
    assert METER_MODE_MODBUS in STRINGS["selector"]["meter_mode"]["options"]
    assert MISSING_METER_ISSUE in STRINGS["issues"]


async def test_reconfigure_to_a_modbus_meter_drops_the_p1_entities(hass: HomeAssistant) -> None:
    entry = make_entry(hass, phases=3)
    with patch("custom_components.netbewust.async_setup_entry", return_value=True):
        form = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(form["flow_id"], CONNECTION_3X25)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_METER_MODE] == METER_MODE_MODBUS
    assert "power_import_l1" not in entry.data


async def test_guard_waits_in_safe_mode_until_the_modbus_meter_is_added(
    hass: HomeAssistant, meter: tuple[SimServer, SunSpecMeterSim]
) -> None:
    server, sim = meter
    entry = await create_modbus_metered_entry(hass)
    runtime: NetbewustRuntime = entry.runtime_data
    issue = missing_meter_issue(hass, entry.entry_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {"title": "Thuis"}
    async_fire_time_changed(hass, clock_now() + timedelta(seconds=2))
    await hass.async_block_till_done()
    decision = runtime.last_decision
    assert decision is not None
    assert decision.state is GuardState.STARTING  # the meter's own timeout first
    # Past it (the test's clock runs in real time, so the guard is asked directly).
    decision = runtime.guard.on_tick(clock_now() + timedelta(seconds=13))
    assert decision is not None
    assert decision.state is GuardState.SAFE_MODE

    # The household adds its meter: probed for real, then the entry reloads with it.
    sim.set_phases((2300.0, 1150.0, 0.0))
    result = await submit(hass, await start(hass, entry, SUBENTRY_MODBUS), meter_input(server.port))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    assert missing_meter_issue(hass, entry.entry_id) is None
    runtime = entry.runtime_data
    assert runtime.modbus is not None
    await runtime.modbus.poll_once()
    await hass.async_block_till_done()
    decision = runtime.last_decision
    assert decision is not None
    assert decision.state is not GuardState.SAFE_MODE
    assert decision.phase_current_a[:2] == pytest.approx((10.0, 5.0), abs=0.1)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unreachable_meter_keeps_the_issue_away_but_the_guard_safe(
    hass: HomeAssistant, meter: tuple[SimServer, SunSpecMeterSim]
) -> None:
    """Once a meter is configured, the "add your meter" issue is gone for good; a meter
    that stops answering is the stale-meter rule's business."""
    server, _ = meter
    entry = await create_modbus_metered_entry(hass)
    await submit(hass, await start(hass, entry, SUBENTRY_MODBUS), meter_input(server.port))
    await hass.async_block_till_done()
    await server.stop_serving()
    runtime: NetbewustRuntime = entry.runtime_data
    assert runtime.modbus is not None
    await runtime.modbus.poll_once()
    async_fire_time_changed(hass, clock_now() + timedelta(seconds=2))
    await hass.async_block_till_done()

    assert missing_meter_issue(hass, entry.entry_id) is None
    # Silent past the meter's timeout (the test's clock runs in real time: asked directly).
    decision = runtime.guard.on_tick(clock_now() + timedelta(seconds=13))
    assert decision is not None
    assert decision.state is GuardState.SAFE_MODE
    runner = runtime.modbus.runners[by_title(entry, "Meter")]
    assert runner.reachable is False
    assert runner.last_error
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_show_modbus_devices_without_host_or_serial(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    meter: tuple[SimServer, SunSpecMeterSim],
) -> None:
    server, _ = meter
    entry = await create_modbus_metered_entry(hass)
    await submit(hass, await start(hass, entry, SUBENTRY_MODBUS), meter_input(server.port))
    await hass.async_block_till_done()
    runtime: NetbewustRuntime = entry.runtime_data
    assert runtime.modbus is not None
    await runtime.modbus.poll_once()

    result = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    (device,) = result["modbus_devices"]
    assert device["profile_id"] == "sunspec_meter"
    assert device["link"] == "tcp"
    assert device["unit_id"] == 1
    assert device["available"] is True
    assert device["measures_connection"] is True
    assert device["last_error"] is None
    assert device["host"] == "**REDACTED**"
    assert device["identity"]["serial"] == "**REDACTED**"
    assert device["identity"]["model"] == "SimMeter"
    stored = next(s for s in result["entry"]["subentries"] if s["subentry_type"] == SUBENTRY_MODBUS)
    assert stored["data"][CONF_MODBUS_HOST] == "**REDACTED**"
    assert "SN-0042" not in str(result)
    assert "127.0.0.1" not in str(result)

    await server.stop_serving()
    await runtime.modbus.poll_once()
    (device,) = (await get_diagnostics_for_config_entry(hass, hass_client, entry))["modbus_devices"]
    assert device["available"] is False
    assert device["last_error"]
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def battery() -> AsyncIterator[SimServer]:
    bank = RegisterBank()
    SunSpecBatterySim(bank)
    async with serving(bank) as server:
        yield server


async def test_battery_capacity_is_stored_for_the_planner(
    hass: HomeAssistant, battery: SimServer
) -> None:
    entry = make_entry(hass, phases=3)
    with patch("custom_components.netbewust.async_setup_entry", return_value=True):
        zero = await submit(
            hass,
            await start(hass, entry, SUBENTRY_MODBUS),
            battery_input(battery.port, **{CONF_BATTERY_CAPACITY: 0}),
        )
        assert zero["errors"] == {CONF_BATTERY_CAPACITY: "capacity_not_positive"}
        assert "capacity_not_positive" in STRINGS["config_subentries"][SUBENTRY_MODBUS]["error"]
        done = await submit(
            hass, zero, battery_input(battery.port, **{CONF_BATTERY_CAPACITY: 10.5})
        )
        assert done["type"] is FlowResultType.CREATE_ENTRY
        # Without a capacity the battery is still added; the planner then leaves it be.
        await submit(
            hass,
            await start(hass, entry, SUBENTRY_MODBUS),
            battery_input(battery.port, **{CONF_NAME: "Tweede"}),
        )
    battery_id = by_title(entry, "Thuisbatterij")
    assert entry.subentries[battery_id].data[CONF_BATTERY_CAPACITY] == 10.5
    assert CONF_BATTERY_CAPACITY not in entry.subentries[by_title(entry, "Tweede")].data


async def test_capacity_is_dropped_for_a_meter(
    hass: HomeAssistant, meter: tuple[SimServer, SunSpecMeterSim]
) -> None:
    entry = make_entry(hass, phases=3)
    with patch("custom_components.netbewust.async_setup_entry", return_value=True):
        done = await submit(
            hass,
            await start(hass, entry, SUBENTRY_MODBUS),
            {**meter_input(meter[0].port), CONF_BATTERY_CAPACITY: 10},
        )
    assert done["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_BATTERY_CAPACITY not in entry.subentries[by_title(entry, "Meter")].data


async def test_planner_gets_the_modbus_battery_capacity(hass: HomeAssistant) -> None:
    """The capacity a Modbus battery subentry stores reaches the planning runtime."""
    entry = make_entry(hass, phases=3)
    battery = battery_input(free_port(), **{CONF_BATTERY_CAPACITY: 7.5})
    hass.config_entries.async_add_subentry(
        entry,
        _subentry(SUBENTRY_MODBUS, "Thuisbatterij", battery),
    )
    hass.config_entries.async_add_subentry(
        entry,
        _subentry("planner", "Planner", {"nordpool_area": "NL", "price_source": "nordpool"}),
    )
    captured: dict[str, float] = {}

    def fake_runtime(*args: Any) -> object:
        captured.update(args[4])
        return object()

    with (
        patch("custom_components.netbewust.planner.setup.PlanningRuntime", fake_runtime),
        patch("custom_components.netbewust.planner.setup.ForecastSource"),
    ):
        assert async_create_planner(hass, entry, _RuntimeStub()) is not None  # type: ignore[arg-type]
    assert captured == {by_title(entry, "Thuisbatterij"): 7500.0}


class _RuntimeStub:
    """Only what `async_create_planner` reads from the runtime: the meter entities."""

    class config:
        meter = None


def _subentry(kind: str, title: str, data: dict[str, Any]) -> ConfigSubentry:
    data = {key: value for key, value in data.items() if key != CONF_NAME}
    return ConfigSubentry(
        data=MappingProxyType(data), subentry_type=kind, title=title, unique_id=None
    )
