"""The ingest benchmark's machinery, on a small run: every acknowledged report is stored."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from .conftest import MOSQUITTO

BENCH = Path(__file__).resolve().parents[2] / "bench" / "server_ingest.py"


@pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="mosquitto is not installed")
def test_a_short_ingest_run_loses_nothing(socket_enabled: None) -> None:
    spec = importlib.util.spec_from_file_location("server_ingest", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["server_ingest"] = bench
    spec.loader.exec_module(bench)
    row = bench.run(households=20, duration=2.0, rate=2.0)
    assert row["published"] == row["acked_by_broker"] == 20 * 4
    assert row["processed"] == row["published"]
    assert row["lost"] == 0
    assert row["server_peak_rss_mb"] > 0
    assert row["generator_cpu_s"] >= 0
