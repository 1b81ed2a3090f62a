"""The plan in Home Assistant: a plan sensor, costs, the next action per device, and
the driver's EV settings (departure and guaranteed-by times, energies)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from homeassistant.components.number import NumberMode, RestoreNumber
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.components.time import TimeEntity
from homeassistant.const import UnitOfElectricCurrent, UnitOfEnergy, UnitOfPower
from homeassistant.helpers.restore_state import RestoreEntity
from homeassistant.util import dt as dt_util

from ..core.model import (
    BatterySetpoint,
    BatterySpec,
    ChargerSetpoint,
    ChargerSpec,
    HeatPumpSetpoint,
    LoadSetpoint,
    PvSetpoint,
    Setpoint,
)
from ..core.planning.problem import PlanStatus
from ..core.timegrid import HOURS_PER_QUARTER, QUARTER, floor_to_quarter_hour, local_day_bounds
from ..entity import ConnectionEntity
from ..modbus.entities import modbus_device_info

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from homeassistant.config_entries import ConfigSubentry
    from homeassistant.helpers.device_registry import DeviceInfo
    from homeassistant.helpers.entity import EntityDescription
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from ..core.planning.problem import Plan, PlanStep
    from ..guard.runtime import NetbewustConfigEntry, NetbewustRuntime
    from .runtime import PlanningRuntime

WAITING = "waiting"  # the plan sensor's state before the first plan


class Action(StrEnum):
    """What the plan asks a device to do: the next-action sensor's translated state."""

    NONE = "none"
    CHARGE = "charge"
    DISCHARGE = "discharge"
    PAUSE = "pause"
    OWN_MODE = "own_mode"
    IDLE = "idle"
    ON = "on"
    OFF = "off"
    UNLIMITED = "unlimited"
    LIMITED = "limited"


@dataclass(frozen=True, slots=True)
class Asked:
    """One device's action with its amount: a charger in A, the others in W."""

    action: Action
    amount: float | None = None
    unit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "amount": self.amount, "unit": self.unit}


def asked(setpoint: Setpoint | None) -> Asked:
    """What the device is asked to do, without words: HA translates the action."""
    amps, watts = UnitOfElectricCurrent.AMPERE, UnitOfPower.WATT
    match setpoint:
        case ChargerSetpoint(current_a=current) if current > 0:
            return Asked(Action.CHARGE, round(current), amps)
        case ChargerSetpoint(current_a=current) if current < 0:
            return Asked(Action.DISCHARGE, round(-current), amps)
        case ChargerSetpoint():
            return Asked(Action.PAUSE)
        case BatterySetpoint(power_w=None):
            return Asked(Action.OWN_MODE)
        case BatterySetpoint(power_w=power) if power is not None and power > 0:
            return Asked(Action.CHARGE, round(power), watts)
        case BatterySetpoint(power_w=power) if power is not None and power < 0:
            return Asked(Action.DISCHARGE, round(-power), watts)
        case BatterySetpoint():
            return Asked(Action.IDLE)
        case HeatPumpSetpoint(on=on) | LoadSetpoint(on=on):
            return Asked(Action.ON if on else Action.OFF)
        case PvSetpoint(power_limit_w=None):
            return Asked(Action.UNLIMITED)
        case PvSetpoint(power_limit_w=limit) if limit is not None:
            return Asked(Action.LIMITED, round(limit), watts)
    return Asked(Action.NONE)


def next_change(plan: Plan, device_id: str, now: datetime) -> tuple[Asked, Asked, datetime | None]:
    """The device's action now, its next different one and when that starts (None, with
    the action now, when it does not change within the plan)."""
    current = next((s for s in reversed(plan.steps) if s.start <= now), None)
    action = asked(current.setpoints.get(device_id)) if current else Asked(Action.NONE)
    for step in plan.steps:
        if step.start > now and (following := asked(step.setpoints.get(device_id))) != action:
            return action, following, step.start
    return action, action, None


@dataclass(frozen=True, slots=True)
class DayCost:
    """A local day's energy cost (EUR): metered quarter hours so far, the plan after."""

    metered_eur: float
    planned_eur: float | None  # None: planned without prices, so unknown
    baseline_eur: float | None
    metered_quarters: int
    unmetered_quarters: int  # past quarter hours without a meter reading or a price

    @property
    def total_eur(self) -> float | None:
        return None if self.planned_eur is None else self.metered_eur + self.planned_eur


