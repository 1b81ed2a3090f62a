"""Subentry flows: the devices the guard controls and the sub-circuits they sit behind.

Every type has a `user` and a `reconfigure` step that share one form and one validation.
The subentry title is the device's name; everything else is stored in `data` under the
const.py keys (numbers in W, A, % and minutes; phases as strings "1".."3").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, override

import probatio
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import (
    CONF_NAME,
    PERCENTAGE,
    UnitOfElectricCurrent,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfTime,
)
from homeassistant.core import split_entity_id
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    EntityWithDeviceFilterSelectorConfig,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from ..const import (
    CHARGER_CURRENT_RANGE_A,
    CIRCUIT_CURRENT_RANGE_A,
    CONF_BATTERY_CAPACITY,
    CONF_BOILER_EFFICIENCY,
    CONF_BOILER_POWER,
    CONF_BUILDING_TYPE,
    CONF_CAN_SWITCH_PHASES,
    CONF_CIRCUIT,
    CONF_CIRCUIT_MAX_CURRENT,
    CONF_CURRENT_ENTITY,
    CONF_DEVICE_PHASES,
    CONF_DHW_ENTITY,
    CONF_GAS_PRICE,
    CONF_HEAT_PUMP_MODULATION,
    CONF_HEAT_PUMP_TYPE,
    CONF_HYBRID_POWER_CAP,
    CONF_INDOOR_TEMPERATURE_ENTITY,
    CONF_INSULATION_ERA,
    CONF_LIMITED_POWER,
    CONF_MAX_CHARGE_POWER,
    CONF_MAX_CURRENT,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MAX_SWITCHES_PER_DAY,
    CONF_MIN_CURRENT,
    CONF_MIN_OFF_TIME,
    CONF_MIN_ON_TIME,
    CONF_MIN_SOC,
    CONF_MODE_ENTITY,
    CONF_OUTDOOR_TEMPERATURE_ENTITY,
    CONF_PARENT_CIRCUIT,
    CONF_PHASE_SWITCH_ENTITY,
    CONF_PHASES,
    CONF_POWER_ENTITY,
    CONF_POWER_LIMIT_ENTITY,
    CONF_PRIORITY,
    CONF_RATED_POWER,
    CONF_SAFE_CURRENT,
    CONF_SETPOINT_ENTITY,
    CONF_SG_READY_SWITCH_1,
    CONF_SG_READY_SWITCH_2,
    CONF_SOC_ENTITY,
    CONF_STATUS_ENTITY,
    CONF_SWITCH_ENTITY,
    DEFAULT_LIMITED_POWER_W,
    DEFAULT_MAX_SWITCHES_PER_DAY,
    DEFAULT_MIN_ON_OFF_MINUTES,
    DEFAULT_MIN_SOC_PCT,
    DEVICE_SUBENTRY_TYPES,
    HEAT_PUMP_MODULATIONS,
    HEAT_PUMP_TYPES,
    NO_CIRCUIT,
    SUBENTRY_BATTERY,
    SUBENTRY_CHARGER,
    SUBENTRY_CIRCUIT,
    SUBENTRY_HEAT_PUMP,
    SUBENTRY_LOAD,
    SUBENTRY_PV,
)
from ..core.guard.safe_state import safe_current_allowed
from ..core.model import DEFAULT_CHARGER_MAX_CURRENT_A
from ..core.thermal import BuildingType, InsulationEra
from ..guard.circuit_tree import creates_cycle
from .selectors import dropdown, entity_picker, number_box
from .validation import (
    CURRENT_NUMBER,
    MODE_SELECT,
    ON_OFF_SWITCH,
    PHASE_SWITCH,
    POWER_LIMIT_NUMBER,
    POWER_NUMBER,
    POWER_SENSOR,
    SOC_SENSOR,
    STATUS_SENSOR,
    TEMPERATURE_SENSOR,
    ControlRule,
    SensorRule,
    control_error,
    sensor_error,
)

# Read, never written: neither counts as an entity the device controls.
WEATHER_ENTITY = ControlRule(("weather",))
HOT_WATER_STATUS = ControlRule(("binary_sensor", "switch", "input_boolean"))

if TYPE_CHECKING:
    from collections.abc import Mapping

# A boiler's efficiency on the upper heating value (condensing boilers reach about 98 %).
BOILER_EFFICIENCY_RANGE_PCT = (50.0, 110.0)
# Numbers the flow stores as whole numbers; the selectors deliver floats.
INTEGER_KEYS = frozenset(
    {CONF_PRIORITY, CONF_MAX_SWITCHES_PER_DAY, CONF_MIN_ON_TIME, CONF_MIN_OFF_TIME}
)


def _circuit_selector(circuits: Mapping[str, str]) -> SelectSelector:
    options = [SelectOptionDict(value=NO_CIRCUIT, label=NO_CIRCUIT)]
    options += [SelectOptionDict(value=cid, label=title) for cid, title in circuits.items()]
    return dropdown(options, "circuit")


def next_priority(entry: ConfigEntry) -> int:
    """After the current last device, so new devices queue behind existing ones."""
    priorities = [
        int(subentry.data[CONF_PRIORITY])
        for subentry in entry.subentries.values()
        if subentry.subentry_type in DEVICE_SUBENTRY_TYPES and CONF_PRIORITY in subentry.data
    ]
    return max(priorities, default=0) + 1


def charger_current_errors(data: Mapping[str, Any]) -> dict[str, str]:
    """A charger's minimum, maximum and safe current, as both charger flows check them."""
    errors: dict[str, str] = {}
    low, high = CHARGER_CURRENT_RANGE_A
    for key in (CONF_MIN_CURRENT, CONF_MAX_CURRENT):
        if key not in data:
            errors[key] = "value_required"
        elif not low <= data[key] <= high:
            errors[key] = "current_out_of_range"
    if not errors and data[CONF_MAX_CURRENT] < data[CONF_MIN_CURRENT]:
        errors[CONF_MAX_CURRENT] = "max_below_min"
    safe = data.get(CONF_SAFE_CURRENT)
    if not errors and safe is not None:
        allowed = safe_current_allowed(safe, data[CONF_MIN_CURRENT], data[CONF_MAX_CURRENT])
        if not allowed:
            errors[CONF_SAFE_CURRENT] = "safe_current_out_of_range"
    return errors


