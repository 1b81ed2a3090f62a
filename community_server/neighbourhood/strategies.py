"""The four strategies side by side, and what each one achieved.

- unmanaged: no Netbewust; cars charge at full power on arrival, each heat pump is its
  own thermostat (the engine's `thermal.thermostat_run`, a hybrid's boiler for the rest).
- alone: each home's planner minimises its own cost on the day-ahead prices; its guard
  keeps it within its connection.
- guard: only the local guard (no planning): the unmanaged wishes within each fuse.
- community: the collective day-ahead plan moves each modulating heat pump's heat
  within its home's comfort band (a leaky thermal store, a hybrid's gas at its price)
  together with the cars and batteries, and gives limits wherever the homes could
  otherwise make a new peak; an on/off pump keeps its own schedule as load. Each home
  plans its car and battery under its limits (keeping its integer decisions), its pump
  runs the plan's heat, and the live allocation plus the guards hold the cap minute by
  minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from netbewust_core.thermal import degree_hours_below

from .planning import collective_plan, household_requests
from .realtime import Control, Outcome, Requests, simulate
from .scenario import STEP_H, STEPS_PER_DAY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from .scenario import Scenario

    FloatArray = NDArray[np.float64]


class Strategy(StrEnum):
    UNMANAGED = "unmanaged"
    ALONE = "alone"
    GUARD = "guard"
    COMMUNITY = "community"


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyResult:
    strategy: Strategy
    runtime_s: float
    transformer_w: FloatArray  # 15-minute mean, non-members included
    peak_w: float  # highest 15-minute mean
    minute_peak_w: float
    hours_above_cap: float
    energy_above_cap_kwh: float
    household_cost_eur: FloatArray  # electricity and gas over the period
    electricity_eur: FloatArray  # per home: import less export revenue
    electricity_kwh: float  # imported by all homes
    gas_m3: FloatArray  # per home: hybrids' boilers
    gas_eur: FloatArray
    heat_pump_kwh: FloatArray  # per home: the pump's electricity
    comfort_kh: FloatArray  # per home: kelvin-hours below its comfort band
    ev_not_delivered_kwh: float
    ev_sessions_short: int  # sessions more than 0.1 kWh short at departure
    heat_pump_starts_per_day: float  # mean over heat pumps and days

    @property
    def community_cost_eur(self) -> float:
        return float(self.household_cost_eur.sum())

    @property
    def comfort_worst_kh(self) -> float:
        return float(self.comfort_kh.max(initial=0.0))


def run_strategy(scenario: Scenario, strategy: Strategy) -> StrategyResult:
    began = time.perf_counter()
    # Without plans a battery with a profile follows it (its own schedule).
    own = Requests(battery_w=scenario.homes.battery_profile_w)
    if strategy is Strategy.UNMANAGED:
        outcome = simulate(scenario, own, Control.NONE)
    elif strategy is Strategy.GUARD:
        outcome = simulate(scenario, own, Control.GUARD)
    elif strategy is Strategy.ALONE:
        plans = household_requests(scenario)
        requests = Requests(
            ev_w=plans.ev_w, hp_w=plans.hp_w, battery_w=plans.battery_w, boiler_w=plans.boiler_w
        )
        outcome = simulate(scenario, requests, Control.GUARD)
    else:
        collective = collective_plan(scenario)
        limits = collective.limits
        plans = household_requests(scenario, limits, collective.heat)
        requests = Requests(
            ev_w=plans.ev_w,
            hp_w=plans.hp_w,
            battery_w=plans.battery_w,
            boiler_w=plans.boiler_w,
            planned_limits=limits,
        )
        outcome = simulate(scenario, requests, Control.COMMUNITY)
    return measure(scenario, strategy, outcome, time.perf_counter() - began)


def run_strategies(scenario: Scenario, strategies: Sequence[Strategy]) -> list[StrategyResult]:
    return [run_strategy(scenario, strategy) for strategy in strategies]


def measure(
    scenario: Scenario, strategy: Strategy, outcome: Outcome, runtime_s: float
) -> StrategyResult:
    transformer = outcome.grid_w.sum(axis=0) + scenario.non_member_w
    above = np.clip(transformer - scenario.cap_w, 0.0, None)
    imported = np.clip(outcome.grid_w, 0.0, None)
    exported = np.clip(-outcome.grid_w, 0.0, None)
    energy_eur = (imported * scenario.import_price - exported * scenario.export_price).sum(
        axis=1
    ) * (STEP_H / 1000)
    gas_m3, gas_eur = _gas(scenario, outcome)
    shortfall = outcome.ev_shortfall_wh
    return StrategyResult(
        strategy=strategy,
        runtime_s=runtime_s,
        transformer_w=transformer,
        peak_w=float(transformer.max()),
        minute_peak_w=outcome.transformer_minute_peak_w,
        hours_above_cap=float((above > 0).sum() * STEP_H),
        energy_above_cap_kwh=float(above.sum() * STEP_H / 1000),
        household_cost_eur=energy_eur + gas_eur,
        electricity_eur=energy_eur,
        electricity_kwh=float(imported.sum() * STEP_H / 1000),
        gas_m3=gas_m3,
        gas_eur=gas_eur,
        heat_pump_kwh=outcome.hp_w.sum(axis=1) * STEP_H / 1000,
        comfort_kh=_comfort_kh(scenario, outcome),
        ev_not_delivered_kwh=float(shortfall.sum() / 1000),
        ev_sessions_short=int((shortfall > 100).sum()),
        heat_pump_starts_per_day=_starts_per_day(scenario, outcome.hp_w),
    )


def _gas(scenario: Scenario, outcome: Outcome) -> tuple[FloatArray, FloatArray]:
    """Per home: m3 the hybrids' boilers burnt for their heat, and its price."""
    homes = scenario.homes
    m3, eur = np.zeros(homes.count), np.zeros(homes.count)
    models = () if homes.buildings is None else homes.buildings.models
    for home, model in enumerate(models):
        if model is not None and model.boiler is not None:
            m3[home] = model.boiler.gas_m3(float(outcome.boiler_w[home].sum()) * STEP_H / 1000)
            eur[home] = m3[home] * model.boiler.gas_price_eur_per_m3
    return m3, eur


def _comfort_kh(scenario: Scenario, outcome: Outcome) -> FloatArray:
    """Per home: kelvin-hours below its comfort band (the engine's measure)."""
    homes = scenario.homes
    kh = np.zeros(homes.count)
    if homes.buildings is None:
        return kh
    for home, model in enumerate(homes.buildings.models):
        if model is not None:
            lower = homes.buildings.lower_c[home]
            kh[home] = degree_hours_below(outcome.indoor_c[home], lower, STEP_H)
    return kh


def _starts_per_day(scenario: Scenario, hp_w: FloatArray) -> float:
    pumps = scenario.homes.hp_electric_w > 0
    if not pumps.any():
        return 0.0
    on = hp_w[pumps] > 1.0
    starts = on[:, 0].sum() + (on[:, 1:] & ~on[:, :-1]).sum()
    return float(starts / pumps.sum() / (scenario.n_steps / STEPS_PER_DAY))
