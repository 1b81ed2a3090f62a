"""The home's own R and C from the recorder: hourly means of the indoor and outdoor
temperature and the heat pump's power, fitted by the engine (core/thermal/fit.py).

The fit is used only when it is good (one-step RMS error at most 0.5 K); otherwise, or
without the statistics, the building type's defaults are. The planner refits daily.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.thermal import CopModel, FitResult, default_parameters, fit_parameters

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from homeassistant.core import HomeAssistant

    from .thermal import ThermalConfig

HISTORY = timedelta(weeks=4)
HOUR = timedelta(hours=1)
REFIT_INTERVAL = timedelta(hours=24)


def defaults_result(config: ThermalConfig, reason: str) -> FitResult:
    return FitResult(default_parameters(config.building, config.era), False, None, 0, reason)


def hourly_arrays(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], entity_ids: Sequence[str]
) -> list[list[float]]:
    """One list per entity of hourly means on a common grid from the first to the last
    hour any of them has; NaN where an entity has no mean for the hour."""
    by_entity: dict[str, dict[float, float]] = {}
    for entity_id in entity_ids:
        values = by_entity.setdefault(entity_id, {})
        for row in rows.get(entity_id, []):
            mean, start = row.get("mean"), row.get("start")
            if isinstance(mean, int | float) and isinstance(start, int | float):
                values[float(start)] = float(mean)
    starts = sorted({start for values in by_entity.values() for start in values})
    if not starts:
        return [[] for _ in entity_ids]
    hours = int((starts[-1] - starts[0]) // HOUR.total_seconds()) + 1
    return [
        [
            by_entity[entity_id].get(starts[0] + h * HOUR.total_seconds(), math.nan)
            for h in range(hours)
        ]
        for entity_id in entity_ids
    ]


def fit_from_rows(
    config: ThermalConfig,
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    indoor_entity: str,
    power_entity: str,
) -> FitResult:
    """The engine's fit on the recorder's rows (runs in the executor)."""
    indoor, outdoor, power = hourly_arrays(
        rows, (indoor_entity, config.outdoor_entity, power_entity)
    )
    return fit_parameters(
        indoor_c=np.array(indoor, dtype=float),
        outdoor_c=np.array(outdoor, dtype=float),
        electric_w=np.array(power, dtype=float),
        step_hours=1.0,
        cop=CopModel(),
        defaults=default_parameters(config.building, config.era),
    )


async def async_fit(hass: HomeAssistant, config: ThermalConfig, now: datetime) -> FitResult:
    """Fetch four weeks of hourly means and fit; the defaults when anything is missing."""
    indoor_entity, power_entity = config.indoor_entity, config.power_entity
    if indoor_entity is None or power_entity is None:
        return defaults_result(config, "no indoor temperature or power sensor")
    if config.outdoor_is_weather:
        return defaults_result(config, "a weather entity has no statistics to fit on")
    if "recorder" not in hass.config.components:
        return defaults_result(config, "the recorder is not running")
    # Imported here: the recorder is an after-dependency, not a requirement.
    from homeassistant.components.recorder.statistics import statistics_during_period
    from homeassistant.helpers.recorder import get_instance

    entity_ids = {indoor_entity, config.outdoor_entity, power_entity}
    instance = get_instance(hass)
    rows = await instance.async_add_executor_job(
        statistics_during_period,
        hass,
        now - HISTORY,
        now,
        entity_ids,
        "hour",
        {"temperature": "°C", "power": "W"},
        {"mean"},
    )
    return await hass.async_add_executor_job(
        fit_from_rows, config, rows, indoor_entity, power_entity
    )
