"""The minute loop's vectorised 1R1C step and thermostat agree with the engine's.

`realtime.indoor_step` and `realtime.thermostat_step` are copies of the engine's
`thermal.simulate_indoor` and `thermal.thermostat_run` for every home at once (the
engine steps one home in a Python loop); random buildings, pumps, boilers, comfort
bands and weather must give the same heat, power and indoor temperature.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from community_server.neighbourhood.realtime import indoor_step, thermostat_step
from community_server.neighbourhood.scenario import Buildings
from netbewust_core.thermal import ThermalParameters, simulate_indoor, thermostat_run

STEP_H = 0.25


def _buildings(
    params: list[ThermalParameters],
    outdoor: np.ndarray,
    cop: np.ndarray,
    setpoint: np.ndarray,
    boiler_kw: np.ndarray,
) -> Buildings:
    homes = len(params)
    return Buildings(
        models=(None,) * homes,
        outdoor_c=outdoor,
        cop=cop,
        lower_c=setpoint - 0.5,
        setpoint_c=setpoint,
        resistance_k_per_kw=np.array([p.resistance_k_per_kw for p in params]),
        capacitance_kwh_per_k=np.array([p.capacitance_kwh_per_k for p in params]),
        gain_kw=np.array([p.internal_gain_kw for p in params]),
        boiler_max_kw=boiler_kw,
        boiler_heat_eur_per_kwh=np.zeros(homes),
        initial_c=setpoint[:, 0],
        thermostat_kh=np.zeros(homes),
    )


_params = st.builds(
    ThermalParameters,
    resistance_k_per_kw=st.floats(1.0, 30.0),
    capacitance_kwh_per_k=st.floats(1.0, 40.0),
    internal_gain_kw=st.floats(0.0, 1.0),
)


@settings(max_examples=60, deadline=None)
@given(
    params=st.lists(_params, min_size=1, max_size=4),
    steps=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    minutes=st.sampled_from((1, 15)),
)
def test_indoor_step_is_the_engines(
    params: list[ThermalParameters], steps: int, seed: int, minutes: int
) -> None:
    rng = np.random.default_rng(seed)
    homes = len(params)
    outdoor = rng.uniform(-15.0, 15.0, steps)
    heat = rng.uniform(0.0, 12.0, (homes, steps))
    start = rng.uniform(12.0, 24.0, homes)
    setpoint = np.full((homes, steps), 20.0)
    b = _buildings(params, outdoor, np.ones((homes, steps)), setpoint, np.zeros(homes))
    indoor = start.copy()
    ours = np.zeros((homes, steps))
    for k in range(steps):
        for _ in range(15 // minutes):  # the minute loop: heat held over the quarter hour
            indoor = indoor_step(b, indoor, k, heat[:, k], minutes / 60)
        ours[:, k] = indoor
    for home, p in enumerate(params):
        engine = simulate_indoor(p, STEP_H, float(start[home]), outdoor, heat[home])
        np.testing.assert_allclose(ours[home], engine, rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    params=st.lists(_params, min_size=1, max_size=4),
    steps=st.integers(1, 24),
    seed=st.integers(0, 2**32 - 1),
)
def test_thermostat_step_is_the_engines(
    params: list[ThermalParameters], steps: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    homes = len(params)
    outdoor = rng.uniform(-15.0, 15.0, steps)
    cop = rng.uniform(1.0, 6.0, (homes, steps))
    setpoint = rng.choice((16.0, 18.0, 20.0, 21.0), (homes, steps))
    electric_max = rng.choice((0.45, 1.5, 3.0, 6.0), homes)
    boiler_kw = rng.choice((0.0, 0.0, 24.0), homes)
    start = rng.uniform(14.0, 22.0, homes)
    b = _buildings(params, outdoor, cop, setpoint, boiler_kw)
    indoor = start.copy()
    electric, boiler, temps = (np.zeros((homes, steps)) for _ in range(3))
    for k in range(steps):
        electric[:, k], boiler[:, k] = thermostat_step(b, indoor, k, electric_max)
        heat = electric[:, k] / 1000 * cop[:, k] + boiler[:, k]
        indoor = indoor_step(b, indoor, k, heat, STEP_H)
        temps[:, k] = indoor
    for home, p in enumerate(params):
        run = thermostat_run(
            p,
            STEP_H,
            float(start[home]),
            outdoor_c=outdoor,
            setpoint_c=setpoint[home],
            cop=cop[home],
            electric_max_kw=np.full(steps, electric_max[home]),
            boiler_max_kw=float(boiler_kw[home]),
        )
        np.testing.assert_allclose(electric[home], run.electric_kw * 1000, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(boiler[home], run.boiler_heat_kw, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(temps[home], run.indoor_c, rtol=0, atol=1e-9)
