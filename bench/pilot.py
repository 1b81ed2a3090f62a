"""Benchmark: the field pilot (issue 14) in the simulator, against its targets.

Usage: python bench/pilot.py [--days N]   (default: the files' cold week, 7 days)

Runs examples/neighbourhoods/pilot_255.toml (97 hybrid pumps among 255 homes, 400 kVA)
and pilot_255_ev.toml (plus 40 EVs on 11 kW and 20 home batteries):

- capacity frame: the transformer's cap set to 90 % (target) and 80 % (stretch) of the
  unmanaged homes' peak, for the whole period (it binds only around the evening peaks,
  the frames the DSO set in the pilot); `community` must keep its evening peak (local
  16:00-22:00) that far below unmanaged with 0 degree-hours below any home's band
  (at most 0.01 Kh per home: the minute loop's float sums) and at most 0.4 m3 extra
  gas per hybrid home on any day, against the homes' own plans (`alone`, which already
  burn less gas than their thermostats: against unmanaged the figure is lower still);
- with EVs and batteries: the cap at 75 % of unmanaged's peak, every car delivered;
- emergency: at unmanaged's peak quarter hour, the engine's live allocation
  (`LiveAllocator`, EMERGENCY mode, every hybrid pump as `HeatPumpState`, the pump rules
  of core/allocation/heat_pumps.py) sets every home's limit at once; the transformer
  load once each home's guard holds its limit (its devices, never its base load) must
  be 25 % down. This is one allocation round on that quarter hour's powers, not the
  simulator's minute loop (which runs capacity frames only): the 60 s is the allocation
  round plus one guard reading (bench/guard_step_response.py measures the guard).

Prints a table per example, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from community_server.neighbourhood.planning import (  # noqa: E402
    collective_plan,
    household_requests,
)
from community_server.neighbourhood.realtime import (  # noqa: E402
    Control,
    Outcome,
    Requests,
    simulate,
)
from community_server.neighbourhood.scenario import STEP_H, Scenario, build_scenario  # noqa: E402
from community_server.neighbourhood.spec import load_neighbourhood  # noqa: E402
from community_server.neighbourhood.strategies import (  # noqa: E402
    Strategy,
    StrategyResult,
    measure,
)
from netbewust_core.allocation.allocator import LiveAllocator  # noqa: E402
from netbewust_core.allocation.model import (  # noqa: E402
    AllocationMode,
    CapSeries,
    HeatPumpState,
    HouseholdState,
    NonMemberLoad,
)
from netbewust_core.collective.problem import SharingRule  # noqa: E402
from netbewust_core.limits import LimitInterval, LimitSource  # noqa: E402

EXAMPLES = REPO / "examples" / "neighbourhoods"
EVENING_H = (16, 22)  # local hours of the evening peak
FRAME_TARGET = 0.10
FRAME_STRETCH = 0.20
EV_TARGET = 0.25
EMERGENCY_TARGET = 0.25
GAS_LIMIT_M3 = 0.4  # extra per hybrid home per day
COMFORT_TOLERANCE_KH = 0.01
FloatArray = NDArray[np.float64]


def _scenario(name: str, days: int | None, cap_w: float | None = None) -> Scenario:
    spec = load_neighbourhood(EXAMPLES / name)
    if days is not None and days < spec.days:
        spec = dataclasses.replace(spec, days=days, daily_mean_c=spec.daily_mean_c[:days])
    scenario = build_scenario(spec)
    return scenario if cap_w is None else dataclasses.replace(scenario, cap_w=cap_w)


def _unmanaged(scenario: Scenario) -> tuple[StrategyResult, Outcome]:
    outcome = simulate(scenario, Requests(), Control.NONE)
    return measure(scenario, Strategy.UNMANAGED, outcome, 0.0), outcome


def _alone(scenario: Scenario) -> Outcome:
    plans = household_requests(scenario)
    requests = Requests(
        ev_w=plans.ev_w, hp_w=plans.hp_w, battery_w=plans.battery_w, boiler_w=plans.boiler_w
    )
    return simulate(scenario, requests, Control.GUARD)


def _community(scenario: Scenario) -> tuple[StrategyResult, Outcome, float]:
    began = time.process_time()
    plan = collective_plan(scenario)
    plans = household_requests(scenario, plan.limits, plan.heat)
    requests = Requests(
        ev_w=plans.ev_w,
        hp_w=plans.hp_w,
        battery_w=plans.battery_w,
        boiler_w=plans.boiler_w,
        planned_limits=plan.limits,
    )
    outcome = simulate(scenario, requests, Control.COMMUNITY)
    cpu = time.process_time() - began
    return measure(scenario, Strategy.COMMUNITY, outcome, cpu), outcome, cpu


def _evening(scenario: Scenario) -> NDArray[np.bool_]:
    zone = ZoneInfo(scenario.spec.timezone)
    hours = np.array(
        [scenario.step_start(k).astimezone(zone).hour for k in range(scenario.n_steps)]
    )
    return (hours >= EVENING_H[0]) & (hours < EVENING_H[1])


def _gas_per_day(scenario: Scenario, outcome: Outcome) -> FloatArray:
    """m3 per home and day (homes x days) the hybrids' boilers burnt."""
    homes = scenario.homes
    days = scenario.n_steps // (24 * 4)
    m3 = np.zeros((homes.count, days))
    models = () if homes.buildings is None else homes.buildings.models
    for home, model in enumerate(models):
        if model is not None and model.boiler is not None:
            heat_kwh = outcome.boiler_w[home, : days * 96].reshape(days, 96).sum(axis=1)
            m3[home] = [model.boiler.gas_m3(float(kwh) * STEP_H / 1000) for kwh in heat_kwh]
    return m3


