"""Settlement benchmark: a month of quarter-hour figures for 2,500 households, settled.

1. Writes October 2026 (a DST month, 2,980 quarter hours) plus the 28-day baseline
   look-back for `--households` homes into a real SQLite file, as the server's ingest
   roll-up stores them (one float32 row per household and local day): base load with
   noise, PV export at midday, a community limit of 1.5 kW on weekday evenings 17-20 h
   that each home meets partly, 2 % of quarters without telemetry and day-ahead
   commitments (before gate closure) for a third of the homes.
2. In a child process (so its peak RSS is its own): opens the store and closes the period
   with the pro-rata split: reads the figures back and settles every household
   (`SettlementLedger.close`). Budget: <= 10 s, < 1 GB peak RSS.
3. The Shapley split of the month's saving for `--shapley-households` homes (sampled),
   budget <= 5 s CPU, and the sampled split against brute-force enumeration on groups of
   up to 12 homes: the largest share error as a fraction of the coalition's saving (the
   1 % bound the tests hold) and relative to the share itself.
4. The roll-up's ingest cost: `Store.save_received` of 10-s reports, per report.

Usage: `python bench/settlement.py [--households 2500] [--shapley-households 250]`.
A readable table, then one JSON object as the last line. Exit code 1 over a budget.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from community_server.settlement_store import SETTLEMENT_ZONE
from community_server.store import Store
from netbewust_core.protocol.messages import Message, Telemetry
from netbewust_core.settlement.quarters import month_period
from netbewust_core.settlement.rules import SavingSplit, SettlementRules
from netbewust_core.settlement.shapley import (
    CostModel,
    coalition_saving,
    exact_shapley,
    sampled_shapley,
)
from netbewust_core.timegrid import QUARTER, local_day_bounds

if TYPE_CHECKING:
    from numpy.typing import NDArray

PERIOD = "2026-10"
COMMUNITY = "wijk-bench"
COSTS = CostModel(0.25, 0.05, 4.0)
SETTLE_BUDGET_S = 10.0
RSS_BUDGET_MB = 1024.0
SHAPLEY_BUDGET_S = 5.0


def _day_figures(
    rng: np.random.Generator, day: date, quarters: int, home: dict[str, float]
) -> bytes:
    """One household's local day as the roll-up stores it (5 x quarters float32)."""
    clock_h = np.array(
        [(datetime.combine(day, datetime.min.time(), tzinfo=SETTLEMENT_ZONE) + q * QUARTER).hour
         for q in range(quarters)]
    )  # fmt: skip
    base_w = home["base_w"] * (1 + 0.6 * ((clock_h >= 17) & (clock_h < 21)))
    base_w = base_w * rng.gamma(8.0, 1 / 8.0, quarters)
    sun = np.clip(np.sin((clock_h - 7) / 10 * np.pi), 0.0, None) * home["pv_w"]
    weekday = day.weekday() < 5
    limited = weekday & (clock_h >= 17) & (clock_h < 20)
    net_w = base_w - sun * rng.uniform(0.3, 1.0)
    net_w = np.where(limited, np.minimum(net_w, 1500.0 + home["overshoot_w"]), net_w)
    covered = np.where(rng.uniform(size=quarters) < 0.02, rng.uniform(0, 800), 900.0)
    figures = np.zeros((5, quarters), dtype=np.float32)
    figures[0] = np.maximum(net_w, 0) * covered / 3600
    figures[1] = np.maximum(-net_w, 0) * covered / 3600
    figures[2] = covered
    figures[4] = np.where(limited, 1500.0, np.nan)
    return figures.tobytes()


