"""The adapters on their own: subentries to specs, states to readings, setpoints to calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import State

from custom_components.netbewust.const import (
    CONF_METER_MODE,
    CONF_POWER_EXPORT_TOTAL,
    CONF_POWER_IMPORT_TOTAL,
    CONF_QUARTER_HOUR_DEMAND,
    METER_MODE_TOTAL,
)
from custom_components.netbewust.core.model import (
    BatterySetpoint,
    ChargerSetpoint,
    ChargerState,
    HeatPumpControl,
    HeatPumpSetpoint,
    HeatPumpSpec,
    PvSetpoint,
)
from custom_components.netbewust.guard.actuators import (
    ActuatorError,
    commands_for,
    present_setpoint,
)
from custom_components.netbewust.guard.devices import (
    DeviceBinding,
    DeviceConfigError,
    bindings_from_subentries,
    charger_state_from_text,
    phases_from_state,
)
from custom_components.netbewust.guard.entry_config import EntryConfigError, entry_config
from custom_components.netbewust.guard.meter import meter_entities_from_data, read_meter
from custom_components.netbewust.guard.pace import MeterPace
from custom_components.netbewust.guard.states import Rejections

from .conftest import BATTERY, CHARGER, HEAT_PUMP, MAIN_DATA, PV

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def getter(*states: State) -> Any:
    by_id = {state.entity_id: state for state in states}
    return by_id.get


def as_subentry(data: Any) -> ConfigSubentry:
    return ConfigSubentry(
        data=MappingProxyType(data["data"]),
        subentry_id=data["subentry_id"],
        subentry_type=data["subentry_type"],
        title=data["title"],
        unique_id=None,
    )


def binding_of(data: Any, **changes: Any) -> DeviceBinding:
    raw = {**data, "data": {**data["data"], **changes}}
    (binding,) = bindings_from_subentries([as_subentry(raw)])
    return binding


def test_total_only_meter_with_quarter_hour_demand() -> None:
    data = {
        CONF_METER_MODE: METER_MODE_TOTAL,
        CONF_POWER_IMPORT_TOTAL: "sensor.import",
        CONF_POWER_EXPORT_TOTAL: "sensor.export",
        CONF_QUARTER_HOUR_DEMAND: "sensor.demand",
    }
    entities = meter_entities_from_data(data, phases=3)
    assert entities.phases == ()
    assert entities.pace_entity == "sensor.import"
    kw = {"unit_of_measurement": "kW"}
    reading = read_meter(
        getter(
            State("sensor.import", "3.2", kw),
            State("sensor.export", "0.2", kw),
            State("sensor.demand", "2.5", kw),
        ),
        entities,
        NOW,
        Rejections(),
    )
    assert reading.total_power_w == pytest.approx(3000.0)
    assert reading.quarter_hour_average_w == pytest.approx(2500.0)
    assert reading.phases == ()


def test_per_phase_current_only_meter_and_implausible_voltage() -> None:
    data = {"current_l1": "sensor.i1", "voltage_l1": "sensor.u1"}
    entities = meter_entities_from_data(data, phases=1)
    rejections = Rejections()
    reading = read_meter(
        getter(
            State("sensor.i1", "12", {"unit_of_measurement": "A"}),
            State("sensor.u1", "23000", {"unit_of_measurement": "V"}),
        ),
        entities,
        NOW,
        rejections,
    )
    assert reading.phases[0].current_a == 12.0
    assert reading.phases[0].voltage_v is None
    assert rejections.by_reason == {"out_of_range": 1}
    assert reading.total_power_w is None


def test_subentries_become_specs_with_their_entities() -> None:
    heat_pump = binding_of(HEAT_PUMP, min_on_time=20)
    assert isinstance(heat_pump.spec, HeatPumpSpec)
    assert heat_pump.spec.control is HeatPumpControl.SG_READY
    assert heat_pump.spec.min_on_s == 1200
    # A power-limit number is preferred over SG-Ready switching.
    limited = binding_of(HEAT_PUMP, power_limit_entity="number.hp_limit")
    assert isinstance(limited.spec, HeatPumpSpec)
    assert limited.spec.control is HeatPumpControl.POWER_LIMIT
    charger = binding_of(CHARGER, device_phases=["3", "1", "2"])
    assert charger.spec.phases == (1, 2, 3)


@pytest.mark.parametrize(
    ("source", "changes", "problem"),
    [
        (CHARGER, {"current_entity": None}, "max-current entity"),
        (CHARGER, {"device_phases": ["4"]}, "bad phases"),
        (CHARGER, {"device_phases": "x"}, "bad phases"),
        (CHARGER, {"priority": "first"}, "priority"),
        (CHARGER, {"max_current": -1}, "max_current"),
        (BATTERY, {"setpoint_entity": None, "mode_entity": None}, "setpoint or mode"),
        (BATTERY, {"max_charge_power": True}, "max_charge_power"),
        (HEAT_PUMP, {"sg_ready_switch_1": None}, "SG-Ready"),
        (PV, {"power_limit_entity": None}, "limit or a switch"),
        (PV, {"power_limit_entity": 5}, "not an entity id"),
    ],
)
def test_bad_subentry_data_names_the_device(
    source: Any, changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(DeviceConfigError, match=problem) as error:
        binding_of(source, **changes)
    assert error.value.title == source["title"]


def test_entry_config_rejects_an_impossible_connection() -> None:
    with pytest.raises(EntryConfigError):
        entry_config({**MAIN_DATA, "safety_margin": 30}, [])
    with pytest.raises(EntryConfigError):
        entry_config({**MAIN_DATA, "peak_mode": "weekly"}, [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C", ChargerState.C),
        ("b", ChargerState.B),
        ("Charging", ChargerState.C),
        ("not connected", ChargerState.A),
        ("error", ChargerState.F),
        ("something else", None),
    ],
)
def test_charger_status_text(text: str, expected: ChargerState | None) -> None:
    assert charger_state_from_text(text) is expected


def test_phase_switch_states() -> None:
    assert phases_from_state("on", "switch") == 3
    assert phases_from_state("off", "input_boolean") == 1
    assert phases_from_state("3 phases", "select") == 3
    assert phases_from_state("1-phase", "select") == 1
    assert phases_from_state("auto", "select") is None


def test_kilowatt_number_receives_kilowatts_and_unchanged_values_are_skipped() -> None:
    pv = binding_of(PV, power_limit_entity="number.pv_limit")
    kw_number = State("number.pv_limit", "4.0", {"unit_of_measurement": "kW", "max": 4})
    (command,) = commands_for(getter(kw_number), pv, PvSetpoint(power_limit_w=1500))
    assert (command.domain, command.service, command.data) == (
        "number",
        "set_value",
        {"value": 1.5},
    )
    assert commands_for(getter(kw_number), pv, PvSetpoint(power_limit_w=None)) == ()


def test_number_with_a_foreign_unit_is_refused() -> None:
    pv = binding_of(PV, power_limit_entity="number.pv_limit")
    percent = State("number.pv_limit", "100", {"unit_of_measurement": "%"})
    with pytest.raises(ActuatorError, match="unit"):
        commands_for(getter(percent), pv, PvSetpoint(power_limit_w=1000))


def test_pv_with_only_a_switch_goes_off_under_any_cap() -> None:
    pv = binding_of(PV, power_limit_entity=None, switch_entity="switch.inverter")
    on = State("switch.inverter", "on")
    (command,) = commands_for(getter(on), pv, PvSetpoint(power_limit_w=2000))
    assert (command.service, command.entity_id) == ("turn_off", "switch.inverter")
    assert commands_for(getter(on), pv, PvSetpoint(power_limit_w=None)) == ()


def test_battery_mode_only_select_picks_charge_discharge_and_idle() -> None:
    battery = binding_of(BATTERY, setpoint_entity=None, mode_entity="select.mode")
    options = ["Auto", "Force charge", "Force discharge", "Standby"]
    mode = State("select.mode", "Auto", {"options": options})
    picks = [
        commands_for(getter(mode), battery, BatterySetpoint(power_w=power))[0].data["option"]
        for power in (1000, -1000, 0)
    ]
    assert picks == ["Force charge", "Force discharge", "Standby"]
    assert commands_for(getter(mode), battery, BatterySetpoint(power_w=None)) == ()


def test_battery_select_without_a_fitting_option_is_an_error() -> None:
    battery = binding_of(BATTERY, setpoint_entity=None, mode_entity="select.mode")
    mode = State("select.mode", "A", {"options": ["A", "B"]})
    with pytest.raises(ActuatorError, match="no option"):
        commands_for(getter(mode), battery, BatterySetpoint(power_w=500))


def test_heat_pump_power_limit_number() -> None:
    heat_pump = binding_of(HEAT_PUMP, power_limit_entity="number.hp_limit")
    number = State("number.hp_limit", "2000", {"unit_of_measurement": "W"})
    (limited,) = commands_for(getter(number), heat_pump, HeatPumpSetpoint(True, 450))
    assert limited.data == {"value": 450}
    (off,) = commands_for(getter(number), heat_pump, HeatPumpSetpoint(on=False))
    assert off.data == {"value": 0.0}


def test_charger_phase_select_and_wrong_entity_domain() -> None:
    charger = binding_of(CHARGER, phase_switch_entity="select.phases", can_switch_phases=True)
    phases = State("select.phases", "1 phase", {"options": ["1 phase", "3 phases"]})
    current = State("input_number.charger_current", "16", {"min": 6, "max": 16})
    commands = commands_for(getter(phases, current), charger, ChargerSetpoint(0, 3))
    assert [command.data for command in commands] == [{"option": "3 phases"}, {"value": 6}]
    # The charger's number stops at 6 A: it gets 6 A, and the runtime is told why.
    assert commands[1].clamped_from == 0
    fixed = binding_of(CHARGER, phase_switch_entity="select.phases")
    (only_current,) = commands_for(getter(phases, current), fixed, ChargerSetpoint(10, 3))
    assert only_current.data == {"value": 10}  # a fixed phase switch is never written
    wrong = binding_of(CHARGER, current_entity="switch.charger")
    with pytest.raises(ActuatorError, match="not a number"):
        commands_for(getter(), wrong, ChargerSetpoint(10, 1))


def test_meter_pace_is_the_median_of_recent_intervals() -> None:
    pace = MeterPace()
    for second in (0, 1, 2, 3, 4):
        pace.record(NOW + timedelta(seconds=second))
    judged: list[float | None] = [pace.interval_s]  # four intervals are too few to judge
    pace.record(NOW + timedelta(seconds=35))  # one late telegram
    judged.append(pace.interval_s)
    for step in range(1, 10):
        pace.record(NOW + timedelta(seconds=35 + 30 * step))
    judged.append(pace.interval_s)
    assert judged == [None, 1.0, 30.0]


def test_present_setpoint_reads_back_what_a_battery_or_charger_was_told() -> None:
    battery = binding_of(BATTERY, setpoint_entity="number.bat", mode_entity="select.mode")
    options = {"options": ["Self consumption", "Manual control", "Standby"]}
    kw = {"unit_of_measurement": "kW"}
    manual = State("select.mode", "Manual control", options)
    told = [
        present_setpoint(getter(State("select.mode", mode, options), number), battery)
        for mode, number in (
            ("Manual control", State("number.bat", "-2.5", kw)),
            ("Self consumption", State("number.bat", "-2.5", kw)),
            ("Standby", State("number.bat", "-2.5", kw)),
            ("Manual control", State("number.bat", "unknown", kw)),
        )
    ]
    assert told == [BatterySetpoint(-2500.0), BatterySetpoint(None), BatterySetpoint(0.0), None]
    # A foreign unit or a missing mode tells nothing.
    percent = State("number.bat", "50", {"unit_of_measurement": "%"})
    assert present_setpoint(getter(manual, percent), battery) is None
    assert present_setpoint(getter(State("number.bat", "-2500")), battery) is None
    charger = binding_of(CHARGER, phase_switch_entity="select.phases", can_switch_phases=True)
    phases = State("select.phases", "3 phases", {"options": ["1 phase", "3 phases"]})
    current = State("input_number.charger_current", "10", {"unit_of_measurement": "A"})
    assert present_setpoint(getter(phases, current), charger) == ChargerSetpoint(10.0, 3)
    assert present_setpoint(getter(current), charger) is None  # phases unknown
    assert present_setpoint(getter(phases), binding_of(HEAT_PUMP)) is None  # not read back
