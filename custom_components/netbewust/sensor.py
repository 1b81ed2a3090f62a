"""Sensors: the guard's state, the limit in force, headroom per phase, device setpoints;
per thermally planned heat pump the expected indoor temperature and the model's fit."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfPower,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.util import dt as dt_util

from .community.entities import add_community_sensors
from .community.runtime import is_membership_entry
from .const import SUBENTRY_BATTERY, SUBENTRY_CHARGER
from .core.limits import LimitSource
from .core.model import (
    BatterySetpoint,
    ChargerSetpoint,
    GuardState,
    HeatPumpSetpoint,
    LoadSetpoint,
    PvSetpoint,
)
from .entity import ConnectionEntity
from .modbus.entities import async_add_modbus_sensors
from .planner.entities import next_action_sensors, planner_sensors
from .planner.heat_pump_entities import thermal_entities

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from homeassistant.config_entries import ConfigSubentry
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
    from homeassistant.helpers.typing import StateType

    from .community.runtime import AnyNetbewustEntry
    from .guard.runtime import NetbewustRuntime

PARALLEL_UPDATES = 0
# Small changes of a fast value are written at most this often; big ones at once.
SMALL_CHANGE_INTERVAL_S = 60.0


@dataclass(frozen=True, kw_only=True)
class NetbewustSensorDescription(SensorEntityDescription):
    value_fn: Callable[[NetbewustRuntime], StateType]
    attributes_fn: Callable[[NetbewustRuntime], dict[str, Any]] | None = None
    # Numeric changes smaller than this wait for SMALL_CHANGE_INTERVAL_S.
    significant_change: float | None = None
    # Measured values mean nothing while the meter is silent.
    needs_fresh_meter: bool = False
    # False while the value does not apply (a battery in its own mode has no setpoint).
    available_fn: Callable[[NetbewustRuntime], bool] | None = None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _phase_value(field: str, phase: int, runtime: NetbewustRuntime) -> float | None:
    decision = runtime.last_decision
    if decision is None:
        return None
    values: tuple[float, ...] = getattr(decision, field)
    return _rounded(values[phase - 1]) if len(values) >= phase else None


def _guard_state(runtime: NetbewustRuntime) -> str | None:
    """The reported state: a new one shows once it held (core/guard/reported.py)."""
    state = runtime.reported.state
    return state.value if state is not None else None


def _guard_attributes(runtime: NetbewustRuntime) -> dict[str, Any]:
    decision = runtime.reported.decision
    if decision is None:
        return {"reasons": []}
    limitations = decision.limitations
    return {
        "reasons": sorted({limitation.reason.value for limitation in limitations}),
        "limitations": [
            {
                "reason": limitation.reason.value,
                "device": _device_name(runtime, limitation.device_id),
                "phase": limitation.phase,
                "detail": limitation.detail,
            }
            for limitation in limitations
        ],
    }


def _device_name(runtime: NetbewustRuntime, device_id: str | None) -> str | None:
    binding = runtime.devices.get(device_id) if device_id else None
    return binding.spec.name if binding else device_id


def _limit_source(runtime: NetbewustRuntime) -> str | None:
    return runtime.last_decision.limit_source.value if runtime.last_decision else None


def _setpoint_value(device_id: str, runtime: NetbewustRuntime) -> float | None:
    """Charger: current (A); battery: power (W); others: the power they may draw (W)."""
    decision = runtime.last_decision
    binding = runtime.devices.get(device_id)
    if decision is None or binding is None:
        return None
    rated: float = getattr(binding.spec, "rated_power_w", 0.0)
    match decision.setpoints.get(device_id):
        case ChargerSetpoint(current_a=current_a):
            return current_a
        case BatterySetpoint(power_w=power_w):
            return power_w
        case HeatPumpSetpoint(on=on, power_limit_w=limit):
            return (rated if limit is None else limit) if on else 0.0
        case PvSetpoint(power_limit_w=limit):
            return rated if limit is None else limit
        case LoadSetpoint(on=on):
            return rated if on else 0.0
        case _:
            return None


def _steered(device_id: str, runtime: NetbewustRuntime) -> bool:
    """Whether the guard gives the battery a power: in its own mode it has none, and its
    setpoint is unavailable then rather than an unknown number of watts."""
    decision = runtime.last_decision
    setpoint = decision.setpoints.get(device_id) if decision is not None else None
    return setpoint != BatterySetpoint(power_w=None)


def _meter_interval(runtime: NetbewustRuntime) -> float | None:
    return _rounded(runtime.pace.interval_s)


def connection_descriptions(phases: int) -> list[NetbewustSensorDescription]:
    descriptions = [
        NetbewustSensorDescription(
            key="guard_state",
            translation_key="guard_state",
            device_class=SensorDeviceClass.ENUM,
            options=[state.value for state in GuardState],
            value_fn=_guard_state,
            attributes_fn=_guard_attributes,
        ),
        NetbewustSensorDescription(
            key="limit_source",
            translation_key="limit_source",
            device_class=SensorDeviceClass.ENUM,
            options=[source.value for source in LimitSource],
            value_fn=_limit_source,
        ),
        NetbewustSensorDescription(
            key="meter_interval",
            translation_key="meter_interval",
            device_class=SensorDeviceClass.DURATION,
            native_unit_of_measurement=UnitOfTime.SECONDS,
            state_class=SensorStateClass.MEASUREMENT,
            entity_category=EntityCategory.DIAGNOSTIC,
            entity_registry_enabled_default=False,
            suggested_display_precision=1,
            value_fn=_meter_interval,
            significant_change=1.0,
        ),
    ]
    for phase in range(1, phases + 1):
        placeholders = {"phase": f"L{phase}"}
        descriptions += [
            NetbewustSensorDescription(
                key=f"headroom_l{phase}",
                translation_key="headroom",
                translation_placeholders=placeholders,
                device_class=SensorDeviceClass.CURRENT,
                native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
                state_class=SensorStateClass.MEASUREMENT,
                suggested_display_precision=1,
                value_fn=partial(_phase_value, "headroom_a", phase),
                significant_change=0.5,
                needs_fresh_meter=True,
            ),
            NetbewustSensorDescription(
                key=f"limit_l{phase}",
                translation_key="phase_limit",
                translation_placeholders=placeholders,
                device_class=SensorDeviceClass.CURRENT,
                native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
                state_class=SensorStateClass.MEASUREMENT,
                entity_category=EntityCategory.DIAGNOSTIC,
                suggested_display_precision=1,
                value_fn=partial(_phase_value, "phase_limit_a", phase),
                significant_change=0.5,
            ),
        ]
    return descriptions


def setpoint_description(subentry: ConfigSubentry) -> NetbewustSensorDescription:
    value_fn = partial(_setpoint_value, subentry.subentry_id)
    if subentry.subentry_type == SUBENTRY_CHARGER:
        return NetbewustSensorDescription(
            key="setpoint",
            translation_key="charger_setpoint",
            device_class=SensorDeviceClass.CURRENT,
            native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=1,
            value_fn=value_fn,
        )
    battery = subentry.subentry_type == SUBENTRY_BATTERY
    return NetbewustSensorDescription(
        key="setpoint",
        translation_key="battery_setpoint" if battery else "allowed_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=value_fn,
        available_fn=partial(_steered, subentry.subentry_id) if battery else None,
    )


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AnyNetbewustEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    if is_membership_entry(entry):
        add_community_sensors(entry, async_add_entities)
        return
    runtime = entry.runtime_data
    phases = runtime.config.guard.connection.phases
    async_add_entities(
        NetbewustSensor(runtime, description) for description in connection_descriptions(phases)
    )
    async_add_modbus_sensors(runtime, async_add_entities)
    for subentry in entry.subentries.values():
        if subentry.subentry_id in runtime.devices:
            async_add_entities(
                [NetbewustSensor(runtime, setpoint_description(subentry), subentry)],
                config_subentry_id=subentry.subentry_id,
            )
    if (planner := runtime.planner) is not None:
        async_add_entities(planner_sensors(runtime, planner))
        for subentry_id, sensor in next_action_sensors(runtime, planner, entry):
            async_add_entities([sensor], config_subentry_id=subentry_id)
        for subentry_id, entity in thermal_entities(entry, "sensor"):
            async_add_entities([entity], config_subentry_id=subentry_id)


class NetbewustSensor(ConnectionEntity, SensorEntity):
    """Writes its state only when it changed meaningfully, to spare the recorder."""

    entity_description: NetbewustSensorDescription
    # The per-limitation detail is for the UI and automations, not for history.
    _unrecorded_attributes = frozenset({"limitations"})

    def __init__(
        self,
        runtime: NetbewustRuntime,
        description: NetbewustSensorDescription,
        subentry: ConfigSubentry | None = None,
    ) -> None:
        super().__init__(runtime, description, subentry)
        self._attr_native_value = description.value_fn(runtime)
        self._attr_extra_state_attributes = (
            description.attributes_fn(runtime) if description.attributes_fn else {}
        )
        self._written_at: datetime | None = None
        self._written_available = True

    @property
    def available(self) -> bool:
        description = self.entity_description
        if description.available_fn is not None and not description.available_fn(self.runtime):
            return False
        return not (description.needs_fresh_meter and self.runtime.meter_stale)

    @callback
    def _handle_update(self) -> None:
        description = self.entity_description
        value = description.value_fn(self.runtime)
        attributes = description.attributes_fn(self.runtime) if description.attributes_fn else {}
        now = dt_util.utcnow()
        if self.available == self._written_available and (
            (value == self._attr_native_value and attributes == self._attr_extra_state_attributes)
            or self._is_small_change(value, attributes, now)
        ):
            return
        self._written_available = self.available
        self._attr_native_value = value
        self._attr_extra_state_attributes = attributes
        self._written_at = now
        self.async_write_ha_state()

    def _is_small_change(self, value: StateType, attributes: dict[str, Any], now: datetime) -> bool:
        threshold = self.entity_description.significant_change
        previous = self._attr_native_value
        return (
            threshold is not None
            and isinstance(value, float)
            and isinstance(previous, float)
            and attributes == self._attr_extra_state_attributes
            and abs(value - previous) < threshold
            and self._written_at is not None
            and (now - self._written_at).total_seconds() < SMALL_CHANGE_INTERVAL_S
        )
