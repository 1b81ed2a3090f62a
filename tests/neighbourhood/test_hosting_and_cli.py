"""Hosting capacity on a small case, the outputs written and the CLI's error handling."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from community_server.cli import main
from community_server.neighbourhood.hosting import (
    Asset,
    Capacity,
    Trial,
    candidates,
    capacity_table,
    hosting_capacity,
    with_assets,
)
from community_server.neighbourhood.report import write_outputs
from community_server.neighbourhood.strategies import Strategy, run_strategies

from .conftest import scenario_of, street

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from community_server.neighbourhood.scenario import Scenario


def _empty_street() -> Scenario:
    data = street(transformer={"capacity_kva": 15, "power_factor": 1.0})
    data["households"] = [{"count": 6, "connection": "3x25A", "noise": 0.0}]
    return scenario_of(data)


def test_added_assets_leave_the_others_unchanged() -> None:
    scenario = _empty_street()
    assert len(candidates(scenario, Asset.EV)) == 6
    two, three = with_assets(scenario, Asset.EV, 2), with_assets(scenario, Asset.EV, 3)
    assert set(two.homes.sessions) < set(three.homes.sessions)
    assert (three.homes.ev_max_w > 0).sum() == 3
    pumps = with_assets(scenario, Asset.HEAT_PUMP, 4)
    assert (pumps.homes.hp_electric_w > 0).sum() == 4
    assert np.count_nonzero(pumps.homes.heat_demand_w.sum(axis=1)) == 4


def test_community_hosts_more_chargers_than_unmanaged() -> None:
    scenario = _empty_street()
    unmanaged = hosting_capacity(scenario, Asset.EV, Strategy.UNMANAGED)
    community = hosting_capacity(scenario, Asset.EV, Strategy.COMMUNITY)
    # 15 kW: two 11 kW cars charging at once do not fit; spread over the night, more do.
    assert unmanaged.hosted <= 2
    assert community.hosted > unmanaged.hosted
    assert all(t.fits == (t.count <= community.hosted) for t in community.trials)


def test_outputs_are_written(tmp_path: Path) -> None:
    scenario = scenario_of(street())
    results = run_strategies(scenario, [Strategy.UNMANAGED, Strategy.GUARD])
    paths = write_outputs(scenario, results, tmp_path)
    assert [p.name for p in paths] == [
        "simulation.json",
        "transformer_load.png",
        "household_costs.png",
    ]
    for path in paths[1:]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths[0].read_text(encoding="utf-8"))
    assert set(data["strategies"]) == {"unmanaged", "guard"}
    assert len(data["strategies"]["guard"]["household_cost_eur"]) == 4
    assert len(data["strategies"]["guard"]["transformer_w"]) == 96


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "street.toml"
    path.write_text(text, encoding="utf-8")
    return path


STREET = """
seed = 2
[period]
days = 1
[transformer]
capacity_kva = 30
[[households]]
count = 3
ev = { charger_kw = 11, energy_kwh = 10 }
"""


def test_cli_simulate_and_hosting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, STREET)
    out = tmp_path / "out"
    code = main(["simulate", str(path), "--strategies", "unmanaged,community", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "unmanaged" in printed
    assert "community" in printed
    assert (out / "transformer_load.png").is_file()
    code = main(["hosting-capacity", str(path), "--strategies", "guard", "--out", str(out)])
    assert code == 0
    assert (out / "hosting_capacity_ev.png").is_file()
    assert json.loads((out / "hosting_capacity_ev.json").read_text())["asset"] == "ev"


def test_cli_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, STREET)
    assert main(["simulate", str(path), "--strategies", "chaos"]) == 2
    assert "--strategies" in capsys.readouterr().err
    bad = _write(tmp_path, STREET.replace("capacity_kva = 30", "capacity_kva = -1"))
    assert main(["simulate", str(bad)]) == 2
    assert "transformer.capacity_kva" in capsys.readouterr().err
    assert main(["hosting-capacity", str(bad.parent / "none.toml")]) == 2
    assert main(["hosting-capacity", str(path), "--days", "9"]) == 2


def test_table_says_why_the_base_case_fails() -> None:
    failing = Capacity(Strategy.COMMUNITY, 0, False, (Trial(0, False, 369_400.0, 12),))
    table = capacity_table(Asset.EV, [failing], 55)
    assert "community:    0" in table
    assert "peak 369 kW, 12 EV sessions short" in table