def circuit_parents(entry: ConfigEntry) -> dict[str, str | None]:
    """Every circuit subentry id with its parent circuit id."""
    return {
        subentry_id: subentry.data.get(CONF_PARENT_CIRCUIT)
        for subentry_id, subentry in entry.subentries.items()
        if subentry.subentry_type == SUBENTRY_CIRCUIT
    }


def _clean(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Drop empty optional fields and `none` choices; whole numbers become ints."""
    data: dict[str, Any] = {}
    for key, value in user_input.items():
        if value is None or value in ("", NO_CIRCUIT):
            continue
        data[key] = int(value) if key in INTEGER_KEYS else value
    return data


class _SubentryFlow(ConfigSubentryFlow, ABC):
    """One form for adding and reconfiguring; subclasses give its fields and checks."""

    # Entity fields and what each must be.
    entity_rules: ClassVar[Mapping[str, SensorRule | ControlRule]] = {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        return self._async_step_form("user", user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        return self._async_step_form("reconfigure", user_input)

    @property
    def _own_id(self) -> str | None:
        return self._reconfigure_subentry_id if self.source == SOURCE_RECONFIGURE else None

    def _async_step_form(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        entry = self._get_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _clean(user_input)
            title = str(data.pop(CONF_NAME)).strip()
            errors = self._entity_errors(entry, data)
            for key, error in self._errors(entry, data).items():
                errors.setdefault(key, error)
            if not title:
                errors[CONF_NAME] = "name_required"
            if not errors:
                if self.source == SOURCE_RECONFIGURE:
                    return self._async_save_reconfigured(entry, title, data)
                return self.async_create_entry(title=title, data=data)
            suggested: Mapping[str, Any] = user_input
        elif self.source == SOURCE_RECONFIGURE:
            subentry = self._get_reconfigure_subentry()
            suggested = {CONF_NAME: subentry.title, **subentry.data}
        else:
            suggested = self._defaults(entry)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(self._schema(entry), suggested),
            errors=errors,
        )

    def _async_save_reconfigured(
        self, entry: ConfigEntry, title: str, data: dict[str, Any]
    ) -> SubentryFlowResult:
        subentry = self._get_reconfigure_subentry()
        if entry.update_listeners:
            # The integration's update listener reloads the entry on any change.
            return self.async_update_and_abort(entry, subentry, title=title, data=data)
        return self.async_update_reload_and_abort(entry, subentry, title=title, data=data)

    def _entity_errors(self, entry: ConfigEntry, data: Mapping[str, Any]) -> dict[str, str]:
        """Each chosen entity exists, fits its field, and is not used twice."""
        errors: dict[str, str] = {}
        in_use = self._controlled_elsewhere(entry)
        seen: set[str] = set()
        for key, rule in self.entity_rules.items():
            if (entity_id := data.get(key)) is None:
                continue
            if entity_id in seen:
                errors[key] = "entity_used_twice"
            elif (
                isinstance(rule, ControlRule) and rule is not STATUS_SENSOR and entity_id in in_use
            ):
                errors[key] = "entity_in_use"
            elif isinstance(rule, SensorRule):
                if error := sensor_error(self.hass, entity_id, rule):
                    errors[key] = error
            elif error := control_error(self.hass, entity_id, rule):
                errors[key] = error
            seen.add(entity_id)
        return errors

    def _controlled_elsewhere(self, entry: ConfigEntry) -> set[str]:
        """Entities other devices already write to: two masters would fight."""
        controlled: set[str] = set()
        for subentry_id, subentry in entry.subentries.items():
            if subentry_id == self._own_id:
                continue
            flow = SUBENTRY_FLOWS.get(subentry.subentry_type)
            for key, rule in (flow.entity_rules if flow else {}).items():
                entity_id = subentry.data.get(key)
                if entity_id and isinstance(rule, ControlRule) and rule is not STATUS_SENSOR:
                    controlled.add(entity_id)
        return controlled

    @abstractmethod
    def _schema(self, entry: ConfigEntry) -> probatio.Schema:
        """The form, built for this entry (its phases and circuits)."""

    @abstractmethod
    def _defaults(self, entry: ConfigEntry) -> dict[str, Any]:
        """Values suggested when adding."""

    @abstractmethod
    def _errors(self, entry: ConfigEntry, data: dict[str, Any]) -> dict[str, str]:
        """Errors beyond the entity checks, keyed by field."""


class _DeviceFlow(_SubentryFlow):
    """A controllable device: its own fields, then priority, phases and circuit."""

    @abstractmethod
    def _device_fields(self) -> dict[probatio.Marker, Any]:
        """The fields particular to this kind of device."""

    def _device_defaults(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def _device_errors(self, data: dict[str, Any], phases: int) -> dict[str, str]:
        """Errors particular to this kind of device."""

    @override
    def _schema(self, entry: ConfigEntry) -> probatio.Schema:
        phases = int(entry.data[CONF_PHASES])
        fields: dict[probatio.Marker, Any] = {probatio.Required(CONF_NAME): TextSelector()}
        fields.update(self._device_fields())
        fields[probatio.Required(CONF_PRIORITY)] = number_box(minimum=0)
        fields[probatio.Required(CONF_DEVICE_PHASES)] = SelectSelector(
            SelectSelectorConfig(
                options=[str(phase) for phase in range(1, phases + 1)],
                multiple=True,
                translation_key="phase",
                mode=SelectSelectorMode.LIST,
            )
        )
        circuits = {cid: entry.subentries[cid].title for cid in circuit_parents(entry)}
        if circuits:
            fields[probatio.Optional(CONF_CIRCUIT)] = _circuit_selector(circuits)
        return probatio.Schema(fields)

    @override
    def _defaults(self, entry: ConfigEntry) -> dict[str, Any]:
        phases = int(entry.data[CONF_PHASES])
        return {
            CONF_PRIORITY: next_priority(entry),
            CONF_DEVICE_PHASES: [str(phase) for phase in range(1, phases + 1)],
            **self._device_defaults(),
        }

    @override
    def _errors(self, entry: ConfigEntry, data: dict[str, Any]) -> dict[str, str]:
        phases = int(entry.data[CONF_PHASES])
        errors: dict[str, str] = {}
        device_phases = sorted(set(data.get(CONF_DEVICE_PHASES, [])))
        data[CONF_DEVICE_PHASES] = device_phases
        if not device_phases:
            errors[CONF_DEVICE_PHASES] = "phases_required"
        elif any(int(phase) > phases for phase in device_phases):
            errors[CONF_DEVICE_PHASES] = "phase_not_on_connection"
        if CONF_CIRCUIT in data and data[CONF_CIRCUIT] not in circuit_parents(entry):
            errors[CONF_CIRCUIT] = "circuit_not_found"
        errors.update(self._device_errors(data, phases))
        return errors


def _power_not_positive(data: Mapping[str, Any], *keys: str) -> dict[str, str]:
    return {key: "power_not_positive" for key in keys if key in data and data[key] <= 0}


def _rated_power_errors(data: Mapping[str, Any]) -> dict[str, str]:
    if CONF_RATED_POWER not in data:
        return {CONF_RATED_POWER: "rated_power_required"}
    return _power_not_positive(data, CONF_RATED_POWER)


class ChargerSubentryFlow(_DeviceFlow):
    """An EV charger steered through its max-current number."""

    entity_rules: ClassVar[Mapping[str, SensorRule | ControlRule]] = {
        CONF_CURRENT_ENTITY: CURRENT_NUMBER,
        CONF_STATUS_ENTITY: STATUS_SENSOR,
        CONF_POWER_ENTITY: POWER_SENSOR,
        CONF_PHASE_SWITCH_ENTITY: PHASE_SWITCH,
    }

    @override
    def _device_fields(self) -> dict[probatio.Marker, Any]:
        amperes = UnitOfElectricCurrent.AMPERE
        return {
            probatio.Required(CONF_CURRENT_ENTITY): entity_picker("number", "input_number"),
            probatio.Optional(CONF_STATUS_ENTITY): entity_picker("sensor", "binary_sensor"),
            probatio.Optional(CONF_POWER_ENTITY): entity_picker("sensor", device_class="power"),
            probatio.Required(CONF_MIN_CURRENT): number_box(amperes),
            probatio.Required(CONF_MAX_CURRENT): number_box(amperes),
            probatio.Optional(CONF_SAFE_CURRENT): number_box(amperes, minimum=0),
            probatio.Required(CONF_CAN_SWITCH_PHASES): BooleanSelector(),
            probatio.Optional(CONF_PHASE_SWITCH_ENTITY): entity_picker(
                "select", "input_select", "switch", "input_boolean"
            ),
        }

    @override
    def _schema(self, entry: ConfigEntry) -> probatio.Schema:
        schema = super()._schema(entry)
        if int(entry.data[CONF_PHASES]) == 3:
            return schema
        # A one-phase home has no phases to switch between: the form does not ask.
        switching = {CONF_CAN_SWITCH_PHASES, CONF_PHASE_SWITCH_ENTITY}
        return probatio.Schema(
            {key: value for key, value in schema.schema.items() if str(key) not in switching}
        )

    @override
    def _device_defaults(self) -> dict[str, Any]:
        return {
            CONF_MIN_CURRENT: CHARGER_CURRENT_RANGE_A[0],
            CONF_MAX_CURRENT: DEFAULT_CHARGER_MAX_CURRENT_A,
            CONF_CAN_SWITCH_PHASES: False,
        }

    @override
    def _device_errors(self, data: dict[str, Any], phases: int) -> dict[str, str]:
        errors = charger_current_errors(data)
        if len(data[CONF_DEVICE_PHASES]) == 2:
            errors[CONF_DEVICE_PHASES] = "charger_one_or_three_phases"
        if data.get(CONF_CAN_SWITCH_PHASES):
            if phases != 3 or len(data[CONF_DEVICE_PHASES]) != 3:
                errors[CONF_CAN_SWITCH_PHASES] = "phase_switching_needs_three_phases"
            elif CONF_PHASE_SWITCH_ENTITY not in data:
                errors[CONF_PHASE_SWITCH_ENTITY] = "phase_switch_entity_required"
        return errors


class BatterySubentryFlow(_DeviceFlow):
    """A home battery steered through a power setpoint and/or an operating mode."""

    entity_rules: ClassVar[Mapping[str, SensorRule | ControlRule]] = {
        CONF_SETPOINT_ENTITY: POWER_NUMBER,
        CONF_MODE_ENTITY: MODE_SELECT,
        CONF_SOC_ENTITY: SOC_SENSOR,
        CONF_POWER_ENTITY: POWER_SENSOR,
    }

    @override
    def _device_fields(self) -> dict[probatio.Marker, Any]:
        return {
            probatio.Optional(CONF_SETPOINT_ENTITY): entity_picker("number", "input_number"),
            probatio.Optional(CONF_MODE_ENTITY): entity_picker("select", "input_select"),
            probatio.Required(CONF_SOC_ENTITY): entity_picker("sensor", device_class="battery"),
            probatio.Required(CONF_POWER_ENTITY): entity_picker("sensor", device_class="power"),
            probatio.Required(CONF_MAX_CHARGE_POWER): number_box(UnitOfPower.WATT, step=10),
            probatio.Required(CONF_MAX_DISCHARGE_POWER): number_box(UnitOfPower.WATT, step=10),
            probatio.Required(CONF_MIN_SOC): number_box(PERCENTAGE, minimum=0, maximum=100),
            # Optional: without it the guard still limits the battery, the planner skips it.
            probatio.Optional(CONF_BATTERY_CAPACITY): number_box(
                UnitOfEnergy.KILO_WATT_HOUR, step=0.1
            ),
        }

    @override
    def _device_defaults(self) -> dict[str, Any]:
        return {CONF_MIN_SOC: DEFAULT_MIN_SOC_PCT}

    @override
    def _device_errors(self, data: dict[str, Any], phases: int) -> dict[str, str]:
        errors = _power_not_positive(data, CONF_MAX_CHARGE_POWER, CONF_MAX_DISCHARGE_POWER)
        if CONF_BATTERY_CAPACITY in data and data[CONF_BATTERY_CAPACITY] <= 0:
            errors[CONF_BATTERY_CAPACITY] = "capacity_not_positive"
        if CONF_SETPOINT_ENTITY not in data and CONF_MODE_ENTITY not in data:
            errors[CONF_SETPOINT_ENTITY] = "control_entity_required"
        return errors


class HeatPumpSubentryFlow(_DeviceFlow):
    """A heat pump steered through a power-limit number or an SG-Ready switch pair.

    The optional thermal fields (an outdoor temperature, building type and insulation
    era at least) let the planner plan it on the home's thermal model (planner/thermal.py).
    """

    entity_rules: ClassVar[Mapping[str, SensorRule | ControlRule]] = {
        CONF_POWER_LIMIT_ENTITY: POWER_LIMIT_NUMBER,
        CONF_SG_READY_SWITCH_1: ON_OFF_SWITCH,
        CONF_SG_READY_SWITCH_2: ON_OFF_SWITCH,
        CONF_POWER_ENTITY: POWER_SENSOR,
        CONF_INDOOR_TEMPERATURE_ENTITY: TEMPERATURE_SENSOR,
    }

    @override
    def _device_fields(self) -> dict[probatio.Marker, Any]:
        minutes = UnitOfTime.MINUTES
        return {
            probatio.Optional(CONF_POWER_LIMIT_ENTITY): entity_picker("number", "input_number"),
            probatio.Optional(CONF_SG_READY_SWITCH_1): entity_picker("switch", "input_boolean"),
            probatio.Optional(CONF_SG_READY_SWITCH_2): entity_picker("switch", "input_boolean"),
            probatio.Optional(CONF_POWER_ENTITY): entity_picker("sensor", device_class="power"),
            # Optional to the form so it starts empty (a required number starts at 0);
            # the flow requires it.
            probatio.Optional(CONF_RATED_POWER): number_box(UnitOfPower.WATT, step=10),
            probatio.Required(CONF_LIMITED_POWER): number_box(UnitOfPower.WATT, step=10, minimum=0),
            probatio.Required(CONF_MAX_SWITCHES_PER_DAY): number_box(minimum=0, maximum=48),
            probatio.Required(CONF_MIN_ON_TIME): number_box(minutes, minimum=0, maximum=1440),
            probatio.Required(CONF_MIN_OFF_TIME): number_box(minutes, minimum=0, maximum=1440),
            probatio.Optional(CONF_INDOOR_TEMPERATURE_ENTITY): entity_picker(
                "sensor", device_class="temperature"
            ),
            probatio.Optional(CONF_OUTDOOR_TEMPERATURE_ENTITY): EntitySelector(
                EntitySelectorConfig(
                    filter=[
                        EntityWithDeviceFilterSelectorConfig(
                            domain="sensor", device_class="temperature"
                        ),
                        EntityWithDeviceFilterSelectorConfig(domain="weather"),
                    ]
                )
            ),
            probatio.Optional(CONF_BUILDING_TYPE): dropdown(
                [str(value) for value in BuildingType], "building_type"
            ),
            probatio.Optional(CONF_INSULATION_ERA): dropdown(
                [str(value) for value in InsulationEra], "insulation_era"
            ),
            probatio.Optional(CONF_HEAT_PUMP_MODULATION): dropdown(
                list(HEAT_PUMP_MODULATIONS), "heat_pump_modulation"
            ),
            probatio.Optional(CONF_DHW_ENTITY): entity_picker(
                "binary_sensor", "switch", "input_boolean"
            ),
            probatio.Optional(CONF_HEAT_PUMP_TYPE): dropdown(
                list(HEAT_PUMP_TYPES), "heat_pump_type"
            ),
            probatio.Optional(CONF_HYBRID_POWER_CAP): number_box(UnitOfPower.WATT, step=10),
            probatio.Optional(CONF_BOILER_POWER): number_box(UnitOfPower.KILO_WATT, step=0.5),
            probatio.Optional(CONF_GAS_PRICE): number_box("EUR/m³", step=0.01),
            probatio.Optional(CONF_BOILER_EFFICIENCY): number_box(PERCENTAGE, step=1),
        }

    @override
    def _device_defaults(self) -> dict[str, Any]:
        return {
            CONF_HEAT_PUMP_TYPE: HEAT_PUMP_TYPES[0],
            CONF_LIMITED_POWER: DEFAULT_LIMITED_POWER_W,
            CONF_MAX_SWITCHES_PER_DAY: DEFAULT_MAX_SWITCHES_PER_DAY,
            CONF_MIN_ON_TIME: DEFAULT_MIN_ON_OFF_MINUTES,
            CONF_MIN_OFF_TIME: DEFAULT_MIN_ON_OFF_MINUTES,
        }

    @override
    def _device_errors(self, data: dict[str, Any], phases: int) -> dict[str, str]:
        errors = _rated_power_errors(data)
        if not errors and data[CONF_LIMITED_POWER] >= data[CONF_RATED_POWER]:
            errors[CONF_LIMITED_POWER] = "limited_not_below_rated"
        switches = (CONF_SG_READY_SWITCH_1, CONF_SG_READY_SWITCH_2)
        chosen = [key for key in switches if key in data]
        if len(chosen) == 1:
            missing = next(key for key in switches if key not in data)
            errors[missing] = "sg_ready_pair_incomplete"
        elif not chosen and CONF_POWER_LIMIT_ENTITY not in data:
            errors[CONF_POWER_LIMIT_ENTITY] = "control_entity_required"
        errors.update(self._thermal_errors(data))
        return errors

    def _thermal_errors(self, data: dict[str, Any]) -> dict[str, str]:
        """The thermal model's fields: all of the model's, or none; a hybrid's figures."""
        errors: dict[str, str] = {}
        if (outdoor := data.get(CONF_OUTDOOR_TEMPERATURE_ENTITY)) is not None:
            if split_entity_id(outdoor)[0] == "weather":
                error = control_error(self.hass, outdoor, WEATHER_ENTITY)
            else:
                error = sensor_error(self.hass, outdoor, TEMPERATURE_SENSOR)
            if error:
                errors[CONF_OUTDOOR_TEMPERATURE_ENTITY] = error
        if (dhw := data.get(CONF_DHW_ENTITY)) is not None and (
            error := control_error(self.hass, dhw, HOT_WATER_STATUS)
        ):
            errors[CONF_DHW_ENTITY] = error
        model_keys = (CONF_OUTDOOR_TEMPERATURE_ENTITY, CONF_BUILDING_TYPE, CONF_INSULATION_ERA)
        chosen = [key for key in model_keys if key in data]
        if chosen and len(chosen) < len(model_keys):
            missing = next(key for key in model_keys if key not in data)
            errors.setdefault(missing, "thermal_model_incomplete")
        modulating = data.get(CONF_HEAT_PUMP_MODULATION) == HEAT_PUMP_MODULATIONS[0]
        if modulating and CONF_POWER_LIMIT_ENTITY not in data:
            errors[CONF_HEAT_PUMP_MODULATION] = "modulating_needs_power_limit"
        if data.get(CONF_HEAT_PUMP_TYPE) == "hybrid":
            errors.update(_power_not_positive(data, CONF_HYBRID_POWER_CAP, CONF_BOILER_POWER))
            if CONF_GAS_PRICE in data and not data[CONF_GAS_PRICE] > 0:
                errors[CONF_GAS_PRICE] = "gas_price_not_positive"
            efficiency = data.get(CONF_BOILER_EFFICIENCY)
            if (
                efficiency is not None
                and not BOILER_EFFICIENCY_RANGE_PCT[0]
                <= efficiency
                <= (BOILER_EFFICIENCY_RANGE_PCT[1])
            ):
                errors[CONF_BOILER_EFFICIENCY] = "efficiency_out_of_range"
        return errors


class PvSubentryFlow(_DeviceFlow):
    """A PV inverter curtailed through a power-limit number or an on/off switch."""

    entity_rules: ClassVar[Mapping[str, SensorRule | ControlRule]] = {
        CONF_POWER_LIMIT_ENTITY: POWER_LIMIT_NUMBER,
        CONF_SWITCH_ENTITY: ON_OFF_SWITCH,
        CONF_POWER_ENTITY: POWER_SENSOR,
    }

    @override
    def _device_fields(self) -> dict[probatio.Marker, Any]:
        return {
            probatio.Optional(CONF_POWER_LIMIT_ENTITY): entity_picker("number", "input_number"),
            probatio.Optional(CONF_SWITCH_ENTITY): entity_picker("switch", "input_boolean"),
            probatio.Optional(CONF_POWER_ENTITY): entity_picker("sensor", device_class="power"),
            # Required by the flow, not the form: see the heat pump's.
            probatio.Optional(CONF_RATED_POWER): number_box(UnitOfPower.WATT, step=10),
        }

    @override
    def _device_errors(self, data: dict[str, Any], phases: int) -> dict[str, str]:
        errors = _rated_power_errors(data)
        if CONF_POWER_LIMIT_ENTITY not in data and CONF_SWITCH_ENTITY not in data:
            errors[CONF_POWER_LIMIT_ENTITY] = "control_entity_required"
        return errors


class LoadSubentryFlow(_DeviceFlow):
    """A generic load the guard can switch off."""

    entity_rules: ClassVar[Mapping[str, SensorRule | ControlRule]] = {
        CONF_SWITCH_ENTITY: ON_OFF_SWITCH,
        CONF_POWER_ENTITY: POWER_SENSOR,
    }

    @override
    def _device_fields(self) -> dict[probatio.Marker, Any]:
        return {
            probatio.Required(CONF_SWITCH_ENTITY): entity_picker("switch", "input_boolean"),
            probatio.Optional(CONF_POWER_ENTITY): entity_picker("sensor", device_class="power"),
            probatio.Optional(CONF_RATED_POWER): number_box(UnitOfPower.WATT, step=10),
        }

    @override
    def _device_errors(self, data: dict[str, Any], phases: int) -> dict[str, str]:
        errors = _power_not_positive(data, CONF_RATED_POWER)
        if CONF_POWER_ENTITY not in data and CONF_RATED_POWER not in data:
            errors[CONF_RATED_POWER] = "power_or_rated_required"
        return errors


class CircuitSubentryFlow(_SubentryFlow):
    """A sub-circuit with its own breaker, optionally inside another circuit."""

    @override
    def _schema(self, entry: ConfigEntry) -> probatio.Schema:
        fields: dict[probatio.Marker, Any] = {
            probatio.Required(CONF_NAME): TextSelector(),
            probatio.Required(CONF_CIRCUIT_MAX_CURRENT): number_box(UnitOfElectricCurrent.AMPERE),
        }
        # Sub-circuits of this one stay listed: choosing one is refused with a clear error.
        candidates = {
            cid: entry.subentries[cid].title
            for cid in circuit_parents(entry)
            if cid != self._own_id
        }
        if candidates:
            fields[probatio.Optional(CONF_PARENT_CIRCUIT)] = _circuit_selector(candidates)
        return probatio.Schema(fields)

    @override
    def _defaults(self, entry: ConfigEntry) -> dict[str, Any]:
        return {}

    @override
    def _errors(self, entry: ConfigEntry, data: dict[str, Any]) -> dict[str, str]:
        low, high = CIRCUIT_CURRENT_RANGE_A
        errors: dict[str, str] = {}
        if not low <= data[CONF_CIRCUIT_MAX_CURRENT] <= high:
            errors[CONF_CIRCUIT_MAX_CURRENT] = "current_out_of_range"
        if (parent := data.get(CONF_PARENT_CIRCUIT)) is not None:
            parents = circuit_parents(entry)
            if parent not in parents:
                errors[CONF_PARENT_CIRCUIT] = "circuit_not_found"
            elif self._own_id and creates_cycle(parents, self._own_id, parent):
                errors[CONF_PARENT_CIRCUIT] = "circuit_cycle"
        return errors


SUBENTRY_FLOWS: Mapping[str, type[_SubentryFlow]] = {
    SUBENTRY_CHARGER: ChargerSubentryFlow,
    SUBENTRY_BATTERY: BatterySubentryFlow,
    SUBENTRY_HEAT_PUMP: HeatPumpSubentryFlow,
    SUBENTRY_PV: PvSubentryFlow,
    SUBENTRY_LOAD: LoadSubentryFlow,
    SUBENTRY_CIRCUIT: CircuitSubentryFlow,
}