def write_month(path: Path, households: int, seed: int = 1) -> dict[str, float]:
    """The period's figures, look-back included, written straight into the store's tables."""
    started = time.perf_counter()
    store = Store.open(path)
    store.create_community(COMMUNITY, "Bench", datetime(2026, 9, 1, tzinfo=UTC))
    store.close()
    period = month_period(PERIOD, SETTLEMENT_ZONE)
    first = period.start.astimezone(SETTLEMENT_ZONE).date() - timedelta(days=28)
    last = period.end.astimezone(SETTLEMENT_ZONE).date()
    days = [first + timedelta(days=n) for n in range((last - first).days)]
    bounds = {day: local_day_bounds(day, SETTLEMENT_ZONE) for day in days}
    rng = np.random.default_rng(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")  # bulk load; the store itself writes with FULL
    for index in range(households):
        household = f"h{index:05d}"
        home = {
            "base_w": float(rng.uniform(250, 900)),
            "pv_w": float(rng.choice([0.0, 2500.0, 4000.0])),
            "overshoot_w": float(rng.choice([-600.0, -200.0, 0.0, 400.0])),
        }
        rows = []
        for day in days:
            start, end = bounds[day]
            rows.append(
                (
                    household,
                    day.isoformat(),
                    0,
                    _day_figures(rng, day, int((end - start) / QUARTER), home),
                )
            )
        db.execute("INSERT INTO settlement_members VALUES (?, ?)", (household, COMMUNITY))
        db.executemany("INSERT INTO settlement_days VALUES (?, ?, ?, ?)", rows)
        if index % 3 == 0:
            commitments = []
            for day in days[28:]:
                start, end = bounds[day]
                quarters = int((end - start) / QUARTER)
                at = start - timedelta(hours=14)  # 11:00 local the day before or so
                power = [home["base_w"] * 1.2] * quarters
                commitments.append(
                    (household, day.isoformat(), round(at.timestamp() * 1000), json.dumps(power))
                )
            db.executemany("INSERT INTO settlement_baselines VALUES (?, ?, ?, ?)", commitments)
        if index % 250 == 249:
            db.commit()
    db.commit()
    db.close()
    return {
        "write_s": round(time.perf_counter() - started, 1),
        "db_mb": round(path.stat().st_size / 2**20, 1),
        "rows": households * len(days),
    }


def settle_child(path: Path) -> dict[str, float]:
    """Close the period (read back + settle + store the statement) in this process."""
    store = Store.open(path)
    store.settlement.set_rules(
        COMMUNITY,
        SettlementRules(version=2, saving_split=SavingSplit.PRO_RATA),
        datetime(2026, 9, 1, tzinfo=UTC),
    )
    cpu, wall = time.process_time(), time.perf_counter()
    (statement,) = store.settlement.close(COMMUNITY, PERIOD, datetime(2026, 11, 2, tzinfo=UTC))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    document = statement.document
    households = document["households"]
    totals_add_up = document["credit_cents"] == sum(h["credit_cents"] for h in households)
    store.close()
    return {
        "settle_cpu_s": round(cpu, 2),
        "settle_wall_s": round(wall, 2),
        "settled_households": len(households),
        "delivered_kwh": round(sum(h["delivered_kwh"] for h in households), 1),
        "shortfall_kwh": round(sum(h["shortfall_kwh"] for h in households), 1),
        "saving_eur": round(document["saving_eur"], 2),
        "credit_eur": document["credit_cents"] / 100,
        "totals_add_up": totals_add_up,
    }


def _profiles(rng: np.random.Generator, households: int, quarters: int) -> NDArray[np.float64]:
    clock_h = (np.arange(quarters) % 96) / 4
    load = rng.gamma(4.0, 0.03, (households, quarters)) * (
        1 + 0.8 * ((clock_h >= 17) & (clock_h < 21))
    )
    sun = np.clip(np.sin((clock_h - 7) / 10 * np.pi), 0, None) * rng.choice(
        [0.0, 0.6, 1.0], (households, 1)
    )
    profiles: NDArray[np.float64] = load - sun * rng.uniform(0.3, 1.0, (households, quarters))
    return profiles


def shapley_figures(
    households: int, groups: tuple[int, ...], quarters: int
) -> dict[str, float | str | bool]:
    rng = np.random.default_rng(2)
    profiles = _profiles(rng, households, quarters)
    cpu = time.process_time()
    shares = sampled_shapley(profiles, COSTS)
    shapley_cpu = time.process_time() - cpu
    other_seed = sampled_shapley(profiles, COSTS, seed=1)
    saving = coalition_saving(profiles, COSTS)
    mean_share = saving / households
    worst_of_saving = worst_relative = 0.0
    for size in groups:
        for trial in range(3):
            group = _profiles(np.random.default_rng(100 * size + trial), size, quarters)
            exact = exact_shapley(group, COSTS)
            sampled = sampled_shapley(group, COSTS)
            error = np.abs(sampled - exact)
            worst_of_saving = max(
                worst_of_saving, float(error.max()) / coalition_saving(group, COSTS)
            )
            worst_relative = max(worst_relative, float((error / np.maximum(exact, 1e-12)).max()))
    return {
        "shapley_households": households,
        "shapley_cpu_s": round(shapley_cpu, 2),
        "shapley_adds_up": bool(abs(float(shares.sum()) - saving) < 1e-6 * max(1.0, saving)),
        "shapley_seed_spread_of_mean_share": round(
            float(np.abs(shares - other_seed).max()) / mean_share, 4
        ),
        "brute_force_groups": f"{min(groups)}-{max(groups)}",
        "brute_force_max_error_of_saving": round(worst_of_saving, 5),
        "brute_force_max_error_of_share": round(worst_relative, 4),
    }


def ingest_cost(path: Path, households: int, reports: int) -> float:
    """CPU microseconds per stored 10-s report, roll-up included."""
    store = Store.open(path)
    store.create_community("wijk-ingest", "Ingest", datetime(2026, 9, 1, tzinfo=UTC))
    for index in range(households):
        code = store.issue_join_code(
            "wijk-ingest", datetime(2026, 9, 1, tzinfo=UTC), timedelta(days=1)
        ).code
        store.redeem_join_code(code, datetime(2026, 9, 1, tzinfo=UTC), f"i{index:04d}")
    start = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    batches = []
    for step in range(reports):
        at = start + timedelta(seconds=10 * (step + 1))
        batches.append(
            [
                Message(
                    community="wijk-ingest",
                    household=f"i{index:04d}",
                    sent_at=at,
                    body=Telemetry(
                        measured_at=at, interval_s=10, power_w=(812.5,), participating=True
                    ),
                )
                for index in range(households)
            ]
        )
    cpu = time.process_time()
    for batch in batches:
        store.save_received(batch, batch[0].sent_at)
    cpu = time.process_time() - cpu
    store.close()
    return cpu / (households * reports) * 1e6


def run(
    households: int,
    shapley_households: int,
    groups: tuple[int, ...] = (4, 8, 12),
    quarters: int = 2980,
    ingest: tuple[int, int] = (50, 20),
) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="settlement-bench-"))
    try:
        path = work / "server.db"
        row: dict[str, object] = {"households": households, "period": PERIOD}
        row.update(write_month(path, households))
        child = subprocess.run(
            [sys.executable, __file__, "settle", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        row.update(json.loads(child.stdout.strip().splitlines()[-1]))
        row["settle_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        )
        row.update(shapley_figures(shapley_households, groups, quarters))
        row["ingest_cpu_us_per_report"] = round(ingest_cost(work / "ingest.db", *ingest), 1)
        row["load_average"] = os.getloadavg()[0]
        return row
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["settle"]:
        print(json.dumps(settle_child(Path(argv[1]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--households", type=int, default=2500)
    parser.add_argument("--shapley-households", type=int, default=250)
    args = parser.parse_args(argv)
    row = run(args.households, args.shapley_households)
    ok = (
        row["settle_cpu_s"] <= SETTLE_BUDGET_S  # type: ignore[operator]
        and row["settle_peak_rss_mb"] < RSS_BUDGET_MB  # type: ignore[operator]
        and row["shapley_cpu_s"] <= SHAPLEY_BUDGET_S  # type: ignore[operator]
        and row["brute_force_max_error_of_saving"] <= 0.01  # type: ignore[operator]
        and row["totals_add_up"] is True
    )
    width = max(len(key) for key in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps({**row, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
