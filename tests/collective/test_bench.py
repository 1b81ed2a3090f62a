"""The scaling benchmark's own checks, on a small size (its timing targets need 250+)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_benchmark_runs_and_reports_a_cap_respecting_near_optimal_plan() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "collective_scaling.py"), "40"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["all_ok"]
    (row,) = figures["rows"]
    assert row["steps_over_cap"] == 0
    assert row["gap_pct"] <= 0.5
    assert row["lower_bound_eur"] <= row["direct_cost_eur"] + 1e-6
    assert row["peak_alone_kw"] > row["cap_kw"] >= row["peak_kw"] - 1e-6
    assert figures["non_binding"]["alone_unchanged"]
