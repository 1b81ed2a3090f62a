"""The members' daily load from the daily mean outdoor temperature (issue 14).

The pilot forecast the neighbourhood's load from the day's mean outdoor temperature. Here
that relation is a heating-degree model, per day:

    energy_kwh     = members * base_kwh     + heat_pumps * kwh_per_degree_day * HDD
    evening_peak_w = members * base_peak_w  + heat_pumps * peak_w_per_degree  * HDD

with HDD = max(0, balance_c - mean outdoor temperature). It is learned from the stored
daily aggregates (`DailyLoad`) once `MIN_DAYS` days with a temperature exist: a robust
(Huber) least-squares fit for each balance temperature on a grid with `MIN_WARM_DAYS`
days at or above it (none: the default balance), the best one kept; coefficients are
never negative. Before that, and for a slope the days cannot show
(no heat pump, fewer than `MIN_COLD_DAYS` heating days or less than
`MIN_DEGREE_SPREAD_K` between them), the documented defaults (`DEFAULT_MODEL`) hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from ..units import MAX_OUTDOOR_C, MIN_OUTDOOR_C

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_MODEL",
    "MIN_DAYS",
    "DailyLoad",
    "DayForecast",
    "ModelSource",
    "TemperatureForecastError",
    "TemperatureModel",
    "fit_temperature_model",
    "forecast_day",
]

MIN_DAYS = 14  # days with a temperature before the fit replaces the defaults
BALANCE_GRID_C = tuple(np.arange(12.0, 20.01, 0.5).tolist())
MAX_MEMBERS = 100_000
MAX_KWH_PER_MEMBER_DAY = 24 * 100.0  # a 100 kW connection flat out all day
# A slope is learned only from this many heating days spanning this many degrees.
MIN_COLD_DAYS = 7
MIN_DEGREE_SPREAD_K = 5.0
# A balance temperature is learned only with this many days at or above it (else the
# base load and the balance cannot be told apart: the default balance holds).
MIN_WARM_DAYS = 3
HUBER_K = 1.345  # the usual 95 %-efficiency constant, in robust standard deviations
IRLS_ROUNDS = 30


class TemperatureForecastError(ValueError):
    """A daily aggregate or forecast input that does not validate."""


class ModelSource(StrEnum):
    DEFAULT = "default"  # too few days: the documented defaults
    FITTED = "fitted"  # learned from the stored days


@dataclass(frozen=True, slots=True, kw_only=True)
class TemperatureModel:
    """The heating-degree relation; `days` is how many days it was learned from."""

    balance_c: float
    base_kwh: float  # per member and day
    kwh_per_degree_day: float  # per heat pump and heating degree day
    base_peak_w: float  # per member, the evening peak
    peak_w_per_degree: float  # per heat pump and heating degree
    source: ModelSource = ModelSource.DEFAULT
    days: int = 0


# Defaults before there is history. 18 C is the Dutch degree-day base. A member uses
# about 2,900 kWh a year (8 kWh a day) and adds about 1 kW to the evening peak after
# diversity. A heat pump's home losing about 200 W/K needs 4.8 kWh of heat per degree
# day: 1.6 kWh electric at a COP of 3, rounded to 1.5; in the evening it draws about
# 90 W per degree (2.5 kW at -10 C).
DEFAULT_MODEL = TemperatureModel(
    balance_c=18.0, base_kwh=8.0, kwh_per_degree_day=1.5, base_peak_w=1000.0, peak_w_per_degree=90.0
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyLoad:
    """One day of a transformer's members: how many reported, how many have a heat pump,
    their summed energy and evening peak, and the day's mean outdoor temperature (None:
    unknown; such a day is kept but not learned from)."""

    day: date
    members: int
    heat_pumps: int
    energy_kwh: float
    evening_peak_w: float
    mean_outdoor_c: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.heat_pumps <= self.members * 4 <= MAX_MEMBERS * 4:
            raise TemperatureForecastError(
                f"{self.day}: members and heat pumps must be within [0, {MAX_MEMBERS}]"
                " with at most four pumps a member"
            )
        _check(self.energy_kwh, "energy_kwh", 0.0, self.members * MAX_KWH_PER_MEMBER_DAY)
        _check(self.evening_peak_w, "evening_peak_w", 0.0, self.members * 100_000.0)
        if self.mean_outdoor_c is not None:
            _check(self.mean_outdoor_c, "mean_outdoor_c", MIN_OUTDOOR_C, MAX_OUTDOOR_C)


@dataclass(frozen=True, slots=True)
class DayForecast:
    energy_kwh: float
    evening_peak_w: float
    model: TemperatureModel


def _check(value: float, name: str, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise TemperatureForecastError(f"{name} must be within [{low}, {high}], got {value!r}")


def forecast_day(
    model: TemperatureModel, *, members: int, heat_pumps: int, mean_outdoor_c: float
) -> DayForecast:
    """The members' energy and evening peak on a day of this mean outdoor temperature."""
    if not 0 <= heat_pumps <= members * 4 <= MAX_MEMBERS * 4:
        raise TemperatureForecastError("members and heat pumps out of range")
    _check(mean_outdoor_c, "mean_outdoor_c", MIN_OUTDOOR_C, MAX_OUTDOOR_C)
    degrees = max(0.0, model.balance_c - mean_outdoor_c)
    return DayForecast(
        energy_kwh=members * model.base_kwh + heat_pumps * model.kwh_per_degree_day * degrees,
        evening_peak_w=members * model.base_peak_w + heat_pumps * model.peak_w_per_degree * degrees,
        model=model,
    )


