"""Benchmark: live allocation of a transformer cap over 250 homes on a winter evening.

Usage: python bench/live_allocation.py [--households N] [--seed S]

Synthetic, seeded homes from 16:00 to 23:00 local time, simulated second by second:
- base load (inflexible): an evening-peaked profile scaled per home plus a cooking block;
- heat pumps on 60 %: 1.2-2.8 kW cycling 20-40 min on / 5-20 min off; comfort needs 40 %
  of that while it runs;
- EVs on 40 %: arrive 17:00-19:30, 7.4 or 11 kW, 8-30 kWh to charge; a third needs
  a 1.4 kW minimum (deadline), the rest may pause; a curtailed car charges longer.
- non-members: 10 % of the transformer load, measured by the DSO every 10 s.
Each home's guard obeys its limit 2-5 s after the allocator issues it (its own lag),
curtailing heat-pump comfort headroom before the car; a car below 1.4 kW pauses and a
limited car overshoots its allowance by 200 W (as the plant simulator's cars do).
Telemetry every 10 s (10 s mean, each home at its own offset); the allocator runs every
10 s. The guard engine itself (`community_server/simulation/plant.py`) is too slow for
250 homes x 25,200 s within the 2-minute budget, so the homes here are a vectorised
model of an obeying guard.

First an unmanaged run gives the peak; the cap is 20 % below it (1-minute means of the
transformer load), as one capacity frame over the whole evening. Then one managed run
per sharing rule. Targets: no minute above the cap after the first minute, largest
excursion (1 s) <= 3 % of the cap, no rebound above the cap after release. Curtailment
spread: each home's share of the curtailed energy (largest) and the Gini coefficient
over the homes with flexibility. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from netbewust_core.allocation.allocator import LiveAllocator  # noqa: E402
from netbewust_core.allocation.model import (  # noqa: E402
    AllocationMode,
    AllocationPhase,
    CapSeries,
    HouseholdState,
    NonMemberLoad,
    SharingRule,
)
from netbewust_core.limits import LimitInterval  # noqa: E402

START = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)  # 16:00 CET
DURATION_S = 7 * 3600
TELEMETRY_S = 10
CAP_FRACTION = 0.8
EV_MIN_W = 1380.0  # 6 A on one phase
EV_OVERSHOOT_W = 200.0
NON_MEMBER_SHARE = 0.10
CONNECTION_W = 3 * 25 * 230.0
TARGET_EXCURSION = 0.03
TIME_BUDGET_S = 120.0


@dataclass
class Homes:
    """Per-home parameters (arrays of length N) and per-second inflexible load."""

    base_w: np.ndarray  # (seconds, N)
    hp_power_w: np.ndarray
    hp_on_s: np.ndarray
    hp_off_s: np.ndarray
    hp_phase_s: np.ndarray
    ev_power_w: np.ndarray
    ev_arrival_s: np.ndarray
    ev_energy_wh: np.ndarray
    ev_min_w: np.ndarray
    lag_s: np.ndarray
    report_offset_s: np.ndarray
    non_member_w: np.ndarray  # (seconds,)

    def hp_demand_w(self, t: int) -> np.ndarray:
        cycle = self.hp_on_s + self.hp_off_s
        running = ((t + self.hp_phase_s) % cycle) < self.hp_on_s
        return np.where(running, self.hp_power_w, 0.0)


def make_homes(count: int, seed: int) -> Homes:
    rng = np.random.default_rng(seed)
    hours = 16 + np.arange(DURATION_S) / 3600
    evening = 0.35 + 0.65 * np.exp(-(((hours - 18.75) / 1.6) ** 2))
    scale = rng.lognormal(np.log(900), 0.35, count)
    base = evening[:, None] * scale[None, :]
    cook_start = rng.normal(17.6, 0.5, count)
    cook_length = rng.uniform(0.3, 0.8, count)
    cooks = rng.random(count) < 0.6
    cooking = (hours[:, None] >= cook_start) & (hours[:, None] < cook_start + cook_length) & cooks
    base = base + cooking * rng.uniform(1200, 2500, count)[None, :]
    noise = rng.normal(0, 60, (DURATION_S // 60 + 1, count)).repeat(60, axis=0)[:DURATION_S]
    base = np.clip(base + noise, 80, None)
    has_hp = rng.random(count) < 0.6
    has_ev = rng.random(count) < 0.4
    members_mean = float(base.mean()) * count
    non_member = NON_MEMBER_SHARE / (1 - NON_MEMBER_SHARE) * members_mean * 1.6 * evening
    return Homes(
        base_w=base,
        hp_power_w=np.where(has_hp, rng.uniform(1200, 2800, count), 0.0),
        hp_on_s=rng.uniform(1200, 2400, count),
        hp_off_s=rng.uniform(300, 1200, count),
        hp_phase_s=rng.uniform(0, 3600, count),
        ev_power_w=np.where(rng.random(count) < 0.5, 7400.0, 11000.0),
        ev_arrival_s=np.where(
            has_ev, (rng.normal(18.0, 0.6, count).clip(17, 19.5) - 16) * 3600, 1e9
        ),
        ev_energy_wh=np.where(has_ev, rng.uniform(8000, 30000, count), 0.0),
        ev_min_w=np.where(rng.random(count) < 1 / 3, EV_MIN_W, 0.0),
        lag_s=rng.integers(2, 6, count),
        report_offset_s=rng.integers(0, TELEMETRY_S, count),
        non_member_w=non_member,
    )


@dataclass
class Run:
    transformer_w: np.ndarray  # per second
    curtailed_wh: np.ndarray  # per home
    ev_undelivered_wh: float
    phases: list[tuple[int, AllocationPhase]]
    allocate_ms: list[float]
    flexible: np.ndarray  # homes with a heat pump or a car


def simulate(homes: Homes, rule: SharingRule | None, cap_w: float | None, seed: int) -> Run:
    """Rule None: unmanaged. The guard of each home applies its limit after its lag."""
    count = homes.base_w.shape[1]
    ev_left = homes.ev_energy_wh.copy()
    allocator = LiveAllocator() if rule is not None else None
    cap = CapSeries(
        (LimitInterval(START, START + timedelta(seconds=DURATION_S), max_import_w=cap_w),)
    )
    ids = [f"home-{i:03d}" for i in range(count)]
    pending: list[tuple[int, np.ndarray]] = []  # (issued at s, limits)
    limit_now = np.full(count, np.inf)
    issued_limit = np.full(count, np.inf)
    window = np.zeros((TELEMETRY_S, count))
    reported = np.zeros(count)
    transformer = np.zeros(DURATION_S)
    curtailed = np.zeros(count)
    phases: list[tuple[int, AllocationPhase]] = []
    timings: list[float] = []
    for t in range(DURATION_S):
        # Each home picks up the latest limit issued at least its lag ago.
        for issued_at, limits in pending:
            due = t - issued_at >= homes.lag_s
            limit_now = np.where(due, limits, limit_now)
        pending = [(s, lim) for s, lim in pending if t - s < 6]
        base = homes.base_w[t]
        hp_want = homes.hp_demand_w(t)
        hp_min = 0.4 * hp_want
        plugged = (t >= homes.ev_arrival_s) & (ev_left > 0)
        ev_want = np.where(plugged, homes.ev_power_w, 0.0)
        ev_min = np.where(plugged, homes.ev_min_w, 0.0)
        room = np.maximum(limit_now - base - hp_min - ev_min, 0.0)
        hp = hp_min + np.minimum(hp_want - hp_min, room)
        room = room - (hp - hp_min)
        ev = ev_min + np.minimum(ev_want - ev_min, room)
        ev = np.where((ev < EV_MIN_W) & (ev_min == 0), 0.0, ev)
        limited_ev = (ev > 0) & (ev < ev_want)
        ev = ev + np.where(limited_ev, EV_OVERSHOOT_W, 0.0)
        ev = np.minimum(ev, ev_want)
        grid = base + hp + ev
        ev_left = ev_left - ev / 3600
        wanted = base + hp_want + ev_want
        curtailed += np.maximum(wanted - grid, 0.0) / 3600
        transformer[t] = grid.sum() + homes.non_member_w[t]
        window[t % TELEMETRY_S] = grid
        reports = (t % TELEMETRY_S) == homes.report_offset_s
        reported = np.where(reports, window.mean(axis=0), reported)
        if allocator is None or t % TELEMETRY_S != TELEMETRY_S - 1:
            continue
        now = START + timedelta(seconds=t)
        states = [
            HouseholdState(
                household_id=ids[i],
                measured_w=float(reported[i]),
                guaranteed_min_w=float(base[i] + hp_min[i] + ev_min[i]),
                flexible_w=float(hp_want[i] - hp_min[i] + ev_want[i] - ev_min[i]),
                connection_limit_w=CONNECTION_W,
                cost_eur_per_kwh=0.05 if ev_want[i] > 0 else 0.15,
            )
            for i in range(count)
        ]
        non_member = NonMemberLoad(
            estimate_w=float(homes.non_member_w.mean()),
            measured_w=float(homes.non_member_w[t]),
            measured_at=now,
        )
        began = time.perf_counter()
        assert rule is not None
        allocation = allocator.allocate(
            cap, non_member, states, rule=rule, mode=AllocationMode.CAPACITY_FRAME, now=now
        )
        timings.append((time.perf_counter() - began) * 1000)
        if not phases or phases[-1][1] != allocation.phase:
            phases.append((t, allocation.phase))
        for i, hid in enumerate(ids):
            limit = allocation.limits.get(hid)
            interval = limit.interval_at(now) if limit is not None else None
            value = interval.max_import_w if interval is not None else None
            issued_limit[i] = np.inf if value is None else value
        pending.append((t, issued_limit.copy()))
    flexible = (homes.hp_power_w > 0) | (homes.ev_energy_wh > 0)
    return Run(transformer, curtailed, float(ev_left.sum()), phases, timings, flexible)


def minute_means(series: np.ndarray) -> np.ndarray:
    means: np.ndarray = series[: len(series) // 60 * 60].reshape(-1, 60).mean(axis=1)
    return means


def gini(values: np.ndarray) -> float:
    ordered = np.sort(values)
    n = len(ordered)
    if n == 0 or ordered.sum() <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * ordered).sum()) / (n * ordered.sum()) - (n + 1) / n)


def evaluate(run: Run, cap_w: float) -> dict[str, float | int | bool]:
    minutes = minute_means(run.transformer_w)
    engaged = [t for t, phase in run.phases if phase is AllocationPhase.ENGAGED]
    first_minute = engaged[0] // 60 + 1 if engaged else 0
    over = minutes[first_minute:] > cap_w
    released = [t for t, phase in run.phases if phase is AllocationPhase.RELEASING]
    after = run.transformer_w[released[-1] :] if released else np.zeros(1)
    excursion = max(0.0, float(run.transformer_w.max()) - cap_w) / cap_w
    share = run.curtailed_wh / max(float(run.curtailed_wh.sum()), 1e-9)
    return {
        "managed_peak_pct_of_cap": round(100 * float(minutes.max()) / cap_w, 1),
        "minutes_above_cap": int(over.sum()),
        "max_excursion_pct": round(100 * excursion, 2),
        "rebound_peak_pct_of_cap": round(100 * float(after.max()) / cap_w, 1),
        "rebound_above_cap": bool(after.max() > cap_w),
        "curtailed_kwh": round(float(run.curtailed_wh.sum()) / 1000, 1),
        "largest_share_pct": round(100 * float(share.max()), 2),
        "gini_flexible": round(gini(run.curtailed_wh[run.flexible]), 3),
        "homes_curtailed": int((run.curtailed_wh > 1).sum()),
        "ev_undelivered_kwh": round(run.ev_undelivered_wh / 1000, 1),
        "allocate_ms_p95": round(float(np.percentile(run.allocate_ms, 95)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=250)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    began = time.perf_counter()
    homes = make_homes(args.households, args.seed)
    unmanaged = simulate(homes, None, None, args.seed)
    peak_w = float(minute_means(unmanaged.transformer_w).max())
    cap_w = CAP_FRACTION * peak_w
    print(f"{args.households} homes, 16:00-23:00, seed {args.seed}")
    print(f"unmanaged peak (1-min mean) {peak_w / 1000:.1f} kW; cap {cap_w / 1000:.1f} kW")
    results: dict[str, dict[str, float | int | bool]] = {}
    for rule in SharingRule:
        run = simulate(homes, rule, cap_w, args.seed)
        results[rule.value] = evaluate(run, cap_w)
    header = f"{'metric':<26}" + "".join(f"{rule.value:>20}" for rule in SharingRule)
    print(header)
    print("-" * len(header))
    for metric in next(iter(results.values())):
        row = "".join(f"{results[rule.value][metric]!s:>20}" for rule in SharingRule)
        print(f"{metric:<26}{row}")
    elapsed = time.perf_counter() - began
    passed = all(
        r["minutes_above_cap"] == 0
        and float(r["max_excursion_pct"]) <= 100 * TARGET_EXCURSION
        and not r["rebound_above_cap"]
        for r in results.values()
    )
    print(f"targets met: {passed}; wall time {elapsed:.1f} s (budget {TIME_BUDGET_S:.0f} s)")
    summary = {
        "bench": "live_allocation",
        "households": args.households,
        "seed": args.seed,
        "unmanaged_peak_kw": round(peak_w / 1000, 1),
        "cap_kw": round(cap_w / 1000, 1),
        "rules": results,
        "targets_met": passed,
        "wall_s": round(elapsed, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
