"""The settlement benchmark's machinery, on a tiny run, so it cannot rot."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "settlement.py"


def test_a_tiny_settlement_run_settles_everyone_and_adds_up() -> None:
    spec = importlib.util.spec_from_file_location("settlement_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["settlement_bench"] = bench
    spec.loader.exec_module(bench)
    row = bench.run(households=6, shapley_households=14, groups=(3, 5), quarters=192, ingest=(2, 5))
    assert row["settled_households"] == 6
    assert row["totals_add_up"] is True
    assert row["shapley_adds_up"] is True
    assert row["brute_force_max_error_of_saving"] <= 0.01
    assert row["settle_peak_rss_mb"] > 0
    assert row["delivered_kwh"] >= 0
    assert row["ingest_cpu_us_per_report"] > 0
