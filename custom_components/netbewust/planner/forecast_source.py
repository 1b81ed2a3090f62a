"""Forecasts from Home Assistant: base load from recorder statistics, PV from a
forecast entity (Forecast.Solar through its energy platform, or a Solcast-style
forecast list), heat demand from a weather entity's temperature forecast.

Each source may be missing or broken; the planner then uses a stated default (a flat
base load, no PV, the heat pump left to its thermostat) and `notes` says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.loader import IntegrationNotFound, async_get_integration
from homeassistant.util import dt as dt_util

from ..const import LOGGER
from ..core.planning.forecast import (
    BaseLoadProfile,
    ForecastError,
    base_load_profile,
    daily_mean_temperatures,
)
from ..core.timegrid import QUARTER, as_utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from zoneinfo import ZoneInfo

    from homeassistant.core import HomeAssistant

    from ..guard.meter import MeterEntities
    from .config import PlannerConfig

HISTORY = timedelta(weeks=4)
PROFILE_MAX_AGE = timedelta(hours=24)
DEFAULT_BASE_LOAD_W = 400.0
# Solcast-style lists: period start and kW.
PV_LIST_ATTRIBUTES = ("detailedForecast", "forecast")
FORECAST_SOLAR = "forecast_solar"
# Forecast.Solar periods are at most an hour (shorter at sunrise and sunset).
MAX_ENERGY_PERIOD = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Forecasts:
    base_load_w: tuple[float, ...]
    pv_w: tuple[float, ...]
    heat_need_wh: Mapping[date, float]
    notes: tuple[str, ...] = ()
    # Configured forecast entities that gave nothing: the planner's repair issue names them.
    missing_entities: tuple[str, ...] = ()


def meter_net_samples(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], imports: Iterable[str], exports: Iterable[str]
) -> list[tuple[datetime, float]]:
    """Net import (W) per hour from hourly mean statistics, as four quarter-hour samples.

    Hours missing any of the import entities are skipped: a partial sum is not the load.
    """
    imports, exports = tuple(imports), tuple(exports)
    by_hour: dict[float, dict[str, float]] = {}
    for statistic_id in (*imports, *exports):
        for row in rows.get(statistic_id, []):
            mean = row.get("mean")
            start = row.get("start")
            if isinstance(mean, int | float) and isinstance(start, int | float):
                by_hour.setdefault(float(start), {})[statistic_id] = float(mean)
    samples: list[tuple[datetime, float]] = []
    for start, values in sorted(by_hour.items()):
        if not all(entity_id in values for entity_id in imports):
            continue
        net = sum(values[e] for e in imports) - sum(values.get(e, 0.0) for e in exports)
        moment = datetime.fromtimestamp(start, tz=dt_util.UTC)
        samples.extend((moment + i * QUARTER, net) for i in range(4))
    return samples


def pv_series(
    attributes: Mapping[str, Any], start: datetime, n_steps: int
) -> tuple[float, ...] | None:
    """PV (W) per quarter hour from a forecast list of `period_start` and `pv_estimate` (kW).

    Each value holds until the next period; steps outside the list are 0 W (night).
    """
    entries = next((attributes[a] for a in PV_LIST_ATTRIBUTES if a in attributes), None)
    if not isinstance(entries, list):
        return None
    periods: list[tuple[datetime, float]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        moment = dt_util.parse_datetime(str(entry.get("period_start", entry.get("datetime"))))
        kw = entry.get("pv_estimate")
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            continue
        if isinstance(kw, int | float) and math.isfinite(kw) and kw >= 0:
            periods.append((as_utc(moment), float(kw) * 1000))
    if not periods:
        return None
    periods.sort()
    length = periods[1][0] - periods[0][0] if len(periods) > 1 else timedelta(minutes=30)
    values = []
    for i in range(n_steps):
        moment = as_utc(start) + i * QUARTER
        value = 0.0
        for period_start, watts in periods:
            if period_start <= moment < period_start + length:
                value = watts
        values.append(value)
    return tuple(values)


def energy_periods_to_power(
    wh_by_period_end: Mapping[str, Any], start: datetime, n_steps: int
) -> tuple[float, ...] | None:
    """Mean PV power (W) per quarter hour from energies (Wh) keyed by ISO period end.

    Forecast.Solar's convention: the value at 08:00 is what 07:00-08:00 yields, and the
    day's first key (sunrise) carries 0. A period runs from the previous key, but never
    more than an hour, so a day's first period is not smeared over the night. Energy is
    spread evenly over its period; quarters outside every period are 0 W.
    """
    ends: list[tuple[datetime, float]] = []
    for key, energy in wh_by_period_end.items():
        moment = dt_util.parse_datetime(str(key))
        if moment is None or moment.tzinfo is None:
            continue
        if isinstance(energy, int | float) and math.isfinite(energy) and energy >= 0:
            ends.append((as_utc(moment), float(energy)))
    if not ends:
        return None
    ends.sort()
    origin = as_utc(start)
    power = [0.0] * n_steps
    previous: datetime | None = None
    for end, energy_wh in ends:
        begin = (
            end - MAX_ENERGY_PERIOD if previous is None else max(previous, end - MAX_ENERGY_PERIOD)
        )
        previous = end
        if energy_wh == 0 or end <= begin:
            continue
        _spread(power, origin, begin, end, energy_wh)
    return tuple(power)


def _spread(
    power: list[float], origin: datetime, begin: datetime, end: datetime, wh: float
) -> None:
    """Add `wh`, evenly spread over [begin, end), to the quarter-hour mean powers."""
    watts = wh / ((end - begin) / timedelta(hours=1))
    first = max(0, math.floor((begin - origin) / QUARTER))
    last = min(len(power), math.ceil((end - origin) / QUARTER))
    for index in range(first, last):
        quarter_start = origin + index * QUARTER
        overlap = min(end, quarter_start + QUARTER) - max(begin, quarter_start)
        if overlap > timedelta(0):
            power[index] += watts * (overlap / QUARTER)


def temperature_samples(
    response: Mapping[str, Any], entity_id: str
) -> list[tuple[datetime, float]]:
    """(time, deg C) pairs from a `weather.get_forecasts` response."""
    forecast = response.get(entity_id, {}).get("forecast", [])
    samples = []
    for entry in forecast if isinstance(forecast, list) else []:
        if not isinstance(entry, dict):
            continue
        moment = dt_util.parse_datetime(str(entry.get("datetime")))
        temperature = entry.get("temperature")
        if isinstance(moment, datetime) and isinstance(temperature, int | float):
            samples.append((moment, float(temperature)))
    return samples


async def async_temperature_forecast(
    hass: HomeAssistant, entity_id: str
) -> list[tuple[datetime, float]]:
    """A weather entity's temperature forecast, hourly if it has one, else daily."""
    for kind in ("hourly", "daily"):
        try:
            response = await hass.services.async_call(
                "weather",
                "get_forecasts",
                {"entity_id": entity_id, "type": kind},
                blocking=True,
                return_response=True,
            )
        except (HomeAssistantError, ValueError) as err:
            LOGGER.debug("%s has no %s forecast: %s", entity_id, kind, err)
            continue
        if samples := temperature_samples(response or {}, entity_id):
            return samples
    return []


