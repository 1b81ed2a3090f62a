"""The home's thermal model: a 1R1C indoor temperature, heat-pump COP, comfort band, fit.

Plain Python and numpy; the planner builds its heat-pump rows from these types.
See docs/planner.md (Heat pumps) for the model, its limits and the literature.
"""

from .building import (
    GAS_KWH_PER_M3,
    BuildingType,
    ComfortBand,
    CopModel,
    GasBoiler,
    InsulationEra,
    ThermalParameters,
    comfort_band,
    default_parameters,
)
from .fit import FitResult, fit_parameters
from .thermostat import ThermostatRun, degree_hours_below, simulate_indoor, thermostat_run

__all__ = [
    "GAS_KWH_PER_M3",
    "BuildingType",
    "ComfortBand",
    "CopModel",
    "FitResult",
    "GasBoiler",
    "InsulationEra",
    "ThermalParameters",
    "ThermostatRun",
    "comfort_band",
    "default_parameters",
    "degree_hours_below",
    "fit_parameters",
    "simulate_indoor",
    "thermostat_run",
]
