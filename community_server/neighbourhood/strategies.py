"""The four strategies side by side, and what each one achieved.

- unmanaged: no Netbewust; cars charge at full power on arrival, heat pumps follow the
  heat demand.
- alone: each home's planner minimises its own cost on the day-ahead prices; its guard
  keeps it within its connection.
- guard: only the local guard (no planning): the unmanaged wishes within each fuse.
- community: each heat pump plans its own on/off day; the collective day-ahead plan
  takes those as load and gives limits wherever the homes could otherwise make a new
  peak; each home plans its car and battery under them (keeping its integer decisions
  and its heat pump's schedule) and the live allocation plus the guards hold the cap
  minute by minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from .planning import collective_limits, heat_pump_schedules, household_requests
from .realtime import Control, Outcome, Requests, simulate
from .scenario import STEP_H, STEPS_PER_DAY
from .spec import HeatPumpKind

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
    ev_not_delivered_kwh: float
    ev_sessions_short: int  # sessions more than 0.1 kWh short at departure
    heat_not_delivered_kwh: float  # full heat pumps: comfort lost
    gas_used_kwh: float  # hybrids: heat the boiler delivered
    heat_pump_starts_per_day: float  # mean over heat pumps and days

    @property
    def community_cost_eur(self) -> float:
        return float(self.household_cost_eur.sum())


def run_strategy(scenario: Scenario, strategy: Strategy) -> StrategyResult:
    began = time.perf_counter()
    if strategy is Strategy.UNMANAGED:
        outcome = simulate(scenario, Requests(), Control.NONE)
    elif strategy is Strategy.GUARD:
        outcome = simulate(scenario, Requests(), Control.GUARD)
    elif strategy is Strategy.ALONE:
        ev, hp, battery = household_requests(scenario)
        outcome = simulate(scenario, Requests(ev_w=ev, hp_w=hp, battery_w=battery), Control.GUARD)
    else:
        heat = heat_pump_schedules(scenario)
        limits, _ = collective_limits(scenario, heat)
        ev, hp, battery = household_requests(scenario, limits, heat)
        requests = Requests(ev_w=ev, hp_w=hp, battery_w=battery, planned_limits=limits)
        outcome = simulate(scenario, requests, Control.COMMUNITY)
    return measure(scenario, strategy, outcome, time.perf_counter() - began)


def run_strategies(scenario: Scenario, strategies: Sequence[Strategy]) -> list[StrategyResult]:
    return [run_strategy(scenario, strategy) for strategy in strategies]


def measure(
    scenario: Scenario, strategy: Strategy, outcome: Outcome, runtime_s: float
) -> StrategyResult:
    homes = scenario.homes
    transformer = outcome.grid_w.sum(axis=0) + scenario.non_member_w
    above = np.clip(transformer - scenario.cap_w, 0.0, None)
    imported = np.clip(outcome.grid_w, 0.0, None)
    exported = np.clip(-outcome.grid_w, 0.0, None)
    energy_eur = (imported * scenario.import_price - exported * scenario.export_price).sum(
        axis=1
    ) * (STEP_H / 1000)
    deficit_wh = _heat_deficit_wh(scenario, outcome.hp_w)
    hybrid = np.array([kind is HeatPumpKind.HYBRID for kind in homes.hp_kind])
    full = np.array([kind is HeatPumpKind.FULL for kind in homes.hp_kind])
    gas_kwh = np.where(hybrid, deficit_wh, 0.0) / 1000
    shortfall = outcome.ev_shortfall_wh
    return StrategyResult(
        strategy=strategy,
        runtime_s=runtime_s,
        transformer_w=transformer,
        peak_w=float(transformer.max()),
        minute_peak_w=outcome.transformer_minute_peak_w,
        hours_above_cap=float((above > 0).sum() * STEP_H),
        energy_above_cap_kwh=float(above.sum() * STEP_H / 1000),
        household_cost_eur=energy_eur + gas_kwh * scenario.gas_eur_per_kwh,
        ev_not_delivered_kwh=float(shortfall.sum() / 1000),
        ev_sessions_short=int((shortfall > 100).sum()),
        heat_not_delivered_kwh=float(deficit_wh[full].sum() / 1000),
        gas_used_kwh=float(gas_kwh.sum()),
        heat_pump_starts_per_day=_starts_per_day(scenario, outcome.hp_w),
    )


def _heat_deficit_wh(scenario: Scenario, hp_w: FloatArray) -> FloatArray:
    """Heat needed but not delivered, per home, summed over the blocks the planner may
    shift heat within (heat delivered early in a block covers demand later in it)."""
    homes = scenario.homes
    size = scenario.heat_block_steps
    delivered = hp_w * homes.hp_cop[:, None]
    blocks = scenario.n_steps // size
    need = homes.heat_demand_w.reshape(homes.count, blocks, size).sum(axis=2)
    got = delivered.reshape(homes.count, blocks, size).sum(axis=2)
    has_pump = homes.hp_electric_w > 0
    return np.where(has_pump, np.clip(need - got, 0.0, None).sum(axis=1) * STEP_H, 0.0)


def _starts_per_day(scenario: Scenario, hp_w: FloatArray) -> float:
    pumps = scenario.homes.hp_electric_w > 0
    if not pumps.any():
        return 0.0
    on = hp_w[pumps] > 1.0
    starts = on[:, 0].sum() + (on[:, 1:] & ~on[:, :-1]).sum()
    return float(starts / pumps.sum() / (scenario.n_steps / STEPS_PER_DAY))
