"""The 1R1C model stepped forward, and the heat pump as its own thermostat would run it.

"No intervention" is the comparison every plan must beat: the thermostat keeps the set
point, heating as needed within the pump's power; a hybrid's controller runs the pump
first up to its cap and lets the boiler supply the rest. Per step the heat is the
average (an on/off pump cycling within the step runs a duty cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .building import ThermalParameters

    FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ThermostatRun:
    """Per step: electric power (kW), heat-pump heat and boiler heat (kW), end temperature."""

    electric_kw: FloatArray
    pump_heat_kw: FloatArray
    boiler_heat_kw: FloatArray
    indoor_c: FloatArray


def simulate_indoor(
    params: ThermalParameters,
    step_hours: float,
    indoor_c: float,
    outdoor_c: FloatArray,
    heat_kw: FloatArray,
) -> FloatArray:
    """Indoor temperature at the end of each step for a given heat series."""
    a = params.decay(step_hours)
    r = params.resistance_k_per_kw
    drive = (1 - a) * (outdoor_c + r * (heat_kw + params.internal_gain_kw))
    out = np.empty(len(outdoor_c))
    temperature = indoor_c
    for k, value in enumerate(drive):
        temperature = a * temperature + value
        out[k] = temperature
    return out


def thermostat_run(
    params: ThermalParameters,
    step_hours: float,
    indoor_c: float,
    *,
    outdoor_c: FloatArray,
    setpoint_c: FloatArray,
    cop: FloatArray,
    electric_max_kw: FloatArray,
    boiler_max_kw: float = 0.0,
) -> ThermostatRun:
    """The pump (and boiler) as their own controller runs them, step by step."""
    a = params.decay(step_hours)
    r = params.resistance_k_per_kw
    n = len(outdoor_c)
    electric = np.zeros(n)
    pump_heat = np.zeros(n)
    boiler = np.zeros(n)
    indoor = np.zeros(n)
    temperature = indoor_c
    for k in range(n):
        # Heat that ends the step exactly at the set point.
        needed = ((setpoint_c[k] - a * temperature) / (1 - a) - outdoor_c[k]) / r
        needed -= params.internal_gain_kw
        pump_max = electric_max_kw[k] * cop[k]
        if needed <= 1e-12:
            heat = 0.0
        else:
            pump_heat[k] = min(needed, pump_max)
            electric[k] = pump_heat[k] / cop[k]
            boiler[k] = min(needed - pump_heat[k], boiler_max_kw)
            heat = pump_heat[k] + boiler[k]
        temperature = a * temperature + (1 - a) * (
            outdoor_c[k] + r * (heat + params.internal_gain_kw)
        )
        indoor[k] = temperature
    return ThermostatRun(electric, pump_heat, boiler, indoor)


def degree_hours_below(indoor_c: FloatArray, lower_c: FloatArray, step_hours: float) -> float:
    """Kelvin-hours below the band (end-of-step temperatures): the comfort measure."""
    return float(np.clip(lower_c - indoor_c, 0.0, None).sum() * step_hours)
