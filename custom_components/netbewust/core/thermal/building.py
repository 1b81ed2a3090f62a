"""Building and heat-pump parameters: the 1R1C model, COP, gas boiler, comfort band, defaults.

The indoor temperature T (degC) follows C dT/dt = (T_out - T) / R + Q + G with R the
heat resistance to outside (K/kW), C the heat capacity (kWh/K), Q the heat delivered
(kW) and G the internal and solar gains (kW). Over a step of h hours with constant
inputs the exact solution is T' = a T + (1 - a) (T_out + R (Q + G)), a = exp(-h / (R C)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum

# Groningen-quality natural gas, upper heating value: 35.17 MJ/m3.
GAS_KWH_PER_M3 = 9.77
ZERO_CELSIUS_K = 273.15


class ThermalError(ValueError):
    """Thermal parameters or a comfort band that do not validate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalParameters:
    """The 1R1C model: R (K/kW), C (kWh/K) and constant gains (kW)."""

    resistance_k_per_kw: float
    capacitance_kwh_per_k: float
    internal_gain_kw: float = 0.0

    def __post_init__(self) -> None:
        if not (self.resistance_k_per_kw > 0 and self.capacitance_kwh_per_k > 0):
            raise ThermalError("R and C must be positive")
        if not math.isfinite(self.internal_gain_kw):
            raise ThermalError("internal gain must be finite")

    @property
    def heat_loss_w_per_k(self) -> float:
        return 1000.0 / self.resistance_k_per_kw

    @property
    def time_constant_h(self) -> float:
        return self.resistance_k_per_kw * self.capacitance_kwh_per_k

    def decay(self, step_hours: float) -> float:
        """a in T' = a T + (1 - a)(...): the share of the indoor temperature kept per step."""
        return math.exp(-step_hours / self.time_constant_h)


@dataclass(frozen=True, slots=True, kw_only=True)
class CopModel:
    """COP as a fraction of the Carnot COP at a supply temperature, capped.

    COP(T_out) = carnot_fraction * T_supply[K] / (T_supply - T_out), limited to
    [1, max_cop]. `constant` (when set) overrides it: a pump datasheet's single figure.
    """

    carnot_fraction: float = 0.45
    supply_temperature_c: float = 35.0
    max_cop: float = 7.0
    constant: float | None = None

    def __post_init__(self) -> None:
        if self.constant is not None and not self.constant >= 1.0:
            raise ThermalError("a constant COP must be at least 1")
        if not (0 < self.carnot_fraction <= 1 and self.max_cop >= 1):
            raise ThermalError("need 0 < carnot_fraction <= 1 and max_cop >= 1")

    @classmethod
    def rated(
        cls, cop: float, *, outdoor_c: float = 7.0, supply_temperature_c: float = 35.0
    ) -> CopModel:
        """The Carnot fraction that gives `cop` at `outdoor_c` (a datasheet's A7/W35 point)."""
        lift = supply_temperature_c - outdoor_c
        if not (cop >= 1 and lift > 0):
            raise ThermalError("need COP >= 1 and a supply above the rating's outdoor temperature")
        fraction = cop * lift / (supply_temperature_c + ZERO_CELSIUS_K)
        return cls(carnot_fraction=min(fraction, 1.0), supply_temperature_c=supply_temperature_c)

    def cop(self, outdoor_c: float) -> float:
        if self.constant is not None:
            return self.constant
        supply_k = self.supply_temperature_c + ZERO_CELSIUS_K
        # Lift at least 5 K: near the supply temperature the Carnot figure has no meaning.
        lift_k = max(self.supply_temperature_c - outdoor_c, 5.0)
        return min(max(self.carnot_fraction * supply_k / lift_k, 1.0), self.max_cop)


@dataclass(frozen=True, slots=True, kw_only=True)
class GasBoiler:
    """A hybrid's boiler: heat up to `max_heat_w` at `efficiency` per m3 upper heating value."""

    max_heat_w: float
    gas_price_eur_per_m3: float
    efficiency: float = 0.9

    def __post_init__(self) -> None:
        if not (self.max_heat_w >= 0 and 0 < self.efficiency <= 1.1):
            raise ThermalError("boiler heat must be >= 0 and efficiency in (0, 1.1]")
        if not math.isfinite(self.gas_price_eur_per_m3):
            raise ThermalError("gas price must be finite")

    @property
    def heat_price_eur_per_kwh(self) -> float:
        return self.gas_price_eur_per_m3 / (GAS_KWH_PER_M3 * self.efficiency)

    def gas_m3(self, heat_kwh: float) -> float:
        return heat_kwh / (GAS_KWH_PER_M3 * self.efficiency)


