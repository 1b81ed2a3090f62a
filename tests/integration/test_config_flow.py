"""The main config flow: connection, meter entities, slow-meter warning, reconfigure, options."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigSubentryData
from homeassistant.const import CONF_NAME
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from sqlalchemy.exc import SQLAlchemyError

from custom_components.netbewust.config_flow import (
    CONNECTION_SCHEMA,
    CUSTOM_CONNECTION_SCHEMA,
    TOTAL_METER_SCHEMA,
)
from custom_components.netbewust.const import (
    CONF_CONNECTION_TYPE,
    CONF_DEVICE_PHASES,
    CONF_FUSE_CURRENT,
    CONF_METER_MODE,
    CONF_PEAK_LIMIT,
    CONF_PEAK_MODE,
    CONF_PHASES,
    CONF_POWER_EXPORT_TOTAL,
    CONF_POWER_IMPORT_TOTAL,
    CONF_QUARTER_HOUR_DEMAND,
    CONF_SAFETY_MARGIN,
    CONF_STALE_AFTER,
    DOMAIN,
    SUBENTRY_CHARGER,
)
from custom_components.netbewust.flows.meter_interval import (
    async_estimate_update_interval_s,
    estimate_interval_s,
)
from tests.clock import NOW

if TYPE_CHECKING:
    import probatio
    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant

COMPONENT = Path(__file__).parents[2] / "custom_components" / "netbewust"
STRINGS = json.loads((COMPONENT / "strings.json").read_text())
FLOW_SECTIONS = ("config", "options", "config_subentries", "selector")

POWER = {"device_class": "power", "unit_of_measurement": "W"}
VOLTAGE = {"device_class": "voltage", "unit_of_measurement": "V"}
CURRENT = {"device_class": "current", "unit_of_measurement": "A"}

CONNECTION_1X25 = {
    CONF_NAME: "Dorpsstraat 1",
    CONF_CONNECTION_TYPE: "1x25",
    CONF_SAFETY_MARGIN: 1.0,
    CONF_PEAK_MODE: "instantaneous",
    CONF_METER_MODE: "per_phase",
}

pytestmark = pytest.mark.usefixtures("no_setup")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Let Home Assistant load the integration from custom_components.

    Overrides the conftest fixture: a test with the recorder must start it before `hass`.
    """
    if "recorder_mock" in request.fixturenames:
        request.getfixturevalue("recorder_mock")
    request.getfixturevalue("enable_custom_integrations")


def set_meter(hass: HomeAssistant, phases: int = 1, *, power: str = "1200") -> None:
    """A DSMR-like P1 meter: import, export, voltage and current per phase."""
    for phase in range(1, phases + 1):
        hass.states.async_set(f"sensor.import_l{phase}", power, POWER)
        hass.states.async_set(f"sensor.export_l{phase}", "0", POWER)
        hass.states.async_set(f"sensor.voltage_l{phase}", "231.5", VOLTAGE)
        hass.states.async_set(f"sensor.current_l{phase}", "5", CURRENT)


def meter_input(phases: int = 1) -> dict[str, str]:
    fields: dict[str, str] = {}
    for phase in range(1, phases + 1):
        fields[f"power_import_l{phase}"] = f"sensor.import_l{phase}"
        fields[f"power_export_l{phase}"] = f"sensor.export_l{phase}"
        fields[f"voltage_l{phase}"] = f"sensor.voltage_l{phase}"
        fields[f"current_l{phase}"] = f"sensor.current_l{phase}"
    return fields


def schema_of(result: Any) -> dict[Any, Any]:
    schema: probatio.Schema | None = result["data_schema"]
    assert schema is not None
    return dict(schema.schema)


def assert_errors(result: Any, errors: dict[str, str], section: Any = None) -> None:
    """The form shows exactly these errors, and each one has a translation."""
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    translated = (section or STRINGS["config"])["error"]
    for key in errors.values():
        assert key in translated, key


async def start(hass: HomeAssistant) -> Any:
    return await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})


async def to_meter_step(hass: HomeAssistant, connection: dict[str, Any] | None = None) -> Any:
    result = await start(hass)
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], connection or CONNECTION_1X25
    )


