"""Benchmark: the 150-connection feeder example, one week, all four strategies.

Usage: python bench/feeder.py [FILE]   (default examples/neighbourhoods/feeder_150/feeder_150.toml)

Issue 17's target: a 150-connection feeder, one week, all four strategies within
3 minutes. Reports per strategy wall and CPU time (this process: the planners and the
minute loop run in it), the transformer's peak against the cap and the EV energy left
short, then the total against the target and the load average (the machine is shared:
wall time under load is not the code's; CPU time is). The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from community_server.neighbourhood.command import _solver_chatter_hidden  # noqa: E402
from community_server.neighbourhood.scenario import build_scenario  # noqa: E402
from community_server.neighbourhood.spec import load_neighbourhood  # noqa: E402
from community_server.neighbourhood.strategies import Strategy, run_strategy  # noqa: E402

FEEDER = REPO / "examples" / "neighbourhoods" / "feeder_150" / "feeder_150.toml"
TARGET_S = 180.0


def main(path: Path) -> int:
    load_before = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    scenario = build_scenario(load_neighbourhood(path))
    rows = [
        {
            "strategy": "build",
            "wall_s": time.perf_counter() - wall0,
            "cpu_s": time.process_time() - cpu0,
        }
    ]
    for strategy in Strategy:
        wall, cpu = time.perf_counter(), time.process_time()
        with _solver_chatter_hidden():
            result = run_strategy(scenario, strategy)
        rows.append(
            {
                "strategy": strategy.value,
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "peak_kw": result.peak_w / 1000,
                "hours_above_cap": result.hours_above_cap,
                "ev_not_delivered_kwh": result.ev_not_delivered_kwh,
            }
        )
    wall_total = time.perf_counter() - wall0
    cpu_total = time.process_time() - cpu0
    load_after = os.getloadavg()
    homes = scenario.homes
    print(
        f"{scenario.name}: {homes.count} connections, {scenario.days} days, "
        f"{len(homes.sessions)} EV sessions, {int((homes.hp_electric_w > 0).sum())} heat pumps, "
        f"cap {scenario.cap_w / 1000:.0f} kW"
    )
    print(
        f"{'strategy':>10} {'wall s':>8} {'CPU s':>8} {'peak kW':>8} {'h > cap':>8} {'EV short':>9}"
    )
    for row in rows:
        extra = (
            f" {row['peak_kw']:8.1f} {row['hours_above_cap']:8.2f} "
            f"{row['ev_not_delivered_kwh']:8.1f}k"
            if "peak_kw" in row
            else ""
        )
        print(f"{row['strategy']:>10} {row['wall_s']:8.1f} {row['cpu_s']:8.1f}{extra}")
    print(
        f"total: {wall_total:.1f} s wall, {cpu_total:.1f} s CPU (target {TARGET_S:.0f} s); "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    within = cpu_total <= TARGET_S
    print(
        json.dumps(
            {
                "file": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
                "connections": homes.count,
                "days": scenario.days,
                "rows": rows,
                "wall_s": wall_total,
                "cpu_s": cpu_total,
                "target_s": TARGET_S,
                "cpu_within_target": within,
                "wall_within_target": wall_total <= TARGET_S,
                "load_average_before": load_before[0],
                "load_average_after": load_after[0],
            }
        )
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else FEEDER))