def _emergency(scenario: Scenario, outcome: Outcome) -> dict[str, float]:
    """One EMERGENCY allocation at unmanaged's peak quarter hour; the load after each
    guard holds its limit (it sheds the pump and the car, never the base load)."""
    homes = scenario.homes
    transformer = outcome.grid_w.sum(axis=0) + scenario.non_member_w
    k = int(np.argmax(transformer))
    grid = outcome.grid_w[:, k]
    hp = outcome.hp_w[:, k]
    ev = np.clip(outcome.ev_w[:, k], 0.0, None)
    base = grid - hp - ev  # what no limit cuts
    hybrid = np.array(
        [
            model is not None and model.boiler is not None
            for model in (homes.buildings.models if homes.buildings else [None] * homes.count)
        ]
    )
    now = scenario.step_start(k)
    cap_w = float(transformer[k]) * (1 - EMERGENCY_TARGET)
    cap = CapSeries(
        (LimitInterval(now, now + timedelta(hours=1), max_import_w=cap_w),),
        source=LimitSource.DSO,
    )
    states = [
        HouseholdState(
            household_id=hid,
            measured_w=float(np.clip(grid[i], -1e6, 1e6)),
            guaranteed_min_w=float(np.clip(base[i] + hp[i], 0.0, homes.limit_w[i])),
            flexible_w=float(ev[i]),
            connection_limit_w=float(homes.limit_w[i]),
            heat_pump=None
            if homes.hp_electric_w[i] <= 0
            else HeatPumpState(
                power_w=float(hp[i]), hybrid=bool(hybrid[i]), comfort_margin_min=120.0
            ),
        )
        for i, hid in enumerate(homes.ids)
    ]
    began = time.perf_counter()
    allocation = LiveAllocator().allocate(
        cap,
        NonMemberLoad(estimate_w=float(scenario.non_member_w[k])),
        states,
        rule=SharingRule.EQUAL_SHARE,
        mode=AllocationMode.EMERGENCY,
        now=now,
    )
    seconds = time.perf_counter() - began
    limit = np.full(homes.count, np.inf)
    for i, hid in enumerate(homes.ids):
        held = allocation.limits.get(hid)
        interval = None if held is None else held.interval_at(now)
        if interval is not None and interval.max_import_w is not None:
            limit[i] = interval.max_import_w
    after = np.maximum(np.minimum(grid, limit), np.minimum(base, grid))
    before_w = float(transformer[k])
    after_w = float(after.sum() + scenario.non_member_w[k])
    return {
        "before_kw": before_w / 1000,
        "after_kw": after_w / 1000,
        "reduction": 1 - after_w / before_w,
        "pump_kw_taken": float(np.clip(hp - np.clip(limit - base, 0.0, None), 0.0, hp).sum())
        / 1000,
        "allocation_s": seconds,
    }