async def test_single_phase_per_phase_meter(hass: HomeAssistant) -> None:
    set_meter(hass)
    result = await start(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"

    result = await hass.config_entries.flow.async_configure(result["flow_id"], CONNECTION_1X25)
    assert result["step_id"] == "meter_per_phase"
    # Only the connection's phase is asked for.
    assert "power_import_l2" not in schema_of(result)

    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Dorpsstraat 1"
    assert result["data"] == {
        CONF_CONNECTION_TYPE: "1x25",
        CONF_PHASES: 1,
        CONF_FUSE_CURRENT: 25.0,
        CONF_SAFETY_MARGIN: 1.0,
        CONF_PEAK_MODE: "instantaneous",
        CONF_METER_MODE: "per_phase",
        **meter_input(),
    }
    assert result["options"] == {CONF_STALE_AFTER: 10.0}
    assert result["result"].unique_id == "sensor.import_l1"


async def test_three_phase_with_peak_limit_and_quarter_hour_demand(hass: HomeAssistant) -> None:
    set_meter(hass, 3)
    hass.states.async_set("sensor.demand", "2.5", {**POWER, "unit_of_measurement": "kW"})
    connection = {
        **CONNECTION_1X25,
        CONF_CONNECTION_TYPE: "3x25",
        CONF_PEAK_LIMIT: 5.0,
        CONF_PEAK_MODE: "quarter_hour",
    }
    result = await to_meter_step(hass, connection)
    assert "current_l3" in schema_of(result)
    # Current alone is enough on L2, voltage alone on L3.
    meter = meter_input(3)
    del meter["voltage_l2"], meter["current_l3"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**meter, CONF_QUARTER_HOUR_DEMAND: "sensor.demand"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = result["data"]
    assert (data[CONF_PHASES], data[CONF_FUSE_CURRENT]) == (3, 25.0)
    assert (data[CONF_PEAK_LIMIT], data[CONF_PEAK_MODE]) == (5.0, "quarter_hour")
    assert data[CONF_QUARTER_HOUR_DEMAND] == "sensor.demand"
    assert "voltage_l2" not in data
    assert "current_l3" not in data


async def test_total_only_meter(hass: HomeAssistant) -> None:
    hass.states.async_set("sensor.total_import", "0.8", {**POWER, "unit_of_measurement": "kW"})
    hass.states.async_set("sensor.total_export", "0", POWER)
    result = await to_meter_step(hass, {**CONNECTION_1X25, CONF_METER_MODE: "total"})
    assert result["step_id"] == "meter_total"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_POWER_EXPORT_TOTAL: "sensor.total_export"}
    )
    assert_errors(result, {CONF_POWER_IMPORT_TOTAL: "power_import_required"})

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_POWER_IMPORT_TOTAL: "sensor.total_import",
            CONF_POWER_EXPORT_TOTAL: "sensor.total_export",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_POWER_IMPORT_TOTAL] == "sensor.total_import"
    assert result["result"].unique_id == "sensor.total_import"


async def test_custom_connection(hass: HomeAssistant) -> None:
    set_meter(hass, 3)
    result = await to_meter_step(hass, {**CONNECTION_1X25, CONF_CONNECTION_TYPE: "custom"})
    assert result["step_id"] == "custom_connection"
    assert result["description_placeholders"] == {"min": "6", "max": "250", "margin": "1"}

    for out_of_range in (5, 251):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_PHASES: "3", CONF_FUSE_CURRENT: out_of_range}
        )
        assert_errors(result, {CONF_FUSE_CURRENT: "fuse_out_of_range"})

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PHASES: "3", CONF_FUSE_CURRENT: 50}
    )
    assert result["step_id"] == "meter_per_phase"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input(3))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert (result["data"][CONF_PHASES], result["data"][CONF_FUSE_CURRENT]) == (3, 50.0)
    assert result["data"][CONF_CONNECTION_TYPE] == "custom"


async def test_margin_must_stay_below_the_fuse(hass: HomeAssistant) -> None:
    set_meter(hass)
    result = await to_meter_step(hass, {**CONNECTION_1X25, CONF_SAFETY_MARGIN: 25})
    assert_errors(result, {CONF_SAFETY_MARGIN: "margin_too_large"})
    # The form keeps what was entered.
    schema = schema_of(result)
    margin_key = next(key for key in schema if key == CONF_SAFETY_MARGIN)
    assert margin_key.description == {"suggested_value": 25}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {**CONNECTION_1X25, CONF_CONNECTION_TYPE: "custom", CONF_SAFETY_MARGIN: 10},
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PHASES: "1", CONF_FUSE_CURRENT: 10}
    )
    assert_errors(result, {CONF_FUSE_CURRENT: "margin_too_large"})


