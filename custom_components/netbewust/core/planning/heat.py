"""Per-step figures of a thermally modelled heat pump, shared by the model and its baseline.

The space-heating power a step allows is the pump's maximum less the power reserved for
hot water; an on/off pump does no space heating in a hot-water step at all. "No
intervention" is the thermostat run of core/thermal on the same figures; an on/off
pump's thermostat cycles it within the quarter hour, so its average is a duty cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..thermal import ThermostatRun, degree_hours_below, thermostat_run
from .problem import HeatPumpControl

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .problem import PlanThermalHeatPump

    FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class HeatFigures:
    """Per step (kW, degC): COP, hot-water draw, space-heating maximum, band and outdoor."""

    cop: FloatArray
    dhw_kw: FloatArray
    space_max_kw: FloatArray
    outdoor_c: FloatArray
    setpoint_c: FloatArray
    lower_c: FloatArray
    upper_c: FloatArray
    boiler_max_kw: float
    gas_eur_per_kwh_heat: float


def heat_figures(heat_pump: PlanThermalHeatPump) -> HeatFigures:
    outdoor = np.asarray(heat_pump.outdoor_temperature_c, dtype=float)
    dhw = (
        np.zeros(len(outdoor))
        if heat_pump.dhw_w is None
        else np.asarray(heat_pump.dhw_w, dtype=float) / 1000
    )
    max_kw = heat_pump.max_power_w / 1000
    if heat_pump.control is HeatPumpControl.ON_OFF:
        space = np.where(dhw > 0, 0.0, max_kw)
    else:
        space = np.clip(max_kw - dhw, 0.0, None)
    boiler = heat_pump.boiler
    return HeatFigures(
        cop=np.array([heat_pump.cop.cop(t) for t in outdoor]),
        dhw_kw=dhw,
        space_max_kw=space,
        outdoor_c=outdoor,
        setpoint_c=np.asarray(heat_pump.comfort.setpoint_c, dtype=float),
        lower_c=np.asarray(heat_pump.comfort.lower_c, dtype=float),
        upper_c=np.asarray(heat_pump.comfort.upper_c, dtype=float),
        boiler_max_kw=0.0 if boiler is None else boiler.max_heat_w / 1000,
        gas_eur_per_kwh_heat=0.0 if boiler is None else boiler.heat_price_eur_per_kwh,
    )


def no_intervention(heat_pump: PlanThermalHeatPump, step_hours: float) -> ThermostatRun:
    """The pump (and boiler) as their own thermostat runs them, space heating only."""
    figures = heat_figures(heat_pump)
    return thermostat_run(
        heat_pump.thermal,
        step_hours,
        heat_pump.indoor_temperature_c,
        outdoor_c=figures.outdoor_c,
        setpoint_c=figures.setpoint_c,
        cop=figures.cop,
        electric_max_kw=figures.space_max_kw,
        boiler_max_kw=figures.boiler_max_kw,
    )


def comfort_shortfall_kh(heat_pump: PlanThermalHeatPump, indoor_c: FloatArray, dt: float) -> float:
    """Degree-hours below the pump's comfort band for an indoor temperature series."""
    return degree_hours_below(indoor_c, np.asarray(heat_pump.comfort.lower_c), dt)
