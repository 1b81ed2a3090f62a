"""The household's day-ahead baseline from Home Assistant's planner and recorder.

In order of preference: the planner's plan (filled beyond its horizon by the planner's
forecasts), the base-load profile built from recorder statistics, or a flat estimate,
which `BaselineSource` says it is. This module only fetches them; the session's
`day_ahead_baseline` makes the baseline: what the community cannot move, without the
plan's cars and batteries (the capabilities offer those separately; counted in both,
they would be planned twice). The heat pumps' planned runs stay in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ..core.protocol.session import BASELINE_STEPS, BaselineSource, day_ahead_baseline
from ..core.timegrid import floor_to_quarter_hour
from ..planner.config import parse_planner_config
from ..planner.forecast_source import ForecastSource

if TYPE_CHECKING:
    from datetime import datetime

    from homeassistant.core import HomeAssistant

    from ..core.protocol.messages import BaselineForecast
    from ..guard.runtime import NetbewustRuntime
    from ..planner.forecast_source import Forecasts

# The forecast source's note when it had no statistics and assumed a flat base load.
_FLAT_NOTE = "base load: no statistics"


@dataclass(slots=True)
class BaselineBuilder:
    """Builds baselines for one connection; keeps its own base-load source when unplanned."""

    hass: HomeAssistant
    _own_source: ForecastSource | None = field(default=None, init=False)

    async def async_build(
        self, runtime: NetbewustRuntime, now: datetime
    ) -> tuple[BaselineForecast, BaselineSource]:
        start = floor_to_quarter_hour(now)
        planner = runtime.planner
        source = planner.forecasts if planner is not None else self._source(runtime)
        forecasts = await source.async_forecasts(start, BASELINE_STEPS)
        plan = planner.plan if planner is not None else None
        return day_ahead_baseline(
            now,
            _net_w(forecasts),
            flat=any(note.startswith(_FLAT_NOTE) for note in forecasts.notes),
            plan=plan.steps if plan is not None else (),
        )

    def _source(self, runtime: NetbewustRuntime) -> ForecastSource:
        if self._own_source is None or self._own_source.meter is not runtime.config.meter:
            # Defaults: no PV forecast or weather entity, so only the base load is used.
            self._own_source = ForecastSource(
                self.hass,
                runtime.config.meter,
                parse_planner_config({}),
                ZoneInfo(self.hass.config.time_zone),
            )
        return self._own_source


def _net_w(forecasts: Forecasts) -> list[float]:
    return [
        base - pv
        for base, pv in zip(
            forecasts.base_load_w[:BASELINE_STEPS], forecasts.pv_w[:BASELINE_STEPS], strict=False
        )
    ]