async def test_peak_limit_must_be_positive(hass: HomeAssistant) -> None:
    result = await to_meter_step(hass, {**CONNECTION_1X25, CONF_PEAK_LIMIT: 0})
    assert_errors(result, {CONF_PEAK_LIMIT: "peak_limit_not_positive"})


async def test_negative_margin_is_rejected_by_the_schema(hass: HomeAssistant) -> None:
    result = await start(hass)
    with pytest.raises(InvalidData):
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {**CONNECTION_1X25, CONF_SAFETY_MARGIN: -1}
        )


@pytest.mark.parametrize(
    ("state", "attributes", "error"),
    [
        (None, None, "entity_not_found"),
        ("1200", {"device_class": "energy", "unit_of_measurement": "W"}, "wrong_device_class"),
        ("1200", {"unit_of_measurement": "W"}, "wrong_device_class"),
        ("1200", {"device_class": "power", "unit_of_measurement": "kWh"}, "wrong_unit"),
        ("1200", {"device_class": "power"}, "wrong_unit"),
        ("unavailable", POWER, "state_not_numeric"),
        ("nan", POWER, "state_not_numeric"),
        ("high", POWER, "state_not_numeric"),
    ],
)
async def test_meter_entity_is_checked(
    hass: HomeAssistant, state: str | None, attributes: dict[str, str] | None, error: str
) -> None:
    set_meter(hass)
    if state is None:
        hass.states.async_remove("sensor.import_l1")
    else:
        hass.states.async_set("sensor.import_l1", state, attributes)
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert_errors(result, {"power_import_l1": error})


async def test_meter_entity_from_another_domain(hass: HomeAssistant) -> None:
    set_meter(hass)
    hass.states.async_set("input_number.fake_power", "100", POWER)
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**meter_input(), "power_import_l1": "input_number.fake_power"}
    )
    assert_errors(result, {"power_import_l1": "wrong_domain"})


async def test_voltage_and_current_units_are_checked(hass: HomeAssistant) -> None:
    set_meter(hass)
    hass.states.async_set("sensor.voltage_l1", "231", {**VOLTAGE, "unit_of_measurement": "A"})
    hass.states.async_set("sensor.current_l1", "5", {**CURRENT, "unit_of_measurement": "V"})
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert_errors(result, {"voltage_l1": "wrong_unit", "current_l1": "wrong_unit"})


async def test_per_phase_meter_needs_power_and_voltage_or_current(hass: HomeAssistant) -> None:
    set_meter(hass, 3)
    result = await to_meter_step(hass, {**CONNECTION_1X25, CONF_CONNECTION_TYPE: "3x25"})
    meter = meter_input(3)
    del meter["power_import_l2"], meter["voltage_l3"], meter["current_l3"]
    del meter["power_export_l3"]
    meter["current_l1"] = "sensor.voltage_l1"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter)
    assert_errors(
        result,
        {
            "power_import_l2": "power_import_required",
            "power_export_l3": "power_export_incomplete",
            "voltage_l3": "voltage_or_current_required",
            "current_l1": "entity_used_twice",
        },
    )


async def test_unique_id_comes_from_the_entity_registry(hass: HomeAssistant) -> None:
    registered = er.async_get(hass).async_get_or_create(
        "sensor", "dsmr", "5316_power_l1", suggested_object_id="import_l1"
    )
    assert registered.entity_id == "sensor.import_l1"
    set_meter(hass)
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["result"].unique_id == "dsmr_5316_power_l1"


async def test_one_entry_per_connection(hass: HomeAssistant) -> None:
    MockConfigEntry(domain=DOMAIN, unique_id="sensor.import_l1").add_to_hass(hass)
    set_meter(hass)
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert result["reason"] in STRINGS["config"]["abort"]