def day_cost(planner: PlanningRuntime, day: date, now: datetime) -> DayCost:
    """The whole of local `day`: what was metered before this quarter hour, what the plan
    expects from it on; the baseline likewise (recorded from the plan then in force)."""
    day_start, day_end = local_day_bounds(day, planner.zone)
    current = floor_to_quarter_hour(now)
    metered = 0.0
    baseline: float | None = 0.0
    counted = missing = 0
    moment = day_start
    while moment < min(current, day_end):
        quarter = planner.metered.get(moment)
        if quarter is not None and quarter.cost_eur is not None:
            metered += quarter.cost_eur
            baseline = _add(baseline, quarter.baseline_eur)
            counted += 1
        else:
            missing += 1
        moment += QUARTER
    # Unknown, never 0, unless the plan prices every quarter hour left of the day.
    planned: float | None = 0.0
    plan = planner.plan
    rest = max(current, day_start)
    steps = [s for s in plan.steps if rest <= s.start < day_end] if plan is not None else []
    if len(steps) < (day_end - rest) // QUARTER:
        planned = baseline = None
    for step in steps:
        planned = _add(planned, _step_cost(step))
        baseline = _add(baseline, planner.baseline_step_eur.get(step.start))
    return DayCost(metered, planned, baseline, counted, missing)


def _add(total: float | None, value: float | None) -> float | None:
    """A sum that stays unknown once one part is."""
    return None if total is None or value is None else total + value


def _step_cost(step: PlanStep) -> float | None:
    """EUR over the step (the integration plans in quarter hours); None without prices."""
    buy, sell = step.import_price_eur_per_kwh, step.export_price_eur_per_kwh
    if buy is None or sell is None:
        return None
    return (step.import_w * buy - step.export_w * sell) * HOURS_PER_QUARTER / 1000


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def schedule(plan: Plan) -> list[dict[str, Any]]:
    """Per quarter hour what a chart card plots: the all-in prices (EUR/kWh, None without
    prices), the grid (W, import positive), the base load and PV after curtailment, and
    the planned power of all chargers, batteries (charging positive) and heat pumps."""
    return [
        {
            "start": step.start.isoformat(),
            "price": _round(step.import_price_eur_per_kwh, 5),
            "export_price": _round(step.export_price_eur_per_kwh, 5),
            "grid_w": round(step.import_w - step.export_w),
            "base_load_w": round(step.base_load_w),
            "pv_w": round(step.pv_w - step.pv_curtailed_w),
            "charger_w": round(sum(c.charge_w - c.discharge_w for c in step.chargers.values())),
            "battery_w": round(sum(b.charge_w - b.discharge_w for b in step.batteries.values())),
            "heat_pump_w": round(sum(h.power_w for h in step.heat_pumps.values())),
        }
        for step in plan.steps
    ]


class PlannerEntity(ConnectionEntity):
    """Refreshed after every guard decision and whenever the planner re-plans or applies
    a step."""

    def __init__(
        self,
        runtime: NetbewustRuntime,
        planner: PlanningRuntime,
        description: EntityDescription,
        subentry: ConfigSubentry | None = None,
    ) -> None:
        super().__init__(runtime, description, subentry, planner.updates)
        self.planner = planner


class PlanSensor(PlannerEntity, SensorEntity):
    """State: the plan's status (optimal, the simple rule, waiting), translated; what each
    device is asked now and the schedule per quarter hour in attributes."""

    # 672 quarter hours exceed the recorder's attribute size; charts read the live state.
    _unrecorded_attributes = frozenset({"schedule", "devices"})

    @property
    def native_value(self) -> str:
        plan = self.planner.plan
        return WAITING if plan is None else plan.status.value

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        plan = self.planner.plan
        if plan is None:
            return {"reason": None, "schedule": []}
        forecasts = self.planner.last_forecasts
        now = dt_util.utcnow()
        devices = []
        for device_id, name in _device_names(self.runtime).items():
            action, following, at = next_change(plan, device_id, now)
            devices.append(
                {
                    "device": name,
                    **action.as_dict(),
                    "next_change": at.isoformat() if at else None,
                    "next_action": following.action.value if at else None,
                }
            )
        why = self.planner.why
        return {
            "reason": why.value if why is not None else None,
            "planned_at": self.planner.planned_at.isoformat() if self.planner.planned_at else None,
            "prices_until": _prices_until(self.planner),
            "forecasts_missing": list(forecasts.missing_entities) if forecasts else [],
            "devices": devices,
            "schedule": schedule(plan),
        }


