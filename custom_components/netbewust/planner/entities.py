"""The plan in Home Assistant: a plan sensor, costs, the next action per device, and
the driver's EV settings (departure and guaranteed-by times, energies)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.components.number import NumberMode, RestoreNumber
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.components.time import TimeEntity
from homeassistant.const import UnitOfEnergy
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

MAX_STATE_LENGTH = 255


def describe(setpoint: Setpoint | None) -> str:
    """A short, language-neutral action: what the device is asked to do."""
    match setpoint:
        case ChargerSetpoint(current_a=current) if current > 0:
            return f"charge {current:.0f} A"
        case ChargerSetpoint(current_a=current) if current < 0:
            return f"discharge {-current:.0f} A"
        case ChargerSetpoint():
            return "pause"
        case BatterySetpoint(power_w=None):
            return "own mode"
        case BatterySetpoint(power_w=power) if power is not None and power > 0:
            return f"charge {power:.0f} W"
        case BatterySetpoint(power_w=power) if power is not None and power < 0:
            return f"discharge {-power:.0f} W"
        case BatterySetpoint():
            return "idle"
        case HeatPumpSetpoint(on=on) | LoadSetpoint(on=on):
            return "on" if on else "off"
        case PvSetpoint(power_limit_w=None):
            return "unlimited"
        case PvSetpoint(power_limit_w=limit):
            return f"limit {limit:.0f} W"
    return "none"


def next_change(plan: Plan, device_id: str, now: datetime) -> tuple[str, datetime | None]:
    """The device's action now and when (if within the plan) it next changes."""
    current = next((s for s in reversed(plan.steps) if s.start <= now), None)
    action = describe(current.setpoints.get(device_id)) if current else "none"
    for step in plan.steps:
        if step.start > now and describe(step.setpoints.get(device_id)) != action:
            return action, step.start
    return action, None


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
    metered = baseline = 0.0
    counted = missing = 0
    moment = day_start
    while moment < min(current, day_end):
        quarter = planner.metered.get(moment)
        if quarter is not None and quarter.cost_eur is not None:
            metered += quarter.cost_eur
            baseline += quarter.baseline_eur or 0.0
            counted += 1
        else:
            missing += 1
        moment += QUARTER
    planned: float | None = 0.0
    plan = planner.plan
    steps = plan.steps if plan is not None else ()
    for step in steps:
        if max(current, day_start) <= step.start < day_end:
            cost = _step_cost(step)
            planned = None if planned is None or cost is None else planned + cost
            baseline += planner.baseline_step_eur.get(step.start, 0.0)
    unpriced = plan is not None and plan.baseline_cost_eur is None
    return DayCost(metered, planned, None if unpriced else baseline, counted, missing)


def _step_cost(step: PlanStep) -> float | None:
    """EUR over the step (the integration plans in quarter hours); None without prices."""
    buy, sell = step.import_price_eur_per_kwh, step.export_price_eur_per_kwh
    if buy is None or sell is None:
        return None
    return (step.import_w * buy - step.export_w * sell) * HOURS_PER_QUARTER / 1000


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def schedule(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "start": step.start.isoformat(),
            "import_w": round(step.import_w),
            "export_w": round(step.export_w),
            "import_price": _round(step.import_price_eur_per_kwh, 5),
            "export_price": _round(step.export_price_eur_per_kwh, 5),
            "actions": {d: describe(s) for d, s in step.setpoints.items()},
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
    """State: what every device is asked to do now; the full schedule in attributes."""

    _unrecorded_attributes = frozenset({"schedule"})

    @property
    def native_value(self) -> str:
        plan = self.planner.plan
        if plan is None:
            return "waiting"
        now = dt_util.utcnow()
        names = {d: b.spec.name for d, b in self.runtime.devices.items()}
        if (modbus := self.runtime.modbus) is not None:
            names.update((spec.device_id, spec.name) for spec in modbus.specs)
        parts = [
            f"{names.get(device_id, device_id)}: {next_change(plan, device_id, now)[0]}"
            for device_id in names
        ]
        text = "; ".join(parts) or plan.status.value
        return text[:MAX_STATE_LENGTH]

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        plan = self.planner.plan
        if plan is None:
            return {"status": "waiting"}
        forecasts = self.planner.last_forecasts
        return {
            "status": plan.status.value,
            "reason": plan.reason,
            "planned_at": self.planner.planned_at.isoformat() if self.planner.planned_at else None,
            "prices_until": _prices_until(self.planner),
            "forecast_notes": list(forecasts.notes) if forecasts else [],
            "schedule": schedule(plan),
        }


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
        plan = self.planner.plan
        cost = self._day(self._day_offset or 0)
        if self._day_offset is None:
            return _round(cost.baseline_eur, 4) if plan is not None and plan.steps else None
        if not cost.metered_quarters and (plan is None or not plan.steps):
            return None
        return _round(cost.total_eur, 4)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        plan = self.planner.plan
        if self._day_offset is None:
            return {
                "covers": "today; energy only, the peak cost is in plan_baseline_cost",
                "baseline": "cars at full power on arrival, no battery use, no curtailment",
                "tomorrow": _round(self._day(1).baseline_eur, 4),
                "plan_baseline_cost": _round(plan.baseline_cost_eur, 4) if plan else None,
                "plan_cost": _round(plan.expected_cost_eur, 4) if plan else None,
            }
        cost = self._day(self._day_offset)
        return {
            "covers": "the whole local day: metered quarter hours so far, the plan after",
            "metered": round(cost.metered_eur, 4),
            "planned": _round(cost.planned_eur, 4),
            "baseline": _round(cost.baseline_eur, 4),
            "quarter_hours_metered": cost.metered_quarters,
            "quarter_hours_unmetered": cost.unmetered_quarters,
        }


class NextActionSensor(PlannerEntity, SensorEntity):
    """What the plan asks of one device now, and when that changes."""

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

    @property
    def native_value(self) -> str:
        plan = self.planner.plan
        if plan is None or self._device_id is None:
            return "none"
        return next_change(plan, self._device_id, dt_util.utcnow())[0]

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        plan = self.planner.plan
        if plan is None or self._device_id is None:
            return {}
        _, at = next_change(plan, self._device_id, dt_util.utcnow())
        if at is None:
            return {"next_change": None}
        step = next(s for s in plan.steps if s.start == at)
        return {
            "next_change": at.isoformat(),
            "next_action": describe(step.setpoints.get(self._device_id)),
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
        PlanSensor(runtime, planner, SensorEntityDescription(key="plan", translation_key="plan")),
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
                    key=f"next_action_{subentry_id}", translation_key="next_action"
                ),
                entry.subentries[subentry_id],
                device_info=device_info,
            ),
        )
        for subentry_id, device_info in planned.items()
    ]