@dataclass(frozen=True, slots=True)
class ComfortBand:
    """Per step: the thermostat's set point and the band the plan may use (degC)."""

    setpoint_c: tuple[float, ...]
    lower_c: tuple[float, ...]
    upper_c: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.setpoint_c)
        if not (n and len(self.lower_c) == n and len(self.upper_c) == n):
            raise ThermalError("a comfort band needs equally long, non-empty series")
        for low, set_c, high in zip(self.lower_c, self.setpoint_c, self.upper_c, strict=True):
            if not (math.isfinite(low) and math.isfinite(high) and low <= set_c <= high):
                raise ThermalError("need lower <= set point <= upper in every step")


@dataclass(frozen=True, slots=True)
class ComfortPeriod:
    """From local time `start` on (until the next period): a set point and its tolerance."""

    start: time
    setpoint_c: float
    below_k: float = 0.5
    above_k: float = 1.0


DEFAULT_PERIODS = (
    ComfortPeriod(time(6, 30), 20.0, 0.5, 1.0),
    ComfortPeriod(time(22, 30), 16.0, 0.5, 4.0),  # night set-back
)


def comfort_band(
    start: datetime,
    n_steps: int,
    *,
    step_minutes: int = 15,
    periods: tuple[ComfortPeriod, ...] = DEFAULT_PERIODS,
    local_tz: tzinfo | None = None,
    comfort_now_until: datetime | None = None,
    comfort_now_setpoint_c: float | None = None,
) -> ComfortBand:
    """The band for a horizon from daily periods in local time.

    "Comfort now": until `comfort_now_until` the set point is held exactly (no band
    below it), at `comfort_now_setpoint_c` or the period's own set point.
    """
    if not periods:
        raise ThermalError("a comfort band needs at least one period")
    ordered = sorted(periods, key=lambda p: p.start)
    setpoints, lowers, uppers = [], [], []
    for k in range(n_steps):
        moment = start + timedelta(minutes=step_minutes * k)
        local = moment.astimezone(local_tz).time() if local_tz else moment.time()
        current = ordered[-1]  # before the first period of the day: the last one of yesterday
        for period in ordered:
            if period.start <= local:
                current = period
        setpoint, below = current.setpoint_c, current.below_k
        if comfort_now_until is not None and moment < comfort_now_until:
            setpoint = comfort_now_setpoint_c if comfort_now_setpoint_c is not None else setpoint
            below = 0.0
        setpoints.append(setpoint)
        lowers.append(setpoint - below)
        uppers.append(setpoint + current.above_k)
    return ComfortBand(tuple(setpoints), tuple(lowers), tuple(uppers))


class BuildingType(StrEnum):
    APARTMENT = "apartment"
    TERRACED = "terraced"
    SEMI_DETACHED = "semi_detached"
    DETACHED = "detached"


class InsulationEra(StrEnum):
    BEFORE_1975 = "before_1975"
    FROM_1975_TO_1991 = "1975_1991"
    FROM_1992_TO_2005 = "1992_2005"
    FROM_2006 = "2006_on"


# Heat loss coefficient (W/K, transmission + ventilation) per building type and era, and
# an effective heat capacity (kWh/K). Orders of magnitude of the Dutch example homes
# (RVO Voorbeeldwoningen / TABULA NL) and of fitted 1R1C models (Bacher & Madsen 2011);
# see docs/planner.md. Planning defaults until a home's own fit replaces them.
_HEAT_LOSS_W_PER_K = {
    BuildingType.APARTMENT: (130.0, 100.0, 75.0, 50.0),
    BuildingType.TERRACED: (200.0, 150.0, 110.0, 75.0),
    BuildingType.SEMI_DETACHED: (260.0, 195.0, 140.0, 95.0),
    BuildingType.DETACHED: (340.0, 255.0, 185.0, 125.0),
}
_CAPACITY_KWH_PER_K = {
    BuildingType.APARTMENT: 5.0,
    BuildingType.TERRACED: 8.0,
    BuildingType.SEMI_DETACHED: 10.0,
    BuildingType.DETACHED: 13.0,
}
_ERAS = tuple(InsulationEra)


def default_parameters(building: BuildingType, era: InsulationEra) -> ThermalParameters:
    """Planning defaults for a building type and insulation era (no fit available)."""
    heat_loss_w_per_k = _HEAT_LOSS_W_PER_K[building][_ERAS.index(era)]
    return ThermalParameters(
        resistance_k_per_kw=1000.0 / heat_loss_w_per_k,
        capacitance_kwh_per_k=_CAPACITY_KWH_PER_K[building],
    )