def _device_names(runtime: NetbewustRuntime) -> dict[str, str]:
    names = {d: b.spec.name for d, b in runtime.devices.items()}
    if (modbus := runtime.modbus) is not None:
        names.update((spec.device_id, spec.name) for spec in modbus.specs)
    return names


def _prices_until(planner: PlanningRuntime) -> str | None:
    series = planner.book.series()
    return series.end.isoformat() if series is not None else None


class CostSensor(PlannerEntity, SensorEntity):
    """Expected cost of a whole local day, or the baseline's for today."""

    _attr_device_class = SensorDeviceClass.MONETARY
    _attr_native_unit_of_measurement = "EUR"
    _attr_suggested_display_precision = 2

    def __init__(
        self,
        runtime: NetbewustRuntime,
        planner: PlanningRuntime,
        description: EntityDescription,
        day_offset: int | None,
    ) -> None:
        super().__init__(runtime, planner, description)
        self._day_offset = day_offset

    def _day(self, offset: int) -> DayCost:
        now = dt_util.utcnow()
        day = now.astimezone(self.planner.zone).date() + timedelta(days=offset)
        return day_cost(self.planner, day, now)

    @property
    def native_value(self) -> float | None:
        cost = self._day(self._day_offset or 0)
        return _round(cost.baseline_eur if self._day_offset is None else cost.total_eur, 4)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        plan = self.planner.plan
        if self._day_offset is None:
            return {
                "tomorrow": _round(self._day(1).baseline_eur, 4),
                "plan_baseline_cost": _round(plan.baseline_cost_eur, 4) if plan else None,
                "plan_cost": _round(plan.expected_cost_eur, 4) if plan else None,
            }
        cost = self._day(self._day_offset)
        return {
            "metered": round(cost.metered_eur, 4),
            "planned": _round(cost.planned_eur, 4),
            "baseline": _round(cost.baseline_eur, 4),
            "quarter_hours_metered": cost.metered_quarters,
            "quarter_hours_unmetered": cost.unmetered_quarters,
        }


class NextActionSensor(PlannerEntity, SensorEntity):
    """What the plan asks of one device now (a translated action), its amount, and what
    it asks next and when."""

    def __init__(
        self,
        runtime: NetbewustRuntime,
        planner: PlanningRuntime,
        description: SensorEntityDescription,
        subentry: ConfigSubentry,
        *,
        device_info: DeviceInfo | None = None,
    ) -> None:
        super().__init__(runtime, planner, description, subentry)
        if device_info is not None:
            self._attr_device_info = device_info

    def _next(self) -> tuple[Asked, Asked, datetime | None]:
        plan = self.planner.plan
        if plan is None or self._device_id is None:
            return Asked(Action.NONE), Asked(Action.NONE), None
        return next_change(plan, self._device_id, dt_util.utcnow())

    @property
    def native_value(self) -> str:
        return self._next()[0].action.value

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        action, following, at = self._next()
        return {
            "amount": action.amount,
            "unit": action.unit,
            "next_change": at.isoformat() if at else None,
            "next_action": following.action.value if at else None,
            "next_amount": following.amount if at else None,
        }

    @property
    def _device_id(self) -> str | None:
        return self.entity_description.key.removeprefix("next_action_") or None


class EvSetting(PlannerEntity):
    """One field of a charger's EV settings in the planner, restored across restarts."""

    def __init__(
        self,
        runtime: NetbewustRuntime,
        planner: PlanningRuntime,
        description: EntityDescription,
        subentry: ConfigSubentry,
        field: str,
        *,
        device_info: DeviceInfo | None = None,
    ) -> None:
        super().__init__(runtime, planner, description, subentry)
        if device_info is not None:
            self._attr_device_info = device_info
        self._device_id = subentry.subentry_id
        self._field = field

    @property
    def _setting(self) -> Any:
        return getattr(self.planner.ev[self._device_id], self._field)

    def _restore_setting(self, value: Any) -> None:
        setattr(self.planner.ev[self._device_id], self._field, value)

    def _async_set_setting(self, value: Any) -> None:
        self.planner.async_update_ev(self._device_id, **{self._field: value})
        self.async_write_ha_state()