def fit_temperature_model(
    history: Sequence[DailyLoad],
    *,
    default: TemperatureModel = DEFAULT_MODEL,
    min_days: int = MIN_DAYS,
) -> TemperatureModel:
    """The model learned from `history` (days with a temperature and members), or
    `default` before `min_days` such days."""
    days = [d for d in history if d.mean_outdoor_c is not None and d.members > 0]
    if len({d.day for d in days}) != len(days):
        raise TemperatureForecastError("one aggregate per day")
    if len(days) < min_days:
        return default
    members = np.array([d.members for d in days], dtype=float)
    pumps = np.array([d.heat_pumps for d in days], dtype=float)
    outdoor = np.array([d.mean_outdoor_c or 0.0 for d in days])
    energy = np.array([d.energy_kwh for d in days])
    peak = np.array([d.evening_peak_w for d in days])
    best: tuple[float, float, NDArray[np.float64]] | None = None
    balances = [b for b in BALANCE_GRID_C if (outdoor >= b).sum() >= MIN_WARM_DAYS]
    for balance in balances or [default.balance_c]:
        degrees = pumps * np.maximum(0.0, balance - outdoor)
        coefficients, loss = _huber_fit(
            members,
            degrees,
            energy / members.mean(),
            default.kwh_per_degree_day,
            learn_slope=_shows_slope(balance, outdoor, pumps),
        )
        if best is None or loss < best[1] - 1e-12:
            best = (balance, loss, coefficients)
    assert best is not None  # the grid is never empty
    balance, _loss, (base_kwh, slope_kwh) = best
    degrees = pumps * np.maximum(0.0, balance - outdoor)
    (base_peak, slope_peak), _ = _huber_fit(
        members,
        degrees,
        peak / members.mean(),
        default.peak_w_per_degree,
        learn_slope=_shows_slope(balance, outdoor, pumps),
    )
    scale = float(members.mean())
    return replace(
        default,
        balance_c=balance,
        base_kwh=float(base_kwh * scale),
        kwh_per_degree_day=float(slope_kwh * scale),
        base_peak_w=float(base_peak * scale),
        peak_w_per_degree=float(slope_peak * scale),
        source=ModelSource.FITTED,
        days=len(days),
    )


def _shows_slope(
    balance_c: float, outdoor: NDArray[np.float64], pumps: NDArray[np.float64]
) -> bool:
    """Whether the days can show a heat pump's slope below `balance_c`: pumps, and
    `MIN_COLD_DAYS` heating days spanning `MIN_DEGREE_SPREAD_K`."""
    degrees = np.maximum(0.0, balance_c - outdoor)
    heating = degrees > 0
    return bool(
        pumps.any()
        and heating.sum() >= MIN_COLD_DAYS
        and float(degrees.max() - degrees.min()) >= MIN_DEGREE_SPREAD_K
    )


def _huber_fit(
    members: NDArray[np.float64],
    degrees: NDArray[np.float64],
    target: NDArray[np.float64],
    default_slope: float,
    *,
    learn_slope: bool,
) -> tuple[NDArray[np.float64], float]:
    """Non-negative Huber regression of `target` on (members, degrees), no intercept;
    without `learn_slope` the slope is the default. Returns the coefficients (scaled
    like `target`) and the sum of absolute residuals."""
    scale = members.mean()
    fixed = np.zeros_like(target) if learn_slope else degrees * default_slope / scale
    design = np.column_stack((members, degrees) if learn_slope else (members,))
    rhs = target - fixed
    weights = np.ones_like(target)
    coefficients = np.zeros(design.shape[1])
    for _round in range(IRLS_ROUNDS):
        root = np.sqrt(weights)
        solved, *_ = np.linalg.lstsq(design * root[:, None], rhs * root, rcond=None)
        coefficients = np.maximum(solved, 0.0)
        residual = rhs - design @ coefficients
        spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
        if spread <= 1e-12:
            break
        limit = HUBER_K * spread
        weights = np.minimum(1.0, limit / np.maximum(np.abs(residual), 1e-12))
    # Balance temperatures are compared on absolute residuals: robust, and on one scale.
    loss = float(np.abs(rhs - design @ coefficients).sum())
    if not learn_slope:
        coefficients = np.array([coefficients[0], default_slope / scale])
    return coefficients, loss