async def test_second_flow_for_the_same_meter_aborts(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    set_meter(hass)
    freezer.tick(timedelta(seconds=30))  # slow: the first flow stops at the warning
    first = await to_meter_step(hass)
    first = await hass.config_entries.flow.async_configure(first["flow_id"], meter_input())
    assert first["step_id"] == "slow_meter"

    second = await to_meter_step(hass)
    second = await hass.config_entries.flow.async_configure(second["flow_id"], meter_input())
    assert second["type"] is FlowResultType.ABORT
    assert second["reason"] == "already_in_progress"
    assert second["reason"] in STRINGS["config"]["abort"]


async def test_slow_meter_is_warned_about_and_can_be_acknowledged(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    set_meter(hass)
    freezer.tick(timedelta(seconds=31))
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "slow_meter"
    assert result["description_placeholders"] == {
        "entity": "sensor.import_l1",
        "interval": "31",
        "limit": "10",
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_fast_meter_is_not_warned_about(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    set_meter(hass)
    freezer.tick(timedelta(seconds=9))
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def record_updates(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, every_s: float, count: int
) -> None:
    for index in range(count):
        hass.states.async_set("sensor.import_l1", str(1000 + index), POWER)
        await hass.async_block_till_done()
        freezer.tick(timedelta(seconds=every_s))
    # The last update just happened: only the history can show the meter is slow.
    hass.states.async_set("sensor.import_l1", "999", POWER)
    await async_wait_recording_done(hass)


@pytest.mark.usefixtures("recorder_mock")
async def test_recorder_history_reveals_a_slow_meter(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    set_meter(hass)
    await record_updates(hass, freezer, every_s=30, count=8)
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["step_id"] == "slow_meter"
    assert result["description_placeholders"] == {
        "entity": "sensor.import_l1",
        "interval": "30",
        "limit": "10",
    }


@pytest.mark.usefixtures("recorder_mock")
async def test_recorder_history_of_a_fast_meter(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    set_meter(hass)
    await record_updates(hass, freezer, every_s=1, count=20)
    freezer.tick(timedelta(seconds=0.5))
    result = await to_meter_step(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("recorder_mock")
async def test_recorder_failure_falls_back_to_the_live_state(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    set_meter(hass)
    await record_updates(hass, freezer, every_s=30, count=4)
    with patch(
        "homeassistant.components.recorder.history.state_changes_during_period",
        side_effect=SQLAlchemyError("database is locked"),
    ):
        result = await to_meter_step(hass)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    # Without history the meter looks fresh: setup goes on, and the failure is logged.
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "Could not read the history of sensor.import_l1" in caplog.text


async def test_no_estimate_for_an_entity_without_state(hass: HomeAssistant) -> None:
    assert await async_estimate_update_interval_s(hass, "sensor.gone") is None


def test_interval_estimate() -> None:
    now = NOW
    assert estimate_interval_s([], now) is None
    assert estimate_interval_s([now - timedelta(seconds=12)], now) == 12
    # A clock that ran ahead of `now` counts as just updated, not negative.
    assert estimate_interval_s([now + timedelta(seconds=2)], now) == 0
    # Gaps 10, 10, 10, 1 and 9 still open: one quick double update does not hide the rhythm.
    updates = [now - timedelta(seconds=s) for s in (40, 30, 20, 10, 9)]
    assert estimate_interval_s(updates, now) == 10
    # Duplicates (the same update seen twice) do not shorten the estimate.
    assert estimate_interval_s([*updates, *updates], now) == 10


def create_entry(hass: HomeAssistant, phases: int = 1, **extra: Any) -> MockConfigEntry:
    connection = "3x25" if phases == 3 else "1x25"
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Dorpsstraat 1",
        unique_id="sensor.import_l1",
        data={
            CONF_CONNECTION_TYPE: connection,
            CONF_PHASES: phases,
            CONF_FUSE_CURRENT: 25.0,
            CONF_SAFETY_MARGIN: 1.0,
            CONF_PEAK_MODE: "instantaneous",
            CONF_METER_MODE: "per_phase",
            **meter_input(phases),
        },
        options={CONF_STALE_AFTER: 10.0},
        **extra,
    )
    entry.add_to_hass(hass)
    return entry


async def test_reconfigure_to_three_phases(hass: HomeAssistant) -> None:
    set_meter(hass, 3)
    entry = create_entry(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    # The current settings are suggested.
    suggested = {
        str(key): key.description["suggested_value"] for key in schema_of(result) if key.description
    }
    assert suggested[CONF_NAME] == "Dorpsstraat 1"
    assert suggested[CONF_CONNECTION_TYPE] == "1x25"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**CONNECTION_1X25, CONF_NAME: "Thuis", CONF_CONNECTION_TYPE: "3x35"}
    )
    assert result["step_id"] == "meter_per_phase"
    # The phase already configured is suggested; the new ones are empty.
    meter_keys = {str(k): k.description for k in schema_of(result)}
    assert meter_keys["power_import_l1"] == {"suggested_value": "sensor.import_l1"}
    assert meter_keys["power_import_l3"] is None

    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input(3))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.title == "Thuis"
    assert (entry.data[CONF_PHASES], entry.data[CONF_FUSE_CURRENT]) == (3, 35.0)
    assert entry.data["power_import_l3"] == "sensor.import_l3"
    assert entry.unique_id == "sensor.import_l1"
    assert entry.options == {CONF_STALE_AFTER: 10.0}


async def test_reconfigure_can_swap_the_meter_and_drop_the_peak(hass: HomeAssistant) -> None:
    entry = create_entry(hass)
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_PEAK_LIMIT: 4.0})
    hass.states.async_set("sensor.total_import", "500", POWER)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**CONNECTION_1X25, CONF_METER_MODE: "total"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_POWER_IMPORT_TOTAL: "sensor.total_import"}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id == "sensor.total_import"
    assert CONF_PEAK_LIMIT not in entry.data
    assert "power_import_l1" not in entry.data


async def test_reconfigure_to_a_meter_of_another_connection_aborts(hass: HomeAssistant) -> None:
    set_meter(hass)
    entry = create_entry(hass)
    hass.states.async_set("sensor.neighbour", "500", POWER)
    MockConfigEntry(domain=DOMAIN, unique_id="sensor.neighbour").add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], CONNECTION_1X25)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**meter_input(), "power_import_l1": "sensor.neighbour"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data["power_import_l1"] == "sensor.import_l1"


