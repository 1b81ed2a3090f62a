"""Fixtures for the integration's runtime tests: a P1 meter, real target entities, entries.

Targets are real `input_number`/`input_boolean`/`input_select` entities, so a test sees
the state the guard's service calls produce, not just that a call was made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.netbewust.const import (
    CONF_BUILDING_TYPE,
    CONF_CAN_SWITCH_PHASES,
    CONF_CIRCUIT,
    CONF_CIRCUIT_MAX_CURRENT,
    CONF_CONNECTION_TYPE,
    CONF_CURRENT_ENTITY,
    CONF_DEVICE_PHASES,
    CONF_INDOOR_TEMPERATURE_ENTITY,
    CONF_INSULATION_ERA,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_CURRENT,
    CONF_MAX_DISCHARGE_POWER,
    CONF_METER_MODE,
    CONF_MIN_CURRENT,
    CONF_MIN_OFF_TIME,
    CONF_MIN_ON_TIME,
    CONF_MODE_ENTITY,
    CONF_OUTDOOR_TEMPERATURE_ENTITY,
    CONF_PHASE_SWITCH_ENTITY,
    CONF_POWER_ENTITY,
    CONF_POWER_LIMIT_ENTITY,
    CONF_PRIORITY,
    CONF_RATED_POWER,
    CONF_SAFETY_MARGIN,
    CONF_SETPOINT_ENTITY,
    CONF_SG_READY_SWITCH_1,
    CONF_SG_READY_SWITCH_2,
    CONF_SOC_ENTITY,
    CONF_STALE_AFTER,
    CONF_STATUS_ENTITY,
    CONF_SWITCH_ENTITY,
    DOMAIN,
    METER_MODE_PER_PHASE,
    NO_CIRCUIT,
    SUBENTRY_BATTERY,
    SUBENTRY_CHARGER,
    SUBENTRY_CIRCUIT,
    SUBENTRY_HEAT_PUMP,
    SUBENTRY_LOAD,
    SUBENTRY_PV,
)
from custom_components.netbewust.core.limits import LimitSource
from custom_components.netbewust.core.model import (
    DeviceState,
    GuardConfig,
    GuardDecision,
    GuardState,
    Limitation,
    MeterReading,
    Setpoint,
)
from tests.clock import clock_now

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from datetime import datetime

    from homeassistant.core import HomeAssistant

CHARGER_ID = "sub_charger"
BATTERY_ID = "sub_battery"
HEAT_PUMP_ID = "sub_heat_pump"
PV_ID = "sub_pv"
LOAD_ID = "sub_load"
CIRCUIT_ID = "sub_circuit"

CHARGER_CURRENT = "input_number.charger_current"
CHARGER_THREE_PHASE = "input_boolean.charger_three_phase"
CHARGER_STATUS = "sensor.charger_status"
CHARGER_POWER = "sensor.charger_power"
BATTERY_SETPOINT = "input_number.battery_setpoint"
BATTERY_MODE = "input_select.battery_mode"
BATTERY_SOC = "sensor.battery_soc"
HP_SG1 = "input_boolean.heat_pump_sg_ready_1"
HP_SG2 = "input_boolean.heat_pump_sg_ready_2"
PV_LIMIT = "input_number.pv_power_limit"
LOAD_SWITCH = "input_boolean.boiler"

IMPORT_L1 = "sensor.p1_power_import_l1"
EXPORT_L1 = "sensor.p1_power_export_l1"
VOLTAGE_L1 = "sensor.p1_voltage_l1"

MAIN_DATA: dict[str, Any] = {
    CONF_CONNECTION_TYPE: "1x25",
    CONF_SAFETY_MARGIN: 1.0,
    CONF_STALE_AFTER: 10.0,
    CONF_METER_MODE: METER_MODE_PER_PHASE,
    "power_import_l1": IMPORT_L1,
    "power_export_l1": EXPORT_L1,
    "voltage_l1": VOLTAGE_L1,
}


def subentry(
    subentry_id: str, subentry_type: str, title: str, data: dict[str, Any]
) -> ConfigSubentryDataWithId:
    return ConfigSubentryDataWithId(
        subentry_id=subentry_id,
        subentry_type=subentry_type,
        title=title,
        data=data,
        unique_id=None,
    )


CHARGER = subentry(
    CHARGER_ID,
    SUBENTRY_CHARGER,
    "Jan's car",
    {
        CONF_PRIORITY: 3,
        CONF_DEVICE_PHASES: ["1"],
        CONF_CIRCUIT: NO_CIRCUIT,
        CONF_CURRENT_ENTITY: CHARGER_CURRENT,
        CONF_STATUS_ENTITY: CHARGER_STATUS,
        CONF_POWER_ENTITY: CHARGER_POWER,
        CONF_PHASE_SWITCH_ENTITY: CHARGER_THREE_PHASE,
        CONF_MIN_CURRENT: 6,
        CONF_MAX_CURRENT: 16,
        CONF_CAN_SWITCH_PHASES: False,
    },
)
BATTERY = subentry(
    BATTERY_ID,
    SUBENTRY_BATTERY,
    "Home battery",
    {
        CONF_PRIORITY: 1,
        CONF_DEVICE_PHASES: ["1"],
        CONF_SETPOINT_ENTITY: BATTERY_SETPOINT,
        CONF_MODE_ENTITY: BATTERY_MODE,
        CONF_SOC_ENTITY: BATTERY_SOC,
        CONF_MAX_CHARGE_POWER: 2500,
        CONF_MAX_DISCHARGE_POWER: 2500,
    },
)
HEAT_PUMP = subentry(
    HEAT_PUMP_ID,
    SUBENTRY_HEAT_PUMP,
    "Heat pump",
    {
        CONF_PRIORITY: 2,
        CONF_DEVICE_PHASES: ["1"],
        CONF_SG_READY_SWITCH_1: HP_SG1,
        CONF_SG_READY_SWITCH_2: HP_SG2,
        CONF_RATED_POWER: 2000,
    },
)
INDOOR = "sensor.living_room_temperature"
OUTDOOR = "sensor.outdoor_temperature"
CELSIUS = {"device_class": "temperature", "unit_of_measurement": "°C"}


def thermal_pump_subentry(**extra: Any) -> ConfigSubentryDataWithId:
    """HEAT_PUMP planned on the thermal model of a terraced 2006-on home, no minimum run."""
    return subentry(
        HEAT_PUMP_ID,
        SUBENTRY_HEAT_PUMP,
        "Heat pump",
        {
            **HEAT_PUMP["data"],
            CONF_MIN_ON_TIME: 0,
            CONF_MIN_OFF_TIME: 0,
            CONF_INDOOR_TEMPERATURE_ENTITY: INDOOR,
            CONF_OUTDOOR_TEMPERATURE_ENTITY: OUTDOOR,
            CONF_BUILDING_TYPE: "terraced",
            CONF_INSULATION_ERA: "2006_on",
            **extra,
        },
    )


PV = subentry(
    PV_ID,
    SUBENTRY_PV,
    "Solar panels",
    {
        CONF_PRIORITY: 4,
        CONF_DEVICE_PHASES: ["1"],
        CONF_POWER_LIMIT_ENTITY: PV_LIMIT,
        CONF_RATED_POWER: 4000,
    },
)
LOAD = subentry(
    LOAD_ID,
    SUBENTRY_LOAD,
    "Boiler",
    {
        CONF_PRIORITY: 5,
        CONF_DEVICE_PHASES: ["1"],
        CONF_SWITCH_ENTITY: LOAD_SWITCH,
        CONF_RATED_POWER: 2000,
    },
)
CIRCUIT = subentry(
    CIRCUIT_ID, SUBENTRY_CIRCUIT, "Garage", {CONF_CIRCUIT_MAX_CURRENT: 16, "parent_circuit": "none"}
)
ALL_DEVICES = (CHARGER, BATTERY, HEAT_PUMP, PV, LOAD)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load the integration from custom_components/."""


