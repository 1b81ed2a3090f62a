"""Connections with no base load (charger only, PV only, a battery, a heat pump only)
simulate under every strategy.

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


ZERO_BASE_STREET = """
name = "Connections without base load"
seed = 2

[period]
start = "2026-01-12"
days = 1
daily_mean_temperature_c = 3

[transformer]
capacity_kva = 40
power_factor = 1.0

[[households]]
count = 3
connection = "3x25A"
noise = 0.1
ev = { charger_kw = 11, energy_kwh = 15, arrival_sd_h = 0.5 }

[[households]]  # PV only: a field or a barn roof, nothing else
name = "pv-field"
connection = "3x80A"
noise = 0.0
base_load_csv = "nothing.csv"
base_load_column = "nothing"
pv_peak_w = 40000

[[households]]  # a garage: a 22 kW charger and no base load
name = "garage"
connection = "3x40A"
noise = 0.0
base_load_csv = "nothing.csv"
base_load_column = "nothing"
ev = { charger_kw = 22, energy_kwh = 30, arrival_h = 19, arrival_sd_h = 0.0 }

[[households]]  # the neighbourhood battery, with PV beside it
name = "battery"
connection = "3x63A"
noise = 0.0
base_load_csv = "nothing.csv"
base_load_column = "nothing"
pv_peak_w = 10000
battery = { capacity_kwh = 100, power_kw = 40 }

[[households]]  # a zero base load with a heat pump only (a detached boiler room)
name = "boiler-room"
connection = "3x35A"
noise = 0.0
base_load_csv = "nothing.csv"
base_load_column = "nothing"
heat_pump = { kind = "full", electric_w = 6000, heat_loss_w_per_k = 400 }
"""


def test_pv_only_and_zero_base_connections_simulate_under_every_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_street(tmp_path)
    path = tmp_path / "zero.toml"
    path.write_text(ZERO_BASE_STREET)
    out = tmp_path / "out"
    assert main(["simulate", str(path), "--out", str(out)]) == 0
    capsys.readouterr()
    results = json.loads((out / "simulation.json").read_text())
    # Unnamed homes by index, named connections by their names.
    assert results["connections"] == [
        "home-0000",
        "home-0001",
        "home-0002",
        "pv-field",
        "garage",
        "battery",
        "boiler-room",
    ]
    by_strategy = results["strategies"]
    assert set(by_strategy) == set(STRATEGY_NAMES)
    for strategy, result in by_strategy.items():
        # Every car is charged by its departure, the garage's 30 kWh too.
        assert result["ev_not_delivered_kwh"] < 0.1, strategy
    assert by_strategy["community"]["peak_w"] <= 40_000.0
