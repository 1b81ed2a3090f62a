"""Household load profiles for the neighbourhood simulator: documented models, seeded.

demandlib and pvlib are not used (they pull pandas and are not pinned for Python 3.14);
instead, small published-shape models that are enough for a transformer's daily curve:

- Base load: the hourly shape of the German standard household profile (BDEW H0, the
  profile behind H25), winter working day, in W per 1,000 kWh/year; scaled by the
  household's annual use, with a dynamisation factor for the season, plus per-household
  seeded noise (single homes are spikier than the average).
- PV: clear-sky output from the sun's elevation at 52.1 N (De Bilt), with a standard
  declination/hour-angle approximation and an air-mass attenuation, times peak power
  and a fixed 0.85 system efficiency.
- EV: one home session a day with a seeded arrival (normal, mean 18:00, sd 1.5 h) and
  energy (uniform 6-24 kWh), charging at the charger's maximum until the energy is in.
- Heat pump: electrical demand proportional to heating degrees below 18 C (a typical
  air-water pump: 120 W per K), with a daily outdoor temperature cycle around the
  day's mean (a cold winter day: 2 C, amplitude 4 K, minimum at 05:00).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# BDEW H0 winter working day, hourly mean W per 1,000 kWh/year (00:00-01:00 first).
H0_WINTER_WORKDAY_W = (
    70.8, 55.1, 49.0, 46.4, 46.9, 52.4, 77.6, 110.7, 124.0, 122.9, 121.4, 124.6,
    136.6, 135.2, 121.9, 114.8, 117.8, 145.2, 186.7, 196.2, 176.6, 155.6, 134.9, 103.8,
)  # fmt: skip
LATITUDE_DEG = 52.1
SYSTEM_EFFICIENCY = 0.85
HEATING_LIMIT_C = 18.0
HEAT_PUMP_W_PER_K = 120.0
LOCAL_OFFSET = timedelta(hours=1)  # CET: profiles are in local (winter) time


def _local_hours(moment: datetime) -> float:
    local = moment.astimezone(UTC) + LOCAL_OFFSET
    return local.hour + local.minute / 60 + local.second / 3600


def h0_dynamisation(day_of_year: int) -> float:
    """BDEW's fourth-order seasonal factor (about 1.24 in January, 0.8 in summer)."""
    t = day_of_year
    return -3.92e-10 * t**4 + 3.2e-7 * t**3 - 7.02e-5 * t**2 + 2.1e-3 * t + 1.24


def base_load_w(moment: datetime, annual_kwh: float) -> float:
    """The H0 profile's mean load at `moment`, linearly interpolated between hours."""
    hours = _local_hours(moment)
    index = int(hours) % 24
    fraction = hours - int(hours)
    shape = (
        H0_WINTER_WORKDAY_W[index] * (1 - fraction)
        + H0_WINTER_WORKDAY_W[(index + 1) % 24] * fraction
    )
    day = moment.timetuple().tm_yday
    return shape * annual_kwh / 1000 * h0_dynamisation(day) / h0_dynamisation(15)


def solar_elevation_deg(moment: datetime, latitude_deg: float = LATITUDE_DEG) -> float:
    utc = moment.astimezone(UTC)
    day = utc.timetuple().tm_yday
    declination = 23.44 * math.sin(math.radians(360 / 365 * (day - 81)))
    solar_hours = utc.hour + utc.minute / 60 + utc.second / 3600 + 5.2 / 15  # 5.2 E
    hour_angle = 15 * (solar_hours - 12)
    lat, dec, ha = map(math.radians, (latitude_deg, declination, hour_angle))
    sine = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(ha)
    return math.degrees(math.asin(max(-1.0, min(1.0, sine))))


def pv_clear_sky_w(moment: datetime, peak_w: float) -> float:
    elevation = solar_elevation_deg(moment)
    if elevation <= 0:
        return 0.0
    # Kasten-Young air mass, then Meinel's clear-sky attenuation (0.7 at the zenith).
    air_mass = 1 / (
        math.sin(math.radians(elevation)) + 0.50572 * math.pow(elevation + 6.07995, -1.6364)
    )
    transmittance = math.pow(0.7, math.pow(air_mass, 0.678))
    return peak_w * math.sin(math.radians(elevation)) * transmittance / 0.7 * SYSTEM_EFFICIENCY


def outdoor_temperature_c(moment: datetime, daily_mean_c: float = 2.0) -> float:
    hours = _local_hours(moment)
    return daily_mean_c - 4.0 * math.cos(2 * math.pi * (hours - 5) / 24)


def heat_pump_demand_w(moment: datetime, rated_w: float, daily_mean_c: float = 2.0) -> float:
    degrees = max(0.0, HEATING_LIMIT_C - outdoor_temperature_c(moment, daily_mean_c))
    return min(rated_w, degrees * HEAT_PUMP_W_PER_K)


@dataclass(frozen=True, slots=True)
class EvSession:
    arrival_h: float  # local hours after midnight
    energy_wh: float


@dataclass(frozen=True, slots=True)
class HouseholdProfile:
    """One home's fixed characteristics, drawn from a seed."""

    phases: int
    fuse_current_a: float
    annual_kwh: float
    noise: float  # relative standard deviation of the base load
    pv_peak_w: float  # 0: no PV
    ev_session: EvSession | None
    ev_max_current_a: float
    heat_pump_rated_w: float  # 0: no heat pump

    @classmethod
    def draw(cls, seed: int) -> HouseholdProfile:
        rng = random.Random(seed)
        three_phase = rng.random() < 0.6
        has_ev = rng.random() < 0.4
        return cls(
            phases=3 if three_phase else 1,
            fuse_current_a=25.0 if three_phase else rng.choice((25.0, 35.0, 40.0)),
            annual_kwh=rng.uniform(2000, 4500),
            noise=rng.uniform(0.1, 0.3),
            pv_peak_w=rng.choice((0.0, 0.0, 2800.0, 3600.0, 4500.0)),
            ev_session=(
                EvSession(
                    arrival_h=min(23.0, max(15.0, rng.gauss(18.0, 1.5))),
                    energy_wh=rng.uniform(6000, 24000),
                )
                if has_ev
                else None
            ),
            ev_max_current_a=16.0 if three_phase else 32.0,
            heat_pump_rated_w=rng.choice((0.0, 0.0, 2500.0)),
        )
