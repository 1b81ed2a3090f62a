"""The 1R1C thermal model, the thermostat baseline and the fit of R and C from history."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from netbewust_core.thermal import (
    BuildingType,
    CopModel,
    InsulationEra,
    ThermalParameters,
    comfort_band,
    default_parameters,
    fit_parameters,
    simulate_indoor,
    thermostat_run,
)

STEP_H = 0.25
TRUE = ThermalParameters(resistance_k_per_kw=5.0, capacitance_kwh_per_k=8.0, internal_gain_kw=0.3)
COP = CopModel.rated(4.0)


def _history(
    params: ThermalParameters, days: int, noise_k: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A home whose pump switches on and off at random around a wandering set point."""
    rng = np.random.default_rng(seed)
    n = days * 96
    hours = np.arange(n) * STEP_H
    outdoor = 4 + 5 * np.sin(2 * np.pi * hours / 24) + np.cumsum(rng.normal(0, 0.1, n))
    power_w = np.where(rng.random(n) < 0.45, 1500.0, 0.0) * rng.uniform(0.5, 1.0, n)
    heat = power_w / 1000 * np.array([COP.cop(t) for t in outdoor])
    indoor = np.r_[19.0, simulate_indoor(params, STEP_H, 19.0, outdoor, heat)[:-1]]
    return indoor + rng.normal(0, noise_k, n), outdoor, power_w


def test_cop_is_the_rating_at_its_point_and_falls_with_the_cold() -> None:
    assert COP.cop(7.0) == pytest.approx(4.0)
    assert COP.cop(-10.0) < COP.cop(0.0) < COP.cop(7.0)
    assert CopModel(constant=3.2).cop(-10.0) == 3.2


def test_defaults_lose_less_heat_in_newer_and_smaller_homes() -> None:
    old = default_parameters(BuildingType.DETACHED, InsulationEra.BEFORE_1975)
    new = default_parameters(BuildingType.DETACHED, InsulationEra.FROM_2006)
    flat = default_parameters(BuildingType.APARTMENT, InsulationEra.BEFORE_1975)
    assert old.heat_loss_w_per_k > new.heat_loss_w_per_k
    assert old.heat_loss_w_per_k > flat.heat_loss_w_per_k
    assert 10 < old.time_constant_h < new.time_constant_h < 300


def test_thermostat_holds_the_set_point_with_enough_power() -> None:
    n = 96
    outdoor = np.full(n, 0.0)
    run = thermostat_run(
        TRUE,
        STEP_H,
        20.0,
        outdoor_c=outdoor,
        setpoint_c=np.full(n, 20.0),
        cop=np.full(n, 3.0),
        electric_max_kw=np.full(n, 3.0),
    )
    assert np.allclose(run.indoor_c, 20.0)
    # Steady state: heat = loss - gains = 20 K / 5 K/kW - 0.3 kW.
    assert np.allclose(run.pump_heat_kw, 3.7)
    assert np.allclose(run.electric_kw, 3.7 / 3.0)


def test_a_hybrid_runs_its_pump_to_the_cap_and_burns_gas_for_the_rest() -> None:
    n = 8
    run = thermostat_run(
        TRUE,
        STEP_H,
        20.0,
        outdoor_c=np.full(n, -5.0),
        setpoint_c=np.full(n, 20.0),
        cop=np.full(n, 3.0),
        electric_max_kw=np.full(n, 0.5),
        boiler_max_kw=20.0,
    )
    assert np.allclose(run.electric_kw, 0.5)
    assert np.allclose(run.boiler_heat_kw, 25 / 5 - 0.3 - 1.5)
    assert np.allclose(run.indoor_c, 20.0)


def test_comfort_band_has_a_night_set_back_and_comfort_now() -> None:
    start = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)
    band = comfort_band(start, 96)
    assert band.setpoint_c[0] == 16.0  # 00:00 is night
    assert band.setpoint_c[40] == 20.0  # 10:00
    now = comfort_band(
        start,
        96,
        comfort_now_until=datetime(2026, 1, 12, 2, tzinfo=UTC),
        comfort_now_setpoint_c=21.0,
    )
    assert now.setpoint_c[0] == now.lower_c[0] == 21.0
    assert now.setpoint_c[8] == 16.0


@pytest.mark.parametrize(("seed", "noise_k"), [(1, 0.0), (2, 0.05), (3, 0.05), (4, 0.1)])
def test_fit_recovers_r_and_c_within_20_percent(seed: int, noise_k: float) -> None:
    indoor, outdoor, power_w = _history(TRUE, 14, noise_k, seed)
    indoor[200:230] = np.nan  # a gap in the recorder
    defaults = default_parameters(BuildingType.TERRACED, InsulationEra.FROM_2006)
    result = fit_parameters(
        indoor_c=indoor,
        outdoor_c=outdoor,
        electric_w=power_w,
        step_hours=STEP_H,
        cop=COP,
        defaults=defaults,
    )
    assert result.fitted, result.reason
    fitted = result.parameters
    assert fitted.resistance_k_per_kw == pytest.approx(TRUE.resistance_k_per_kw, rel=0.2)
    assert fitted.capacitance_kwh_per_k == pytest.approx(TRUE.capacitance_kwh_per_k, rel=0.2)
    assert result.rms_k is not None
    assert result.rms_k < 0.5
    assert result.pairs_used < 14 * 96 - 1


def test_fit_falls_back_to_the_defaults_when_the_error_is_large() -> None:
    indoor, outdoor, power_w = _history(TRUE, 7, 0.0, 5)
    noisy = indoor + np.random.default_rng(6).normal(0, 1.0, len(indoor))  # a sensor in the sun
    defaults = default_parameters(BuildingType.TERRACED, InsulationEra.FROM_2006)
    result = fit_parameters(
        indoor_c=noisy,
        outdoor_c=outdoor,
        electric_w=power_w,
        step_hours=STEP_H,
        cop=COP,
        defaults=defaults,
    )
    assert not result.fitted
    assert result.parameters == defaults
    assert result.rms_k is not None
    assert result.rms_k > 0.5
    assert result.reason


def test_fit_with_too_little_history_keeps_the_defaults() -> None:
    indoor, outdoor, power_w = _history(TRUE, 7, 0.0, 7)
    defaults = default_parameters(BuildingType.APARTMENT, InsulationEra.FROM_1992_TO_2005)
    result = fit_parameters(
        indoor_c=indoor[:50],
        outdoor_c=outdoor[:50],
        electric_w=power_w[:50],
        step_hours=STEP_H,
        cop=COP,
        defaults=defaults,
    )
    assert not result.fitted
    assert result.rms_k is None
    assert result.parameters == defaults