@pytest.fixture
async def targets(hass: HomeAssistant) -> None:
    """The devices' own entities, as a charger or battery integration would provide them."""
    assert await async_setup_component(
        hass,
        "input_number",
        {
            "input_number": {
                "charger_current": {"min": 0, "max": 32, "step": 1, "initial": 16},
                "battery_setpoint": {"min": -5000, "max": 5000, "step": 1, "initial": 0},
                "pv_power_limit": {"min": 0, "max": 4000, "step": 1, "initial": 4000},
            }
        },
    )
    assert await async_setup_component(
        hass,
        "input_boolean",
        {
            "input_boolean": {
                "charger_three_phase": {"initial": False},
                "heat_pump_sg_ready_1": {"initial": False},
                "heat_pump_sg_ready_2": {"initial": False},
                "boiler": {"initial": True},
            }
        },
    )
    assert await async_setup_component(
        hass,
        "input_select",
        {
            "input_select": {
                "battery_mode": {
                    "options": ["Self consumption", "Manual control"],
                    "initial": "Self consumption",
                }
            }
        },
    )
    hass.states.async_set(CHARGER_STATUS, "charging")
    hass.states.async_set(CHARGER_POWER, "3680", {"unit_of_measurement": "W"})
    hass.states.async_set(BATTERY_SOC, "50", {"unit_of_measurement": "%"})
    await hass.async_block_till_done()


