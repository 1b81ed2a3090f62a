"""Measured inputs of a real feeder (issue 17): a heat pump's electricity from a CSV
column is load its home cannot move, in every strategy; a bad value names its file,
line and column."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pytest

from community_server.neighbourhood.spec import NeighbourhoodError
from community_server.neighbourhood.strategies import Strategy, run_strategy

from .conftest import scenario_of, street

if TYPE_CHECKING:
    from pathlib import Path

START = datetime(2026, 1, 12, 11, tzinfo=UTC)  # local noon (CET) of the period's first day


def _pump_csv(path: Path, watts: list[float]) -> None:
    """Column 'pump' holds watts[k] at step k, 'shed' 500 W at every step."""
    rows = [
        f"{(START + timedelta(minutes=15 * k)).isoformat()},{w:g},500" for k, w in enumerate(watts)
    ]
    text = "timestamp,pump,shed\n" + "\n".join(rows) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")


def _error(data: dict[str, object], base: Path) -> str:
    with pytest.raises(NeighbourhoodError) as caught:
        scenario_of(data, base)
    return str(caught.value)


def test_a_measured_pump_is_fixed_load_in_every_strategy(tmp_path: Path) -> None:
    # 3 kW for the first six hours (the evening), then 1 kW.
    _pump_csv(tmp_path / "pump.csv.gz", [3000.0] * 24 + [1000.0] * 72)
    car = {"charger_kw": 11, "energy_kwh": 20, "arrival_sd_h": 0.0}
    home = {"name": "house", "noise": 0.0, "ev": car}
    measured = home | {"heat_pump_csv": "pump.csv.gz", "heat_pump_column": "pump"}
    without = scenario_of(street(households=[home]), tmp_path)
    scenario = scenario_of(street(households=[measured]), tmp_path)
    pump_w = np.array([3000.0] * 24 + [1000.0] * 72)
    assert np.allclose(scenario.homes.base_forecast_w[0] - without.homes.base_forecast_w[0], pump_w)
    # Not a thermal model: nothing for a strategy to steer.
    assert scenario.homes.hp_electric_w.tolist() == [0.0]
    assert scenario.homes.buildings is None
    for strategy in Strategy:
        result = run_strategy(scenario, strategy)
        # The car still gets its 20 kWh; the home's energy grows by exactly the pump's.
        assert result.ev_not_delivered_kwh == pytest.approx(0.0, abs=0.01), strategy
        extra_kwh = (result.transformer_w - run_strategy(without, strategy).transformer_w).sum()
        assert extra_kwh * 0.25 / 1000 == pytest.approx(pump_w.sum() * 0.25 / 1000, rel=1e-6)


def test_the_connection_named_column_and_its_errors(tmp_path: Path) -> None:
    _pump_csv(tmp_path / "pump.csv", [800.0] * 96)
    data = street(households=[{"name": "shed", "noise": 0.0, "heat_pump_csv": "pump.csv"}])
    base = scenario_of(street(households=[{"name": "shed", "noise": 0.0}]), tmp_path)
    named = scenario_of(data, tmp_path).homes.base_forecast_w[0]
    assert np.allclose(named - base.homes.base_forecast_w[0], 500.0)  # the column 'shed'
    assert "households[0].heat_pump_column: only with heat_pump_csv" in _error(
        street(households=[{"heat_pump_column": "pump"}]), tmp_path
    )
    both = {"heat_pump_csv": "pump.csv", "heat_pump": {"kind": "full"}}
    assert "households[0].heat_pump_csv: give either" in _error(street(households=[both]), tmp_path)
    _pump_csv(tmp_path / "bad.csv", [800.0] * 10 + [-50.0] + [800.0] * 85)
    bad = {"heat_pump_csv": "bad.csv", "heat_pump_column": "pump"}
    # The header is line 1: step 10 is line 12.
    assert "bad.csv:12: column 'pump': must be at least 0 W, got -50" in _error(
        street(households=[bad]), tmp_path
    )
