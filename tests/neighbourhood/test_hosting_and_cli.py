"""Hosting capacity on a small case, the outputs written and the CLI's error handling."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

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
from community_server.neighbourhood.report import summary_table, write_outputs
from community_server.neighbourhood.strategies import Strategy, run_strategies

from .conftest import scenario_of, street

if TYPE_CHECKING:
    from pathlib import Path

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


def test_heat_pump_figures_in_the_table_and_json(tmp_path: Path) -> None:
    data = street()
    data["households"] = [
        {"count": 2, "heat_pump": {"kind": "hybrid", "comfort": {"night_c": 16}}},
        {"count": 1, "heat_pump": {"kind": "full", "electric_w": 4000}},
    ]
    scenario = scenario_of(data)
    results = run_strategies(scenario, [Strategy.UNMANAGED])
    header = summary_table(scenario, results).splitlines()[1]
    for column in ("elec kWh", "elec EUR", "gas m3", "gas EUR", "cold Kh", "worst Kh"):
        assert column in header
    unmanaged = json.loads(write_outputs(scenario, results, tmp_path)[0].read_text("utf-8"))[
        "strategies"
    ]["unmanaged"]
    result = results[0]
    assert unmanaged["gas_m3"] == pytest.approx(result.gas_m3.sum(), abs=1e-3)
    assert unmanaged["gas_m3"] > 0
    assert unmanaged["gas_eur"] == pytest.approx(unmanaged["gas_m3"] * 0.14 * 9.77, rel=1e-3)
    assert unmanaged["comfort_kh_below_worst_home"] == max(unmanaged["household_comfort_kh_below"])
    assert unmanaged["comfort_kh_below"] > 0  # the 16 C night: the morning is cold
    assert unmanaged["electricity_eur"] + unmanaged["gas_eur"] == pytest.approx(
        unmanaged["community_cost_eur"], abs=0.02
    )