def set_meter(
    hass: HomeAssistant,
    import_w: float | str,
    export_w: float | str = 0,
    voltage_v: float | str = 230,
    unit: str = "W",
) -> None:
    """A P1 telegram: every meter entity updates at once, as DSMR does."""
    hass.states.async_set(VOLTAGE_L1, str(voltage_v), {"unit_of_measurement": "V"})
    hass.states.async_set(EXPORT_L1, str(export_w), {"unit_of_measurement": unit})
    hass.states.async_set(IMPORT_L1, str(import_w), {"unit_of_measurement": unit})


@pytest.fixture
def make_entry(hass: HomeAssistant) -> Callable[..., MockConfigEntry]:
    def _make(
        subentries: tuple[ConfigSubentryDataWithId, ...] = ALL_DEVICES,
        data: dict[str, Any] | None = None,
    ) -> MockConfigEntry:
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="Home",
            data=data if data is not None else MAIN_DATA,
            subentries_data=subentries,
        )
        entry.add_to_hass(hass)
        return entry

    return _make


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    targets: None,
    make_entry: Callable[..., MockConfigEntry],
    scripted_guard: list[ScriptedGuard],
) -> tuple[MockConfigEntry, ScriptedGuard]:
    """The default entry, set up with its targets; its scripted guard."""
    entry = make_entry()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry, scripted_guard[-1]


@pytest.fixture
async def no_setup(hass: HomeAssistant) -> AsyncIterator[None]:
    """For flow tests (`pytestmark = pytest.mark.usefixtures("no_setup")`): the flow is
    under test, not the runtime. A reload the flow scheduled runs before the patch ends:
    otherwise the real runtime starts during teardown and reaches for the internet."""
    with (
        patch("custom_components.netbewust.async_setup_entry", return_value=True, create=True),
        patch("custom_components.netbewust.async_unload_entry", return_value=True, create=True),
    ):
        yield
        await hass.async_block_till_done()


def state_value(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, f"{entity_id} has no state"
    return state.state


class ScriptedGuard:
    """Stands in for the engine where a test checks the wiring, not the decisions.

    `decide` maps each reading to a decision; `tick_result` is what the next tick returns.
    """

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self.readings: list[MeterReading] = []
        self.device_states: list[Mapping[str, DeviceState]] = []
        self.decide: Callable[[MeterReading], GuardDecision] = lambda reading: decision(
            timestamp=reading.timestamp
        )
        self.tick_result: GuardDecision | None = None
        self.ticks: list[datetime] = []
        self.emergency: list[bool] = []
        self.paused: list[bool] = []
        self.charge_now: list[tuple[str, bool]] = []
        self.adopted: list[Mapping[str, Setpoint]] = []

    def adopt(self, setpoints: Mapping[str, Setpoint], now: datetime) -> None:
        self.adopted.append(setpoints)

    def on_meter(self, reading: MeterReading, devices: Mapping[str, DeviceState]) -> GuardDecision:
        self.readings.append(reading)
        self.device_states.append(devices)
        return self.decide(reading)

    def on_tick(self, now: datetime) -> GuardDecision | None:
        self.ticks.append(now)
        result, self.tick_result = self.tick_result, None
        return result

    def set_emergency(self, active: bool) -> None:
        self.emergency.append(active)

    def set_optimisation_paused(self, paused: bool) -> None:
        self.paused.append(paused)

    def set_charge_now(self, device_id: str, enabled: bool) -> None:
        self.charge_now.append((device_id, enabled))


def decision(
    setpoints: Mapping[str, Setpoint] | None = None,
    *,
    changed: frozenset[str] | None = None,
    state: GuardState = GuardState.NORMAL,
    current_a: tuple[float, ...] = (10.0,),
    limit_a: tuple[float, ...] = (24.0,),
    source: LimitSource = LimitSource.FUSE,
    limitations: tuple[Limitation, ...] = (),
    unresolved_overload: bool = False,
    timestamp: datetime | None = None,
) -> GuardDecision:
    setpoints = setpoints or {}
    return GuardDecision(
        timestamp=timestamp or clock_now(),
        state=state,
        setpoints=setpoints,
        changed=frozenset(setpoints) if changed is None else changed,
        phase_current_a=current_a,
        phase_limit_a=limit_a,
        limit_source=source,
        limitations=limitations,
        unresolved_overload=unresolved_overload,
    )


@pytest.fixture
def scripted_guard(monkeypatch: pytest.MonkeyPatch) -> list[ScriptedGuard]:
    """Every guard the runtime creates, newest last."""
    created: list[ScriptedGuard] = []

    def factory(config: GuardConfig) -> ScriptedGuard:
        guard = ScriptedGuard(config)
        created.append(guard)
        return guard

    monkeypatch.setattr("custom_components.netbewust.guard.runtime.Guard", factory)
    return created
