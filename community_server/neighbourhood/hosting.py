"""Hosting capacity: how many 11 kW chargers or heat pumps fit under the transformer.

Assets are added to the file's homes in a seeded order (chargers only to three-phase
homes without one); each home's new sessions and building come from its own seed, so
adding one more asset leaves the others unchanged. A count fits when the highest
15-minute transformer load stays at or below the cap, every car reaches its departure
energy (within 0.1 kWh) and the homes lose at most 0.1 kelvin-hour of comfort per heat
pump and day against their pumps' own thermostats without a fuse or cap.

More assets need not make things worse (a managed feeder was seen over its cap with 67
chargers and under it with 114), so the search assumes nothing: it runs every count of
a coarse grid (0, the most and up to `GRID_STEPS - 1` between), then every count between
the last fitting grid count and the first failing one. The answer is the largest count
below which every count run fits; the result says whether the runs were monotone (no
count fits above one that failed) and which counts fit above the answer. Counts between
grid points below that bracket are not run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from netbewust_core.model import MIN_CHARGE_CURRENT_A
from netbewust_core.units import NOMINAL_VOLTAGE_V

from .scenario import (
    PumpModel,
    Scenario,
    buildings,
    comfort_of,
    ev_sessions,
    outdoor_temperature,
    pump_model,
)
from .spec import DEFAULT_COMFORT, EvSpec, HeatPumpKind, HeatPumpSpec, PumpControl, Range
from .strategies import Strategy, StrategyResult, run_strategy

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

HOSTED_EV = EvSpec(
    charger_kw=11.0, energy_kwh=Range(6.0, 24.0), arrival_h=18.0, arrival_sd_h=1.5, departure_h=7.0
)
HOSTED_HEAT_PUMP = HeatPumpSpec(
    kind=HeatPumpKind.FULL,
    electric_w=3000.0,
    cop=3.5,
    constant_cop=False,
    heat_loss_w_per_k=Range(250.0, 450.0),
    capacitance_kwh_per_k=10.0,  # semi-detached (thermal.default_parameters)
    control=PumpControl.MODULATING,
    min_electric_w=0.0,
    boiler_kw=0.0,
    gas_eur_per_m3=0.0,
    comfort=DEFAULT_COMFORT,
)
MAX_COMFORT_LOST_KH_PER_PUMP_DAY = 0.1
GRID_STEPS = 8  # the coarse grid: the range of counts in this many steps
SEARCH = (
    f"every count of a {GRID_STEPS}-step grid, then every count between the last fitting "
    "and the first failing grid count"
)


class Asset(StrEnum):
    EV = "ev"
    HEAT_PUMP = "heat_pump"


@dataclass(frozen=True, slots=True)
class Trial:
    count: int
    fits: bool
    peak_w: float
    ev_sessions_short: int


@dataclass(frozen=True, slots=True)
class Capacity:
    strategy: Strategy
    hosted: int  # the largest count below which every count run fits (0: none fits)
    base_fits: bool  # the neighbourhood as described fits without added assets
    trials: tuple[Trial, ...]

    @property
    def monotone(self) -> bool:
        """No count run fits above a count that failed."""
        failed = [t.count for t in self.trials if not t.fits]
        return not failed or all(t.count < min(failed) for t in self.trials if t.fits)

    @property
    def fits_above(self) -> tuple[int, ...]:
        """Counts run above `hosted` that fit: where the runs were not monotone."""
        return tuple(t.count for t in self.trials if t.fits and t.count > self.hosted)


def candidates(scenario: Scenario, asset: Asset) -> list[int]:
    """The homes that may receive the asset, in the order they receive it."""
    homes = scenario.homes
    if asset is Asset.EV:
        eligible = np.flatnonzero((homes.ev_max_w == 0) & (homes.phases == 3))
    else:
        eligible = np.flatnonzero(homes.hp_electric_w == 0)
    order = np.random.default_rng([scenario.seed, 2]).permutation(eligible)
    return [int(home) for home in order]


def with_assets(scenario: Scenario, asset: Asset, count: int) -> Scenario:
    chosen = candidates(scenario, asset)[:count]
    homes = scenario.homes
    if asset is Asset.EV:
        sessions = list(homes.sessions)
        for home in chosen:
            rng = np.random.default_rng([scenario.seed, 3, home])
            sessions.extend(
                ev_sessions(
                    HOSTED_EV,
                    home,
                    scenario.days,
                    rng,
                    start=scenario.start,
                    timezone=scenario.spec.timezone,
                )
            )
        ev_max, ev_min, ev_phases = (
            homes.ev_max_w.copy(),
            homes.ev_min_w.copy(),
            homes.ev_phases.copy(),
        )
        ev_min_w = MIN_CHARGE_CURRENT_A * NOMINAL_VOLTAGE_V * 3
        ev_max[chosen], ev_min[chosen], ev_phases[chosen] = 11_000.0, ev_min_w, 3
        new_homes = dataclasses.replace(
            homes,
            sessions=tuple(sessions),
            ev_max_w=ev_max,
            ev_min_w=ev_min,
            ev_phases=ev_phases,
        )
    else:
        hosted = HOSTED_HEAT_PUMP
        models: list[PumpModel | None] = (
            list(homes.buildings.models) if homes.buildings else [None] * homes.count
        )
        electric, cop = homes.hp_electric_w.copy(), homes.hp_cop.copy()
        kinds = list(homes.hp_kind)
        band = comfort_of(hosted, scenario.start, scenario.n_steps, scenario.spec.timezone)
        for home in chosen:
            rng = np.random.default_rng([scenario.seed, 4, home])
            loss = rng.uniform(hosted.heat_loss_w_per_k.low, hosted.heat_loss_w_per_k.high)
            models[home] = pump_model(hosted, float(loss), band)
            electric[home], cop[home] = hosted.electric_w, hosted.cop
            kinds[home] = HeatPumpKind.FULL
        outdoor = outdoor_temperature(scenario.spec, scenario.start, scenario.n_steps)
        thermal, need = buildings(models, outdoor, scenario.n_steps)
        new_homes = dataclasses.replace(
            homes,
            heat_demand_w=need,
            hp_electric_w=electric,
            hp_cop=cop,
            hp_kind=tuple(kinds),
            buildings=thermal,
        )
    return dataclasses.replace(scenario, homes=new_homes)


def fits(scenario: Scenario, result: StrategyResult) -> bool:
    b = scenario.homes.buildings
    lost_kh = (
        0.0 if b is None else float(np.clip(result.comfort_kh - b.thermostat_kh, 0, None).sum())
    )
    pump_days = int((scenario.homes.hp_electric_w > 0).sum()) * scenario.days
    comfort_ok = lost_kh <= MAX_COMFORT_LOST_KH_PER_PUMP_DAY * pump_days
    return result.peak_w <= scenario.cap_w and result.ev_sessions_short == 0 and comfort_ok


def hosting_capacity(scenario: Scenario, asset: Asset, strategy: Strategy) -> Capacity:
    trials: dict[int, Trial] = {}

    def trial(count: int) -> bool:
        case = with_assets(scenario, asset, count)
        result = run_strategy(case, strategy)
        ok = fits(case, result)
        trials[count] = Trial(count, ok, result.peak_w, result.ev_sessions_short)
        return ok

    most = len(candidates(scenario, asset))
    base_fits = trial(0)
    if not base_fits:
        return Capacity(strategy, 0, False, tuple(trials.values()))
    grid = sorted({round(most * i / GRID_STEPS) for i in range(GRID_STEPS + 1)})
    fitting = [count for count in grid if count == 0 or trial(count)]
    failing = [count for count in grid if count not in fitting]
    if failing:
        first = failing[0]
        last = max(count for count in fitting if count < first)
        for count in range(last + 1, first):
            trial(count)
    ordered = tuple(sorted(trials.values(), key=lambda t: t.count))
    hosted = 0
    for t in ordered:
        if not t.fits:
            break
        hosted = t.count
    return Capacity(strategy, hosted, True, ordered)


def capacity_table(asset: Asset, capacities: Sequence[Capacity], eligible: int) -> str:
    lines = [f"hosting capacity for {asset.value} (of {eligible} eligible homes)"]
    for capacity in capacities:
        note = "" if capacity.base_fits else f"  (fails without added assets: {_why(capacity)})"
        if capacity.base_fits and not capacity.monotone:
            above = ", ".join(map(str, capacity.fits_above))
            note = f"  (not monotone: {above} also fit)"
        lines.append(
            f"{capacity.strategy.value:>10}: {capacity.hosted:4d}  "
            f"({len(capacity.trials)} runs){note}"
        )
    lines.append(f"search: {SEARCH}")
    return "\n".join(lines)


def write_capacity(
    scenario: Scenario, asset: Asset, capacities: Sequence[Capacity], out: Path
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "name": scenario.name,
        "seed": scenario.seed,
        "asset": asset.value,
        "transformer_cap_w": scenario.cap_w,
        "eligible_homes": len(candidates(scenario, asset)),
        "search": SEARCH,
        "strategies": {
            c.strategy.value: {
                "hosted": c.hosted,
                "base_fits": c.base_fits,
                "monotone": c.monotone,
                "fits_above_hosted": list(c.fits_above),
                "trials": [dataclasses.asdict(t) for t in c.trials],
            }
            for c in capacities
        },
    }
    json_path = out / f"hosting_capacity_{asset.value}.json"
    json_path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    figure, axis = plt.subplots(figsize=(8, 4))
    for capacity in capacities:
        counts = [t.count for t in capacity.trials]
        peaks = [t.peak_w / 1000 for t in capacity.trials]
        axis.plot(counts, peaks, marker="o", label=f"{capacity.strategy.value}: {capacity.hosted}")
    axis.axhline(scenario.cap_w / 1000, color="red", linestyle="--", label="cap")
    axis.set_xlabel(f"{asset.value} added")
    axis.set_ylabel("transformer peak (15 min), kW")
    axis.set_title(f"Hosting capacity: {scenario.name}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    plot_path = out / f"hosting_capacity_{asset.value}.png"
    figure.savefig(plot_path, dpi=100)
    plt.close(figure)
    return [json_path, plot_path]


def _why(capacity: Capacity) -> str:
    """What the run without added assets showed: its peak and any EV sessions short."""
    base = capacity.trials[0]
    return f"peak {base.peak_w / 1000:.0f} kW, {base.ev_sessions_short} EV sessions short"