def _row(
    label: str,
    unmanaged: StrategyResult,
    *,
    result: StrategyResult,
    evening: np.ndarray,
    extra_gas: FloatArray,
    extra_gas_unmanaged: FloatArray,
    hybrids: NDArray[np.bool_],
) -> dict[str, Any]:
    before = float(unmanaged.transformer_w[evening].max())
    after = float(result.transformer_w[evening].max())
    per_day = extra_gas[hybrids] if hybrids.any() else np.zeros((1, extra_gas.shape[1]))
    per_day_unmanaged = extra_gas_unmanaged[hybrids] if hybrids.any() else per_day
    return {
        "case": label,
        "unmanaged_evening_peak_kw": before / 1000,
        "evening_peak_kw": after / 1000,
        "below_unmanaged": 1 - after / before,
        "peak_kw": result.peak_w / 1000,
        "hours_above_cap": result.hours_above_cap,
        "comfort_kh_total": float(result.comfort_kh.sum()),
        "comfort_kh_worst": result.comfort_worst_kh,
        "extra_gas_m3_per_hybrid_day_mean": float(per_day.mean()),
        "extra_gas_m3_per_hybrid_day_worst_day": float(per_day.mean(axis=0).max()),
        "extra_gas_vs_unmanaged_m3_per_hybrid_day_worst_day": float(
            per_day_unmanaged.mean(axis=0).max()
        ),
        "ev_short_kwh": result.ev_not_delivered_kwh,
        "cpu_s": result.runtime_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=None)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f} ({os.cpu_count()} cores)")
    rows: list[dict[str, Any]] = []
    emergencies: dict[str, dict[str, float]] = {}
    cases = (
        ("pilot_255.toml", ((FRAME_TARGET, "frame -10 %"), (FRAME_STRETCH, "frame -20 %"))),
        ("pilot_255_ev.toml", ((EV_TARGET, "EVs frame -25 %"),)),
    )
    for name, levels in cases:
        base = _scenario(name, args.days)
        unmanaged, unmanaged_outcome = _unmanaged(base)
        emergencies[name] = _emergency(base, unmanaged_outcome)
        evening = _evening(base)
        hybrids = np.array(
            [
                m is not None and m.boiler is not None
                for m in (base.homes.buildings.models if base.homes.buildings else ())
            ]
            or [False] * base.homes.count
        )
        gas_unmanaged = _gas_per_day(base, unmanaged_outcome)
        gas_alone = _gas_per_day(base, _alone(base))
        for reduction, label in levels:
            cap_w = float(unmanaged.transformer_w[evening].max()) * (1 - reduction)
            scenario = dataclasses.replace(base, cap_w=cap_w)
            result, outcome, _ = _community(scenario)
            gas = _gas_per_day(scenario, outcome)
            rows.append(
                _row(
                    f"{name} {label}",
                    unmanaged,
                    result=result,
                    evening=evening,
                    extra_gas=gas - gas_alone,
                    extra_gas_unmanaged=gas - gas_unmanaged,
                    hybrids=hybrids,
                )
            )
    header = (
        f"{'case':<34}{'unman. kW':>10}{'evening kW':>11}{'below':>7}{'h>cap':>7}"
        f"{'cold Kh':>8}{'worst':>7}{'gas m3/d':>9}{'worst d':>8}{'vs unm.':>8}"
        f"{'EV short':>9}{'CPU s':>7}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['case']:<34}{row['unmanaged_evening_peak_kw']:>10.1f}"
            f"{row['evening_peak_kw']:>11.1f}{row['below_unmanaged']:>7.1%}"
            f"{row['hours_above_cap']:>7.2f}{row['comfort_kh_total']:>8.2f}"
            f"{row['comfort_kh_worst']:>7.3f}"
            f"{row['extra_gas_m3_per_hybrid_day_mean']:>9.3f}"
            f"{row['extra_gas_m3_per_hybrid_day_worst_day']:>8.3f}"
            f"{row['extra_gas_vs_unmanaged_m3_per_hybrid_day_worst_day']:>8.3f}"
            f"{row['ev_short_kwh']:>9.1f}{row['cpu_s']:>7.0f}"
        )
    for name, figures in emergencies.items():
        print(
            f"emergency {name}: {figures['before_kw']:.1f} kW -> {figures['after_kw']:.1f} kW"
            f" ({figures['reduction']:.1%} down; {figures['pump_kw_taken']:.1f} kW of pumps"
            f" taken; allocation {figures['allocation_s'] * 1000:.0f} ms)"
        )
    frame = {row["case"]: row for row in rows}
    target = frame["pilot_255.toml frame -10 %"]
    stretch = frame["pilot_255.toml frame -20 %"]
    ev_case = frame["pilot_255_ev.toml EVs frame -25 %"]

    def kept(row: dict[str, Any]) -> bool:
        return bool(
            row["below_unmanaged"] >= 0
            and row["comfort_kh_worst"] <= COMFORT_TOLERANCE_KH
            and row["extra_gas_m3_per_hybrid_day_worst_day"] <= GAS_LIMIT_M3
        )

    verdict = {
        "frame_10": kept(target) and target["below_unmanaged"] >= FRAME_TARGET - 0.005,
        "frame_20_stretch": kept(stretch) and stretch["below_unmanaged"] >= FRAME_STRETCH - 0.005,
        "ev_25": ev_case["below_unmanaged"] >= EV_TARGET - 0.005
        and ev_case["ev_short_kwh"] <= 0.1
        and ev_case["comfort_kh_worst"] <= COMFORT_TOLERANCE_KH,
        "emergency_25": all(e["reduction"] >= EMERGENCY_TARGET for e in emergencies.values()),
    }
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_rss_mb:.0f} MB; verdict {verdict}")
    print(
        json.dumps(
            {
                "load_average": load,
                "days": args.days,
                "rows": rows,
                "emergency": emergencies,
                "peak_rss_mb": peak_rss_mb,
                "targets": verdict,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
