"""The shipped 150-connection feeder (issue 17) is what its generator writes, and it reads
as the feeder it describes. Simulating its week is bench/feeder.py's job (minutes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from community_server.neighbourhood.scenario import build_scenario
from community_server.neighbourhood.spec import load_neighbourhood

FOLDER = Path(__file__).parents[2] / "examples" / "neighbourhoods" / "feeder_150"
FILES = (
    "feeder_150.toml",
    "base_load.csv.gz",
    "pv.csv.gz",
    "sessions.csv",
    "day_ahead.csv",
    "non_member.csv",
)


def test_the_shipped_files_are_the_generators(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("feeder_150_generate", FOLDER / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    generator.main(tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (FOLDER / name).read_bytes(), name
    assert sum((FOLDER / name).stat().st_size for name in FILES) < 1_000_000


def test_the_feeder_reads_as_described() -> None:
    scenario = build_scenario(load_neighbourhood(FOLDER / "feeder_150.toml"))
    homes = scenario.homes
    assert homes.count == 150
    assert homes.limit_w.max() == 3 * 230 * 80  # small businesses on 3x80A
    pumps = homes.hp_electric_w[homes.hp_electric_w > 0]
    assert (pumps.min(), pumps.max()) == (450, 28_000)
    assert len(set(pumps)) >= 6
    chargers = set(homes.ev_max_w[homes.ev_max_w > 0].tolist())
    assert chargers == {3700.0, 11_000.0, 22_000.0}
    # About four sessions a week per car; workplace sessions from about 08:30 local.
    cars = int((homes.ev_max_w > 0).sum())
    assert 2.5 <= len(homes.sessions) / cars <= 6
    starts_local = {(s.start_step * 15 + 12 * 60) // 60 % 24 for s in homes.sessions}
    assert {7, 8, 9} & starts_local
    assert (homes.base_forecast_w.sum(axis=1) == 0).sum() == 2  # the garage and the battery
    assert (homes.battery_wh > 0).sum() >= 5
    assert (homes.pv_w.max(axis=1) > 0).sum() >= 60
    # The week crosses the change to summer time; the non-members' load is a series.
    assert scenario.start.isoformat() == "2026-03-23T11:00:00+00:00"
    assert np.ptp(scenario.non_member_w) > 1000
