"""A home with no base load (a charger-only connection) simulates under every strategy.

Its day-ahead plan holds it at 0 W while its car waits, which the live allocator once
refused ("connection_limit_w must be within [1.0, ...]"): the whole run aborted, every
strategy, no table. Here a tiny neighbourhood file goes through the CLI as a user runs it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from community_server.cli import main
from community_server.neighbourhood.command import STRATEGY_NAMES

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

NEIGHBOURHOOD = """
name = "Charger-only street"
seed = 1

[period]
start = "2026-01-12"
days = 1
daily_mean_temperature_c = 0

[transformer]
capacity_kva = 20
power_factor = 1.0

[[households]]
count = 3
connection = "3x25A"
noise = 0.0
ev = { charger_kw = 11, energy_kwh = 20, arrival_sd_h = 0.0 }

[[households]]  # the charger-only connection: nothing but the car draws
count = 1
connection = "3x25A"
noise = 0.0
base_load_csv = "nothing.csv"
ev = { charger_kw = 11, energy_kwh = 20, arrival_sd_h = 0.0 }
"""


def _write_street(folder: Path) -> Path:
    start = datetime(2026, 1, 12, 11, 0, tzinfo=UTC)  # local noon, where the period starts
    rows = [(start + timedelta(minutes=15 * step)).isoformat() + ",0" for step in range(4 * 48)]
    (folder / "nothing.csv").write_text("timestamp,nothing\n" + "\n".join(rows) + "\n")
    path = folder / "street.toml"
    path.write_text(NEIGHBOURHOOD)
    return path


def test_a_home_without_base_load_simulates_under_every_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["simulate", str(_write_street(tmp_path)), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    for strategy in STRATEGY_NAMES:
        assert any(line.split()[:1] == [strategy] for line in table.splitlines()), table
    results = json.loads((out / "simulation.json").read_text())
    by_strategy = results["strategies"]
    assert set(by_strategy) == set(STRATEGY_NAMES)
    # The community's live allocation keeps four 11 kW cars under the 20 kW transformer,
    # and every car, the charger-only home's too, still charges in full by morning.
    community = by_strategy["community"]
    assert community["peak_w"] <= 20_000.0
    assert community["ev_not_delivered_kwh"] < 0.1
