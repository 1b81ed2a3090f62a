"""Benchmark two checkouts side by side: the median of N runs of each benchmark, per tree.

Usage: python bench/compare_trees.py OLD_TREE NEW_TREE [--runs 5] [--only NAME ...]

Runs every benchmark both trees have, alternating old and new so that the machine's
load falls on both alike, and compares each timing figure of their JSON last lines
(keys that name a duration: `*_ms`, `*_s`, `seconds`, `p50`, `p99`, ...). A figure is
"slower" when the new median exceeds the old by more than the tolerance (15 %). Figures
below 1 ms are compared but not judged (timer noise). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

TOLERANCE = 0.15
NOISE_FLOOR_MS = 1.0
TIMING_KEY = re.compile(r"(_ms|_s|seconds|latency|p50|p95|p99|median|time)$")
# Arguments that keep a run short enough for five repetitions of every benchmark.
ARGS: dict[str, list[str]] = {
    "collective_scaling": ["250", "1000"],
    "guard_latency_during_solve": ["10"],
    "live_allocation": ["--households", "250"],
    "modbus_roundtrip": ["--cycles", "200"],
    # The shared scenarios only (without arguments it also plans a synthetic year).
    "planner_vs_reference": [
        "../shared/bench/scenario_household_96.json",
        "../shared/bench/scenario_household_672.json",
    ],
}
# Benchmarks that measure attacks or persistence, with nothing to compare before.
SKIP = {"compare_trees", "abuse", "broker_persistence", "http_auth"}


def _flatten(value: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            label = item.get("n", item.get("name", index)) if isinstance(item, dict) else index
            out.update(_flatten(item, f"{prefix}[{label}]"))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out[prefix] = float(value)
    return out


def _run(tree: Path, name: str) -> dict[str, float] | None:
    command = [sys.executable, f"bench/{name}.py", *ARGS.get(name, [])]
    result = subprocess.run(
        command, cwd=tree, capture_output=True, text=True, check=False, timeout=1800
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        print(f"  {tree.name}/{name}: exit {result.returncode} {result.stderr[-300:]!r}")
        return None
    # A benchmark exits 1 when it misses a target; its figures still count.
    try:
        figures = _flatten(json.loads(lines[-1]))
    except json.JSONDecodeError:
        return None
    return {key: value for key, value in figures.items() if TIMING_KEY.search(key.split(".")[-1])}


def _unit_ms(key: str, value: float) -> float:
    last = key.rsplit(".", maxsplit=1)[-1]
    return value if last.endswith("_ms") or "p50" in last or "p99" in last else value * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None)
    options = parser.parse_args()
    names = sorted(
        path.stem
        for path in (options.new / "bench").glob("*.py")
        if (options.old / "bench" / path.name).exists() and path.stem not in SKIP
    )
    if options.only:
        names = [name for name in names if name in options.only]
    report: dict[str, Any] = {"runs": options.runs, "load_average": os.getloadavg()[0]}
    slower: list[str] = []
    print(f"{'benchmark.figure':70} {'old':>10} {'new':>10} {'ratio':>7}")
    for name in names:
        samples: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for _ in range(options.runs):
            for side in ("old", "new"):
                figures = _run(getattr(options, side), name)
                if figures is not None:
                    samples[side].append(figures)
        rows = {}
        for key in sorted(set().union(*samples["old"]) & set().union(*samples["new"])):
            old = statistics.median(s[key] for s in samples["old"] if key in s)
            new = statistics.median(s[key] for s in samples["new"] if key in s)
            ratio = new / old if old else float("inf") if new else 1.0
            judged = _unit_ms(key, old) >= NOISE_FLOOR_MS
            if judged and ratio > 1 + TOLERANCE:
                slower.append(f"{name}.{key}")
            rows[key] = {"old": old, "new": new, "ratio": round(ratio, 3), "judged": judged}
            print(f"{name + '.' + key:70.70} {old:10.4g} {new:10.4g} {ratio:7.2f}")
        report[name] = {
            "completed": {side: len(runs) for side, runs in samples.items()},
            "figures": rows,
        }
    report["slower_than_tolerance"] = slower
    report["tolerance"] = TOLERANCE
    print(json.dumps(report))


if __name__ == "__main__":
    main()