def is_forecast_solar_entity(hass: HomeAssistant, entity_id: str) -> bool:
    """Whether the entity belongs to a config entry of HA's Forecast.Solar integration."""
    registered = er.async_get(hass).async_get(entity_id)
    if registered is None or registered.config_entry_id is None:
        return False
    entry = hass.config_entries.async_get_entry(registered.config_entry_id)
    return entry is not None and entry.domain == FORECAST_SOLAR


@dataclass(slots=True)
class ForecastSource:
    hass: HomeAssistant
    meter: MeterEntities
    config: PlannerConfig
    zone: ZoneInfo
    _profile: BaseLoadProfile | None = None
    _profile_at: datetime | None = None
    _notes: list[str] = field(default_factory=list)
    _missing: list[str] = field(default_factory=list)

    async def async_forecasts(self, start: datetime, n_steps: int) -> Forecasts:
        self._notes = []
        self._missing = []
        base = await self._base_load(start, n_steps)
        pv = await self._pv(start, n_steps)
        heat = await self._heat_need()
        return Forecasts(base, pv, heat, tuple(self._notes), tuple(self._missing))

    async def _base_load(self, start: datetime, n_steps: int) -> tuple[float, ...]:
        now = dt_util.utcnow()
        if (
            self._profile is None
            or self._profile_at is None
            or now - self._profile_at > (PROFILE_MAX_AGE)
        ):
            self._profile_at = now
            self._profile = await self._load_profile(now)
        if self._profile is None:
            self._notes.append(f"base load: no statistics, {DEFAULT_BASE_LOAD_W:.0f} W assumed")
            return (DEFAULT_BASE_LOAD_W,) * n_steps
        return self._profile.forecast(start, n_steps, QUARTER)

    async def _load_profile(self, now: datetime) -> BaseLoadProfile | None:
        if "recorder" not in self.hass.config.components:
            return None
        # Imported here: the recorder is an after-dependency, not a requirement.
        from homeassistant.components.recorder.statistics import (
            statistics_during_period,
        )
        from homeassistant.helpers.recorder import get_instance

        imports = [p.power_import for p in self.meter.phases if p.power_import]
        exports = [p.power_export for p in self.meter.phases if p.power_export]
        if not imports and self.meter.power_import_total:
            imports = [self.meter.power_import_total]
            exports = [e for e in (self.meter.power_export_total,) if e]
        if not imports:
            return None
        rows = await get_instance(self.hass).async_add_executor_job(
            statistics_during_period,
            self.hass,
            now - HISTORY,
            now,
            {*imports, *exports},
            "hour",
            {"power": "W"},
            {"mean"},
        )
        try:
            return base_load_profile(meter_net_samples(rows, imports, exports), self.zone)
        except ForecastError:
            return None

    async def _pv(self, start: datetime, n_steps: int) -> tuple[float, ...]:
        entity_id = self.config.pv_forecast_entity
        if entity_id is None:
            return (0.0,) * n_steps
        if is_forecast_solar_entity(self.hass, entity_id):
            return await self._forecast_solar(start, n_steps)
        state = self.hass.states.get(entity_id)
        series = pv_series(state.attributes, start, n_steps) if state is not None else None
        if series is None:
            self._notes.append(f"PV: no forecast list on {entity_id}, none assumed")
            self._missing.append(entity_id)
            return (0.0,) * n_steps
        return series

    async def _forecast_solar(self, start: datetime, n_steps: int) -> tuple[float, ...]:
        """Every loaded Forecast.Solar entry summed: one entry per roof plane is common."""
        total = [0.0] * n_steps
        used = 0
        try:
            integration = await async_get_integration(self.hass, FORECAST_SOLAR)
            energy = await integration.async_get_platform("energy")
        except (IntegrationNotFound, ImportError) as err:
            self._notes.append(f"PV: Forecast.Solar unavailable ({err}), none assumed")
            self._missing.append(self.config.pv_forecast_entity or FORECAST_SOLAR)
            return tuple(total)
        for entry in self.hass.config_entries.async_loaded_entries(FORECAST_SOLAR):
            try:
                forecast = await energy.async_get_solar_forecast(self.hass, entry.entry_id)
            except Exception:  # another integration's bug must not stop planning
                LOGGER.exception("Forecast.Solar entry %s failed", entry.title)
                continue
            hours = forecast.get("wh_hours") if isinstance(forecast, dict) else None
            series = energy_periods_to_power(hours, start, n_steps) if hours else None
            if series is not None:
                used += 1
                total = [a + b for a, b in zip(total, series, strict=True)]
        if not used:
            self._notes.append("PV: no Forecast.Solar forecast yet, none assumed")
            self._missing.append(self.config.pv_forecast_entity or FORECAST_SOLAR)
        return tuple(total)

    async def _heat_need(self) -> dict[date, float]:
        entity_id = self.config.weather_entity
        if entity_id is None:
            return {}
        samples = await async_temperature_forecast(self.hass, entity_id)
        if not samples:
            self._notes.append(f"heat: no temperature forecast from {entity_id}")
            self._missing.append(entity_id)
            return {}
        means = daily_mean_temperatures(samples, self.zone)
        return {day: self.config.degree_days.heat_need_wh(t) for day, t in means.items()}