class EvTime(EvSetting, TimeEntity, RestoreEntity):
    """Departure time, or the time the guaranteed charge must be in."""

    @property
    def native_value(self) -> time:
        value: time = self._setting
        return value

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and (restored := dt_util.parse_time(last.state)) is not None:
            self._restore_setting(restored)

    async def async_set_value(self, value: time) -> None:
        self._async_set_setting(value)


class EvEnergy(EvSetting, RestoreNumber):
    """Energy to add before departure, or the part guaranteed by the chosen time."""

    _attr_native_min_value = 0.0
    _attr_native_max_value = 150.0
    _attr_native_step = 0.5
    _attr_mode = NumberMode.BOX
    _attr_native_unit_of_measurement = UnitOfEnergy.KILO_WATT_HOUR

    @property
    def native_value(self) -> float:
        value: float = self._setting
        return value

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_number_data()
        if last is not None and last.native_value is not None:
            self._restore_setting(float(last.native_value))

    async def async_set_native_value(self, value: float) -> None:
        self._async_set_setting(float(value))


def async_add_ev_settings(
    entry: NetbewustConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    entity_type: type[EvSetting],
    description_type: Callable[..., EntityDescription],
    fields: Mapping[str, str],
) -> None:
    """Per charger, entity-based or Modbus, one `entity_type` for each EV-settings field
    (entity key -> field); nothing when the entry has no planner."""
    runtime = entry.runtime_data
    if (planner := runtime.planner) is None:
        return
    for device_id, device_info in _chargers(runtime).items():
        subentry = entry.subentries[device_id]
        async_add_entities(
            [
                entity_type(
                    runtime,
                    planner,
                    description_type(key=key, translation_key=key),
                    subentry,
                    field,
                    device_info=device_info,
                )
                for key, field in fields.items()
            ],
            config_subentry_id=device_id,
        )


def _chargers(runtime: NetbewustRuntime) -> dict[str, DeviceInfo | None]:
    """Every charger's device id, with a Modbus charger's own device info: the registry
    keeps what the last entity to register says, so all must describe the device alike."""
    chargers: dict[str, DeviceInfo | None] = {
        device_id: None
        for device_id, binding in runtime.devices.items()
        if isinstance(binding.spec, ChargerSpec)
    }
    modbus = runtime.modbus
    for runner in modbus.runners.values() if modbus is not None else ():
        if isinstance(runner.spec, ChargerSpec):
            chargers[runner.subentry_id] = modbus_device_info(runner, runtime.connection_device_id)
    return chargers


def planner_sensors(runtime: NetbewustRuntime, planner: PlanningRuntime) -> list[SensorEntity]:
    sensors: list[SensorEntity] = [
        PlanSensor(
            runtime,
            planner,
            SensorEntityDescription(
                key="plan",
                translation_key="plan",
                device_class=SensorDeviceClass.ENUM,
                options=[*(status.value for status in PlanStatus), WAITING],
            ),
        ),
        CostSensor(
            runtime,
            planner,
            SensorEntityDescription(key="cost_today", translation_key="cost_today"),
            0,
        ),
        CostSensor(
            runtime,
            planner,
            SensorEntityDescription(key="cost_tomorrow", translation_key="cost_tomorrow"),
            1,
        ),
        CostSensor(
            runtime,
            planner,
            SensorEntityDescription(key="baseline_cost", translation_key="baseline_cost"),
            None,
        ),
    ]
    return sensors


def next_action_sensors(
    runtime: NetbewustRuntime, planner: PlanningRuntime, entry: NetbewustConfigEntry
) -> list[tuple[str, NextActionSensor]]:
    """(subentry id, sensor) for every device the planner can plan: entity devices, and
    Modbus chargers and batteries with their own device info (see `_chargers`)."""
    planned: dict[str, DeviceInfo | None] = dict.fromkeys(runtime.devices)
    modbus = runtime.modbus
    for runner in modbus.runners.values() if modbus is not None else ():
        if isinstance(runner.spec, ChargerSpec | BatterySpec):
            planned[runner.subentry_id] = modbus_device_info(runner, runtime.connection_device_id)
    return [
        (
            subentry_id,
            NextActionSensor(
                runtime,
                planner,
                SensorEntityDescription(
                    key=f"next_action_{subentry_id}",
                    translation_key="next_action",
                    device_class=SensorDeviceClass.ENUM,
                    options=[action.value for action in Action],
                ),
                entry.subentries[subentry_id],
                device_info=device_info,
            ),
        )
        for subentry_id, device_info in planned.items()
    ]
