"""The abuse benchmark's machinery, on a small run: attackers locked out, members never, and
every acknowledged report stored. (Latency ratios are the benchmark's to judge, not CI's.)"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from .conftest import MOSQUITTO

BENCH = Path(__file__).resolve().parents[2] / "bench" / "abuse.py"


@pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="mosquitto is not installed")
def test_a_short_abuse_run_locks_out_the_attackers_and_loses_nothing(socket_enabled: None) -> None:
    spec = importlib.util.spec_from_file_location("abuse", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["abuse"] = bench
    spec.loader.exec_module(bench)
    options = "--attackers 2 --rate 50 --flood 50 --households 3 --report-rate 2 --duration 2"
    row = bench.run([*options.split(), "--rounds", "2"])
    assert row["reports_published"] == 2 * 2 * 3 * 2 * 2  # rounds, phases, households, s, rate
    assert row["lost"] == 0
    assert row["household_http_refused"] == 0
    # Each round's attackers come from fresh addresses, and each is locked out.
    assert set(row["locked_out_after_attempt"]) == {
        f"127.0.{r}.{n} {kind}" for r in (0, 1) for n in (2, 3) for kind in ("join", "basic")
    }
    assert row["worst_lockout_attempt"] <= 20
    assert row["bad_messages_published"] > 0  # within the windows; the rate achieved is shown
    assert row["bad_messages_acked"] == row["bad_messages_rejected"]
    assert row["bad_messages_rejected"] == row["bad_messages_published"]
    assert row["rejection_log_lines"] <= 10
    assert row["allocation_rounds"] > 0
