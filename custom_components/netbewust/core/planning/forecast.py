"""Plain forecasts: base load per weekday and quarter hour, heat demand by degree days.

The Home Assistant glue feeds these from recorder statistics and weather entities;
the community server and the simulator feed them from their own data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..timegrid import QUARTERS_PER_DAY, QUARTERS_PER_HOUR, as_utc
from .problem import HeatPumpDay

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date, datetime, timedelta
    from zoneinfo import ZoneInfo

    from ..timegrid import DayWindow

SLOTS = 7 * QUARTERS_PER_DAY


class ForecastError(ValueError):
    """Forecast input that cannot be used."""


def _slot(moment: datetime, zone: ZoneInfo) -> int:
    """Local weekday and quarter hour: 0 is Monday 00:00-00:15."""
    local = as_utc(moment).astimezone(zone)
    return local.weekday() * QUARTERS_PER_DAY + local.hour * QUARTERS_PER_HOUR + local.minute // 15


@dataclass(frozen=True, slots=True)
class BaseLoadProfile:
    """Mean base load (W) per local weekday and quarter hour."""

    zone: ZoneInfo
    values_w: tuple[float, ...]  # SLOTS values, Monday 00:00 first

    def forecast(self, start: datetime, n_steps: int, step: timedelta) -> tuple[float, ...]:
        return tuple(self.values_w[_slot(start + i * step, self.zone)] for i in range(n_steps))


def base_load_profile(samples: Iterable[tuple[datetime, float]], zone: ZoneInfo) -> BaseLoadProfile:
    """Average samples (timestamp, W) per slot; empty slots take the same quarter hour's
    mean over all weekdays, then the overall mean. Non-finite or negative samples are
    skipped (meters report glitches)."""
    sums = np.zeros(SLOTS)
    counts = np.zeros(SLOTS)
    for moment, power_w in samples:
        if not (math.isfinite(power_w) and power_w >= 0):
            continue
        slot = _slot(moment, zone)
        sums[slot] += power_w
        counts[slot] += 1
    if not counts.any():
        raise ForecastError("no usable base load samples")
    profile = np.divide(sums, counts, out=np.full(SLOTS, np.nan), where=counts > 0)
    by_quarter = sums.reshape(7, QUARTERS_PER_DAY).sum(0)
    quarter_counts = counts.reshape(7, QUARTERS_PER_DAY).sum(0)
    quarter_mean = np.divide(
        by_quarter, quarter_counts, out=np.full(QUARTERS_PER_DAY, np.nan), where=quarter_counts > 0
    )
    overall = float(sums.sum() / counts.sum())
    filler = np.tile(np.where(np.isnan(quarter_mean), overall, quarter_mean), 7)
    profile = np.where(np.isnan(profile), filler, profile)
    return BaseLoadProfile(zone, tuple(float(v) for v in profile))


@dataclass(frozen=True, slots=True, kw_only=True)
class DegreeDayModel:
    """Daily heat need (Wh) = per_degree_day_wh x max(0, base - mean outdoor temp) + fixed.

    `fixed_wh` covers hot water and losses that do not depend on the weather.
    """

    base_temperature_c: float = 18.0
    per_degree_day_wh: float = 6000.0
    fixed_wh: float = 0.0

    def __post_init__(self) -> None:
        values = (self.base_temperature_c, self.per_degree_day_wh, self.fixed_wh)
        if not all(math.isfinite(v) for v in values):
            raise ForecastError("degree-day parameters must be numbers")
        if self.per_degree_day_wh < 0 or self.fixed_wh < 0:
            raise ForecastError("degree-day parameters must be >= 0")

    def heat_need_wh(self, mean_temperature_c: float) -> float:
        degree_days = max(0.0, self.base_temperature_c - mean_temperature_c)
        return self.per_degree_day_wh * degree_days + self.fixed_wh


def calibrate_degree_days(
    observations: Iterable[tuple[float, float]], base_temperature_c: float = 18.0
) -> DegreeDayModel:
    """Least-squares fit on (daily mean temperature, measured daily heat in Wh) pairs.

    Needs at least two days with different degree days; slopes and offsets that come
    out negative are clipped to zero and the other parameter refitted.
    """
    rows = [(t, heat) for t, heat in observations if math.isfinite(t) and math.isfinite(heat)]
    degree_days = np.array([max(0.0, base_temperature_c - t) for t, _ in rows])
    heat = np.array([h for _, h in rows])
    if len(rows) < 2 or np.ptp(degree_days) == 0:
        raise ForecastError("calibration needs two or more days with different temperatures")
    design = np.column_stack([degree_days, np.ones(len(rows))])
    (slope, offset), *_ = np.linalg.lstsq(design, heat, rcond=None)
    if offset < 0:
        slope, offset = float(degree_days @ heat / (degree_days @ degree_days)), 0.0
    if slope < 0:
        slope, offset = 0.0, float(heat.mean())
    return DegreeDayModel(
        base_temperature_c=base_temperature_c,
        per_degree_day_wh=max(0.0, float(slope)),
        fixed_wh=max(0.0, float(offset)),
    )


def daily_mean_temperatures(
    forecast: Iterable[tuple[datetime, float]], zone: ZoneInfo
) -> dict[date, float]:
    """Mean of the forecast temperatures (deg C) per local day, ignoring non-numbers."""
    sums: dict[date, list[float]] = {}
    for moment, temperature in forecast:
        if math.isfinite(temperature):
            sums.setdefault(as_utc(moment).astimezone(zone).date(), []).append(temperature)
    return {day: sum(values) / len(values) for day, values in sums.items()}


def heat_pump_days(
    windows: Iterable[DayWindow], heat_need_wh: dict[date, float], max_starts: int
) -> tuple[HeatPumpDay, ...]:
    """Heat pump days for a horizon; a day cut off by the horizon gets its share of the need.

    Days without a heat figure (no temperature forecast) are left out: the planner then
    leaves the heat pump to its own thermostat on those days.
    """
    days = []
    for window in windows:
        need = heat_need_wh.get(window.day)
        if need is not None:
            days.append(
                HeatPumpDay(
                    start_step=window.start_step,
                    end_step=window.end_step,
                    heat_need_wh=need * window.fraction,
                    max_starts=max_starts,
                )
            )
    return tuple(days)