async def test_reconfigure_keeps_devices_on_existing_phases(hass: HomeAssistant) -> None:
    set_meter(hass, 3)
    entry = create_entry(
        hass,
        3,
        subentries_data=[
            ConfigSubentryData(
                data={CONF_DEVICE_PHASES: ["1", "2", "3"]},
                subentry_type=SUBENTRY_CHARGER,
                title="Laadpaal",
                unique_id=None,
            )
        ],
    )
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], CONNECTION_1X25)
    assert_errors(result, {CONF_CONNECTION_TYPE: "devices_on_missing_phases"})

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**CONNECTION_1X25, CONF_CONNECTION_TYPE: "custom"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PHASES: "1", CONF_FUSE_CURRENT: 40}
    )
    assert_errors(result, {CONF_PHASES: "devices_on_missing_phases"})

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PHASES: "3", CONF_FUSE_CURRENT: 40}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input(3))
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_FUSE_CURRENT] == 40.0


async def test_reconfigure_warns_about_a_slow_meter(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    set_meter(hass)
    entry = create_entry(hass)
    freezer.tick(timedelta(seconds=60))
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], CONNECTION_1X25)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["step_id"] == "slow_meter"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["reason"] == "reconfigure_successful"


async def test_reconfigure_of_a_loaded_entry_leaves_the_reload_to_its_listener(
    hass: HomeAssistant,
) -> None:
    set_meter(hass)
    entry = create_entry(hass)
    reloads: list[str] = []

    async def listener(hass: HomeAssistant, changed: Any) -> None:
        reloads.append(changed.title)

    entry.add_update_listener(listener)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**CONNECTION_1X25, CONF_NAME: "Nieuw"}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], meter_input())
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert reloads == ["Nieuw"]


async def test_options_flow(hass: HomeAssistant) -> None:
    entry = create_entry(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["step_id"] == "init"
    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(result["flow_id"], {CONF_STALE_AFTER: 0})
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_STALE_AFTER: 20}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_STALE_AFTER: 20.0}


def keys_of(tree: Any, path: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return {path}
    return {leaf for key, value in tree.items() for leaf in keys_of(value, f"{path}/{key}")}


def test_translations_are_complete() -> None:
    english = json.loads((COMPONENT / "translations" / "en.json").read_text())
    dutch = json.loads((COMPONENT / "translations" / "nl.json").read_text())
    for section in FLOW_SECTIONS:
        assert english[section] == STRINGS[section], section
        assert keys_of(dutch[section]) == keys_of(STRINGS[section]), section
        assert dutch[section] != STRINGS[section], section


def test_every_form_field_is_labelled() -> None:
    steps = STRINGS["config"]["step"]
    for phase in (1, 2, 3):
        for key in ("power_import", "power_export", "voltage", "current"):
            assert f"{key}_l{phase}" in steps["meter_per_phase"]["data"]
            assert f"{key}_l{phase}" in steps["meter_per_phase"]["data_description"]
    schemas: dict[str, probatio.Schema] = {
        "user": CONNECTION_SCHEMA,
        "reconfigure": CONNECTION_SCHEMA,
        "custom_connection": CUSTOM_CONNECTION_SCHEMA,
        "meter_total": TOTAL_METER_SCHEMA,
    }
    for step_id, schema in schemas.items():
        assert {str(key) for key in schema.schema} == set(steps[step_id]["data"]), step_id
