"""The entities of a heat pump planned on the thermal model (planner/thermal.py).

Comfort band (day set point, tolerance, night set-back and its times), "pause steering"
and "comfort now" switches with how long they last, the plan's expected indoor
temperature and the thermal model's fit. Every setting is restored after a restart.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.components.number import NumberEntityDescription, NumberMode, RestoreNumber
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.components.time import TimeEntity, TimeEntityDescription
from homeassistant.const import STATE_ON, EntityCategory, UnitOfTemperature, UnitOfTime
from homeassistant.core import CALLBACK_TYPE, callback
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.restore_state import RestoreEntity
from homeassistant.util import dt as dt_util

from .entities import PlannerEntity
from .thermal import next_local

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigSubentry
    from homeassistant.helpers.entity import Entity, EntityDescription

    from ..guard.runtime import NetbewustConfigEntry, NetbewustRuntime
    from .runtime import PlanningRuntime
    from .thermal import ComfortSettings

# (key, settings field, min, max, step, unit)
COMFORT_NUMBERS = (
    ("comfort_setpoint", "day_setpoint_c", 10.0, 28.0, 0.5, UnitOfTemperature.CELSIUS),
    ("comfort_tolerance", "tolerance_k", 0.1, 3.0, 0.1, UnitOfTemperature.KELVIN),
    ("night_setpoint", "night_setpoint_c", 5.0, 25.0, 0.5, UnitOfTemperature.CELSIUS),
    ("pause_duration", "pause_hours", 0.0, 48.0, 1.0, UnitOfTime.HOURS),
)
COMFORT_TIMES = {
    "night_start": "night_start",
    "night_end": "night_end",
    "comfort_now_until": "comfort_now_until_time",
}
FIT_STATES = ["fitted", "defaults"]


class ThermalEntity(PlannerEntity):
    """One entity of a thermally planned heat pump, on the pump's device."""

    def __init__(
        self,
        runtime: NetbewustRuntime,
        planner: PlanningRuntime,
        description: EntityDescription,
        subentry: ConfigSubentry,
    ) -> None:
        super().__init__(runtime, planner, description, subentry)
        self._device_id = subentry.subentry_id

    @property
    def _settings(self) -> ComfortSettings:
        return self.planner.comfort[self._device_id]


class ComfortNumber(ThermalEntity, RestoreNumber):
    """A number of the comfort band, or how long a pause lasts."""

    _attr_mode = NumberMode.BOX
    _attr_entity_category = EntityCategory.CONFIG

    def __init__(
        self,
        runtime: NetbewustRuntime,
        planner: PlanningRuntime,
        subentry: ConfigSubentry,
        spec: tuple[str, str, float, float, float, str],
    ) -> None:
        key, self._field, low, high, step, unit = spec
        super().__init__(
            runtime, planner, NumberEntityDescription(key=key, translation_key=key), subentry
        )
        self._attr_native_min_value = low
        self._attr_native_max_value = high
        self._attr_native_step = step
        self._attr_native_unit_of_measurement = unit

    @property
    def native_value(self) -> float:
        value: float = getattr(self._settings, self._field)
        return value

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_number_data()
        if last is not None and last.native_value is not None:
            value = float(last.native_value)
            if self.native_min_value <= value <= self.native_max_value:
                setattr(self._settings, self._field, value)

    async def async_set_native_value(self, value: float) -> None:
        self.planner.async_update_comfort(self._device_id, **{self._field: float(value)})
        self.async_write_ha_state()


