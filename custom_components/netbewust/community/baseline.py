"""The household's day-ahead baseline: expected grid power for the next 96 quarter hours.

In order of preference: the planner's plan (import minus export per quarter hour,
filled beyond its horizon by the planner's forecasts), the base-load profile built
from recorder statistics, or a flat estimate, which `BaselineSource` says it is.

The baseline is what the community cannot move (`CollectiveHousehold.baseline_w`): the
plan's cars and batteries are left out of it, because the capabilities offer them to
the community separately (envelopes, battery) and the collective plan places them
itself; counted in both, they would be planned twice. The heat pumps' planned runs stay
in: their starts are the household's own decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ..core.protocol.messages import BaselineForecast
from ..core.timegrid import QUARTER, floor_to_quarter_hour
from ..planner.config import parse_planner_config
from ..planner.forecast_source import ForecastSource

if TYPE_CHECKING:
    from datetime import datetime

    from homeassistant.core import HomeAssistant

    from ..core.planning.problem import PlanStep
    from ..guard.runtime import NetbewustRuntime
    from ..planner.forecast_source import Forecasts

BASELINE_STEPS = 96
# The forecast source's note when it had no statistics and assumed a flat base load.
_FLAT_NOTE = "base load: no statistics"


class BaselineSource(StrEnum):
    PLAN = "plan"
    BASE_LOAD_PROFILE = "base_load_profile"
    FLAT_ESTIMATE = "flat_estimate"


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
        expected = _net_w(forecasts)
        kind = (
            BaselineSource.FLAT_ESTIMATE
            if any(note.startswith(_FLAT_NOTE) for note in forecasts.notes)
            else BaselineSource.BASE_LOAD_PROFILE
        )
        if planner is not None and planner.plan is not None:
            planned = {step.start: inflexible_w(step) for step in planner.plan.steps}
            times = [start + QUARTER * index for index in range(BASELINE_STEPS)]
            if any(moment in planned for moment in times):
                kind = BaselineSource.PLAN
                expected = [planned.get(moment, expected[i]) for i, moment in enumerate(times)]
        return BaselineForecast(start=start, power_w=tuple(expected)), kind

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


def inflexible_w(step: PlanStep) -> float:
    """The step's planned grid power without its cars and batteries."""
    flexible = sum(car.charge_w - car.discharge_w for car in step.chargers.values()) + sum(
        battery.charge_w - battery.discharge_w for battery in step.batteries.values()
    )
    return step.import_w - step.export_w - flexible


def _net_w(forecasts: Forecasts) -> list[float]:
    return [
        base - pv
        for base, pv in zip(
            forecasts.base_load_w[:BASELINE_STEPS], forecasts.pv_w[:BASELINE_STEPS], strict=False
        )
    ]


def differs(old: BaselineForecast, new: BaselineForecast, tolerance_w: float) -> bool:
    """True when any quarter hour both cover moved by more than `tolerance_w`."""
    shift = int((new.start - old.start) / QUARTER)
    if shift < 0:
        return True
    overlap = zip(old.power_w[shift:], new.power_w, strict=False)
    return any(abs(a - b) > tolerance_w for a, b in overlap)
