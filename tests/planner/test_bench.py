"""The benchmark's own checks, on the shared 96-step scenario when it is present."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
SCENARIO = REPO.parent / "shared" / "bench" / "scenario_household_96.json"


@pytest.mark.skipif(not SCENARIO.exists(), reason="shared benchmark scenarios not present")
def test_benchmark_reaches_the_reference_with_every_constraint_checked() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "planner_vs_reference.py"), str(SCENARIO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["all_ok"]
    for name in ("household_96", "household_96 +6A min"):
        scenario = figures["scenarios"][name]
        assert abs(scenario["gap_pct"]) <= 0.01
        assert scenario["constraints_ok"]