class ComfortTime(ThermalEntity, TimeEntity, RestoreEntity):
    """When the night set-back starts or ends, or until when "comfort now" holds."""

    _attr_entity_category = EntityCategory.CONFIG

    def __init__(
        self,
        runtime: NetbewustRuntime,
        planner: PlanningRuntime,
        subentry: ConfigSubentry,
        key: str,
    ) -> None:
        super().__init__(
            runtime, planner, TimeEntityDescription(key=key, translation_key=key), subentry
        )
        self._field = COMFORT_TIMES[key]

    @property
    def native_value(self) -> time:
        value: time = getattr(self._settings, self._field)
        return value

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and (restored := dt_util.parse_time(last.state)) is not None:
            setattr(self._settings, self._field, restored)

    async def async_set_value(self, value: time) -> None:
        self.planner.async_update_comfort(self._device_id, **{self._field: value})
        self.async_write_ha_state()


class _TimedSwitch(ThermalEntity, SwitchEntity, RestoreEntity):
    """A switch that ends by itself at `until` (None: only when switched off)."""

    def __init__(
        self,
        runtime: NetbewustRuntime,
        planner: PlanningRuntime,
        subentry: ConfigSubentry,
        key: str,
    ) -> None:
        super().__init__(
            runtime, planner, SwitchEntityDescription(key=key, translation_key=key), subentry
        )
        self._end_timer: CALLBACK_TYPE | None = None

    def _until(self) -> datetime | None:
        raise NotImplementedError

    def _end_at(self, now: datetime) -> datetime | None:
        """When switching on now ends; None: not by itself."""
        raise NotImplementedError

    @callback
    def _set(self, on: bool, until: datetime | None) -> None:
        raise NotImplementedError

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        until = self._until() if self.is_on else None
        return {"until": until.isoformat() if until is not None else None}

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._cancel_timer)
        last = await self.async_get_last_state()
        if last is None or last.state != STATE_ON:
            return
        raw = last.attributes.get("until")
        until = dt_util.parse_datetime(raw) if isinstance(raw, str) else None
        if raw is not None and (until is None or until <= dt_util.utcnow()):
            return  # it ended while Home Assistant was down
        self._switch(on=True, until=until)

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._switch(on=True, until=self._end_at(dt_util.utcnow()))

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._switch(on=False, until=None)

    @callback
    def _switch(self, *, on: bool, until: datetime | None) -> None:
        self._cancel_timer()
        if on and until is not None:
            self._end_timer = async_track_point_in_utc_time(self.hass, self._on_end, until)
        self._set(on, until)
        self.async_write_ha_state()

    @callback
    def _on_end(self, _now: datetime) -> None:
        self._end_timer = None
        self._switch(on=False, until=None)

    @callback
    def _cancel_timer(self) -> None:
        if self._end_timer is not None:
            self._end_timer()
            self._end_timer = None


class PauseSteeringSwitch(_TimedSwitch):
    """On: the pump runs as its own thermostat would, for the pause duration (0: until
    switched off). The guard still protects the fuse."""

    @property
    def is_on(self) -> bool:
        return self._settings.is_paused(dt_util.utcnow())

    def _until(self) -> datetime | None:
        return self._settings.paused_until

    def _end_at(self, now: datetime) -> datetime | None:
        hours = self._settings.pause_hours
        return now + timedelta(hours=hours) if hours > 0 else None

    @callback
    def _set(self, on: bool, until: datetime | None) -> None:
        self.planner.async_update_comfort(self._device_id, paused=on, paused_until=until)


class ComfortNowSwitch(_TimedSwitch):
    """On: the band is the day set point, not below it, until the chosen time."""

    @property
    def is_on(self) -> bool:
        return self._settings.comfort_now(dt_util.utcnow())

    def _until(self) -> datetime | None:
        return self._settings.comfort_now_until

    def _end_at(self, now: datetime) -> datetime | None:
        return next_local(now, self._settings.comfort_now_until_time, self.planner.zone)

    @callback
    def _set(self, on: bool, until: datetime | None) -> None:
        self.planner.async_update_comfort(self._device_id, comfort_now_until=until if on else None)


