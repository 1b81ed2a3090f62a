"""The members' daily load from the daily mean outdoor temperature (issue 14)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbewust_core.collective.temperature_forecast import (
    DEFAULT_MODEL,
    MIN_DAYS,
    DailyLoad,
    ModelSource,
    TemperatureForecastError,
    TemperatureModel,
    fit_temperature_model,
    forecast_day,
)

FIRST = date(2026, 10, 1)
TRUE = TemperatureModel(
    balance_c=16.0,
    base_kwh=9.0,
    kwh_per_degree_day=2.0,
    base_peak_w=1200.0,
    peak_w_per_degree=110.0,
)


def history(
    days: int, *, seed: int = 1, temperatures: tuple[float, float] = (-6.0, 16.0)
) -> list[DailyLoad]:
    """Days of a street of about 250 homes and 97 pumps following `TRUE`, with 3 % noise."""
    rng = random.Random(seed)
    loads = []
    for number in range(days):
        members = 250 - rng.randrange(0, 5)
        pumps = 97
        outdoor = rng.uniform(*temperatures)
        expected = forecast_day(TRUE, members=members, heat_pumps=pumps, mean_outdoor_c=outdoor)
        loads.append(
            DailyLoad(
                day=FIRST + timedelta(days=number),
                members=members,
                heat_pumps=pumps,
                energy_kwh=expected.energy_kwh * rng.gauss(1.0, 0.03),
                evening_peak_w=expected.evening_peak_w * rng.gauss(1.0, 0.03),
                mean_outdoor_c=round(outdoor, 1),
            )
        )
    return loads


def test_the_documented_defaults_hold_before_there_is_history() -> None:
    assert fit_temperature_model(history(MIN_DAYS - 1)) == DEFAULT_MODEL
    # Days without a temperature do not count.
    unknown = [replace(d, mean_outdoor_c=None) for d in history(40)]
    assert fit_temperature_model(unknown).source is ModelSource.DEFAULT
    cold = forecast_day(DEFAULT_MODEL, members=255, heat_pumps=97, mean_outdoor_c=-3.0)
    assert cold.energy_kwh == pytest.approx(255 * 8.0 + 97 * 1.5 * 21.0)
    assert cold.evening_peak_w == pytest.approx(255 * 1000.0 + 97 * 90.0 * 21.0)


def test_the_relation_is_learned_from_the_stored_days() -> None:
    model = fit_temperature_model(history(90))
    assert model.source is ModelSource.FITTED
    assert model.days == 90
    assert model.balance_c == pytest.approx(16.0, abs=1.0)
    assert model.base_kwh == pytest.approx(9.0, rel=0.1)
    assert model.kwh_per_degree_day == pytest.approx(2.0, rel=0.1)
    assert model.peak_w_per_degree == pytest.approx(110.0, rel=0.15)
    cold = forecast_day(model, members=250, heat_pumps=97, mean_outdoor_c=-4.0)
    truth = forecast_day(TRUE, members=250, heat_pumps=97, mean_outdoor_c=-4.0)
    assert cold.energy_kwh == pytest.approx(truth.energy_kwh, rel=0.03)
    assert cold.evening_peak_w == pytest.approx(truth.evening_peak_w, rel=0.03)


def test_a_few_broken_days_do_not_move_it() -> None:
    days = history(60)
    clean = fit_temperature_model(days)
    broken = [  # a meter outage (nothing) and a metering error (five times) on six days
        replace(d, energy_kwh=d.energy_kwh * (0.0 if n % 2 else 5.0)) if n < 6 else d
        for n, d in enumerate(days)
    ]
    robust = fit_temperature_model(broken)
    assert robust.kwh_per_degree_day == pytest.approx(clean.kwh_per_degree_day, rel=0.1)
    assert robust.base_kwh == pytest.approx(clean.base_kwh, rel=0.1)


def test_without_cold_days_the_slope_keeps_its_default() -> None:
    model = fit_temperature_model(history(30, temperatures=(19.0, 25.0)))
    assert model.source is ModelSource.FITTED
    assert model.kwh_per_degree_day == DEFAULT_MODEL.kwh_per_degree_day
    assert model.base_kwh == pytest.approx(9.0, rel=0.05)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"energy_kwh": float("nan")}, "energy_kwh"),
        ({"energy_kwh": -1.0}, "energy_kwh"),
        ({"evening_peak_w": float("inf")}, "evening_peak_w"),
        ({"mean_outdoor_c": 99.0}, "mean_outdoor_c"),
        ({"mean_outdoor_c": float("nan")}, "mean_outdoor_c"),
        ({"heat_pumps": 5, "members": 1}, "heat pumps"),
        ({"members": -1}, "members"),
    ],
)
def test_bad_aggregates_are_refused(changes: dict[str, object], field: str) -> None:
    values: dict[str, object] = {
        "day": FIRST,
        "members": 10,
        "heat_pumps": 3,
        "energy_kwh": 100.0,
        "evening_peak_w": 12_000.0,
        "mean_outdoor_c": 4.0,
        **changes,
    }
    with pytest.raises(TemperatureForecastError, match=field):
        DailyLoad(**values)  # type: ignore[arg-type]


def test_bad_forecast_inputs_and_duplicate_days_are_refused() -> None:
    with pytest.raises(TemperatureForecastError, match="mean_outdoor_c"):
        forecast_day(DEFAULT_MODEL, members=10, heat_pumps=2, mean_outdoor_c=float("nan"))
    with pytest.raises(TemperatureForecastError, match="heat pumps"):
        forecast_day(DEFAULT_MODEL, members=1, heat_pumps=9, mean_outdoor_c=0.0)
    days = history(MIN_DAYS)
    with pytest.raises(TemperatureForecastError, match="one aggregate per day"):
        fit_temperature_model([*days, days[0]])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    days=st.integers(MIN_DAYS, 60),
    low=st.floats(-15.0, 10.0),
    width=st.floats(0.0, 20.0),
)
def test_a_learned_model_never_goes_negative_nor_up_with_warmth(
    seed: int, days: int, low: float, width: float
) -> None:
    model = fit_temperature_model(history(days, seed=seed, temperatures=(low, low + width)))
    for value in (
        model.base_kwh,
        model.kwh_per_degree_day,
        model.base_peak_w,
        model.peak_w_per_degree,
    ):
        assert value >= 0.0
    loads = [
        forecast_day(model, members=100, heat_pumps=40, mean_outdoor_c=t).energy_kwh
        for t in (-10.0, 0.0, 10.0, 20.0)
    ]
    assert loads == sorted(loads, reverse=True)


def test_without_days_above_it_the_balance_keeps_its_default() -> None:
    # Every day a heating day: the base load and the balance cannot be told apart.
    model = fit_temperature_model(history(40, temperatures=(-6.0, 8.0)))
    assert model.balance_c == DEFAULT_MODEL.balance_c
    assert model.kwh_per_degree_day == pytest.approx(2.0, rel=0.1)
    cold = forecast_day(model, members=250, heat_pumps=97, mean_outdoor_c=-4.0)
    truth = forecast_day(TRUE, members=250, heat_pumps=97, mean_outdoor_c=-4.0)
    assert cold.energy_kwh == pytest.approx(truth.energy_kwh, rel=0.03)