class ExpectedIndoorSensor(ThermalEntity, SensorEntity):
    """The plan's expected indoor temperature now; its forecast per step in attributes."""

    _attr_device_class = SensorDeviceClass.TEMPERATURE
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_native_unit_of_measurement = UnitOfTemperature.CELSIUS
    _attr_suggested_display_precision = 1
    _unrecorded_attributes = frozenset({"forecast"})

    def _forecast(self) -> list[tuple[datetime, float]]:
        plan = self.planner.plan
        rows = []
        for step in plan.steps if plan is not None else ():
            heat_pump = step.heat_pumps.get(self._device_id)
            if heat_pump is not None and heat_pump.indoor_temperature_c is not None:
                rows.append((step.start, heat_pump.indoor_temperature_c))
        return rows

    @property
    def native_value(self) -> float | None:
        now = dt_util.utcnow()
        current = [value for start, value in self._forecast() if start <= now]
        return round(current[-1], 2) if current else None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        now = dt_util.utcnow()
        return {
            "measured": self.planner.measured_indoor(self._device_id),
            "steering": self.planner.may_steer(self._device_id, now),
            # End of each step, as the plan expects it.
            "forecast": [
                {"start": start.isoformat(), "temperature": round(value, 2)}
                for start, value in self._forecast()
            ],
        }


class ThermalModelSensor(ThermalEntity, SensorEntity):
    """Whether the home's own fit or the building type's defaults are planned with."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_options = FIT_STATES
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    @property
    def native_value(self) -> str:
        return "fitted" if self.planner.fits[self._device_id].fitted else "defaults"

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        return thermal_fit_summary(self.planner, self._device_id)


def thermal_fit_summary(planner: PlanningRuntime, device_id: str) -> dict[str, Any]:
    """The fit's figures, for the diagnostic sensor and the diagnostics download."""
    fit = planner.fits[device_id]
    parameters = fit.parameters
    return {
        "resistance_k_per_kw": round(parameters.resistance_k_per_kw, 3),
        "capacitance_kwh_per_k": round(parameters.capacitance_kwh_per_k, 3),
        "internal_gain_kw": round(parameters.internal_gain_kw, 3),
        "rms_error_k": None if fit.rms_k is None else round(fit.rms_k, 3),
        "samples": fit.pairs_used,
        "used": "fitted" if fit.fitted else "defaults",
        "reason": fit.reason,
        "fitted_at": planner.fitted_at.isoformat() if planner.fitted_at else None,
    }


def _thermal_subentries(entry: NetbewustConfigEntry) -> list[ConfigSubentry]:
    planner = entry.runtime_data.planner
    if planner is None:
        return []
    return [entry.subentries[device_id] for device_id in planner.thermal]


def thermal_entities(entry: NetbewustConfigEntry, platform: str) -> list[tuple[str, Entity]]:
    """(subentry id, entity) of one platform for every thermally planned heat pump."""
    runtime = entry.runtime_data
    planner = runtime.planner
    entities: list[tuple[str, Entity]] = []
    for subentry in _thermal_subentries(entry):
        assert planner is not None  # a thermal pump exists only with a planner
        made: list[Entity] = []
        if platform == "number":
            made = [ComfortNumber(runtime, planner, subentry, spec) for spec in COMFORT_NUMBERS]
        elif platform == "time":
            made = [ComfortTime(runtime, planner, subentry, key) for key in COMFORT_TIMES]
        elif platform == "switch":
            made = [
                PauseSteeringSwitch(runtime, planner, subentry, "pause_steering"),
                ComfortNowSwitch(runtime, planner, subentry, "comfort_now"),
            ]
        elif platform == "sensor":
            made = [
                ExpectedIndoorSensor(
                    runtime,
                    planner,
                    SensorEntityDescription(
                        key="expected_indoor_temperature",
                        translation_key="expected_indoor_temperature",
                    ),
                    subentry,
                ),
                ThermalModelSensor(
                    runtime,
                    planner,
                    SensorEntityDescription(key="thermal_model", translation_key="thermal_model"),
                    subentry,
                ),
            ]
        entities.extend((subentry.subentry_id, entity) for entity in made)
    return entities
