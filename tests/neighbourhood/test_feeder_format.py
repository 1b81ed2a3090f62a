"""What a real LV feeder needs in the neighbourhood file (issue 17): connection sizes up
to 3x80A, named CSV columns per connection (gzip too), EV sessions from a file or drawn a
few times a week at any hour, non-member load as a series, daylight saving and Dutch
price components; each bad input names its field, or its file, line and column."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from community_server.neighbourhood.scenario import day_parts
from community_server.neighbourhood.spec import NeighbourhoodError, parse_neighbourhood

from .conftest import scenario_of, street

START = datetime(2026, 1, 12, 11, tzinfo=UTC)  # local noon (CET) of the period's first day


def _profile(path: Path, names: list[str], steps: int = 96, start: datetime = START) -> None:
    """Column j holds (j + 1) * 100 W at every step."""
    lines = ["timestamp," + ",".join(names)]
    for k in range(steps):
        moment = (start + timedelta(minutes=15 * k)).isoformat()
        lines.append(moment + "," + ",".join(str((j + 1) * 100) for j in range(len(names))))
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")


def _error(data: dict[str, object], base: Path = Path()) -> str:
    with pytest.raises(NeighbourhoodError) as caught:
        scenario_of(data, base)
    return str(caught.value)


@pytest.mark.parametrize(
    ("connection", "limit_w"), [("1x25A", 5750.0), ("3x50A", 34_500.0), ("3x80A", 55_200.0)]
)
def test_connection_sizes_up_to_a_small_business(connection: str, limit_w: float) -> None:
    scenario = scenario_of(street(households=[{"connection": connection, "noise": 0.0}]))
    assert scenario.homes.limit_w.tolist() == [limit_w]


def test_chargers_from_3_7_to_50_kw_and_large_pumps() -> None:
    group = {
        "connection": "3x80A",
        "ev": {"charger_kw": 50, "energy_kwh": 40, "arrival_sd_h": 0.0},
        "heat_pump": {"kind": "full", "electric_w": 28_000, "min_electric_w": 6000},
    }
    scenario = scenario_of(street(households=[group]))
    assert scenario.homes.ev_max_w.tolist() == [50_000.0]
    assert scenario.homes.hp_electric_w.tolist() == [28_000.0]
    storage = {"connection": "3x80A", "battery": {"capacity_kwh": 1000, "power_kw": 55}}
    assert scenario_of(street(households=[storage])).homes.battery_wh.tolist() == [1e6]
    too_much = {"connection": "3x63A", "battery": {"capacity_kwh": 200, "power_kw": 50}}
    assert "households[0].battery.power_kw: 50 kW does not fit a 3x63A" in _error(
        street(households=[too_much])
    )
    big = {"connection": "3x25A", "heat_pump": {"kind": "full", "electric_w": 18_000}}
    assert "households[0].heat_pump.electric_w: 18000 W does not fit a 3x25A" in _error(
        street(households=[big])
    )


def test_named_columns_per_connection_and_gzip(tmp_path: Path) -> None:
    _profile(tmp_path / "base.csv.gz", ["shop", "flat-2", "flat-1"])
    _profile(tmp_path / "pv.csv", ["south", "west"])
    data = street(
        households=[
            {"name": "flat", "count": 2, "noise": 0.0, "base_load_csv": "base.csv.gz"},
            {
                "name": "shop",
                "connection": "3x63A",
                "noise": 0.0,
                "base_load_csv": "base.csv.gz",
                "pv_csv": "pv.csv",
                "pv_column": "west",
                "pv_peak_w": 20_000,
            },
        ]
    )
    homes = scenario_of(data, tmp_path).homes
    # By name, whatever the columns' order: flat-1 is the third column, flat-2 the second.
    assert homes.base_forecast_w[:, 0].tolist() == [300.0, 200.0, 100.0]
    assert homes.names == ("flat-1", "flat-2", "shop")
    assert homes.pv_w[2, 0] == pytest.approx(200.0 / 1000 * 20_000)  # "west": 200 W/kWp
    data["households"][0]["name"] = "house"
    message = _error(data, tmp_path)
    assert "base.csv.gz:1: no column 'house-1' for connection 'house-1'" in message


def test_column_mapping_errors(tmp_path: Path) -> None:
    _profile(tmp_path / "base.csv", ["a"])
    data = street(households=[{"pv_column": "a"}])
    assert "households[0].pv_column: only with pv_csv" in _error(data, tmp_path)
    twice = [{"name": "a", "count": 2}, {"name": "a-1"}]
    assert "households[1].name: connection 'a-1' is also in households[0]" in _error(
        street(households=twice)
    )
    assert "households[0].name" in _error(street(households=[{"name": "a b"}]))
    (tmp_path / "bad.csv").write_text(
        f"timestamp,a,b\n{START.isoformat()},1,many\n", encoding="utf-8"
    )
    assert "bad.csv:2: column 'b': not a number: 'many'" in _error(
        street(households=[{"base_load_csv": "bad.csv"}]), tmp_path
    )
    (tmp_path / "when.csv").write_text("timestamp,a\nmonday,1\n", encoding="utf-8")
    assert "when.csv:2: column 'timestamp': not an ISO 8601 time" in _error(
        street(households=[{"base_load_csv": "when.csv"}]), tmp_path
    )


def _sessions(path: Path, rows: list[str]) -> None:
    path.write_text("connection,arrival,departure,energy_kwh\n" + "\n".join(rows) + "\n")


def test_sessions_from_a_file_any_time_of_day(tmp_path: Path) -> None:
    _sessions(
        tmp_path / "sessions.csv",
        [
            # Two sessions on one day: a morning at work, an evening at home.
            "garage,2026-01-12T13:00:00+01:00,2026-01-12T15:00:00+01:00,10",
            "garage,2026-01-12T19:00:00+01:00,2026-01-13T07:00:00+01:00,30",
            "garage,2026-01-13T08:30:00+01:00,2026-01-13T17:00:00+01:00,100",  # past the end
        ],
    )
    ev = {"charger_kw": 22, "sessions_csv": "sessions.csv"}
    data = street(households=[{"name": "garage", "connection": "3x35A", "ev": ev}])
    sessions = scenario_of(data, tmp_path).homes.sessions
    assert [(s.start_step, s.end_step) for s in sessions] == [(4, 12), (28, 76), (82, 96)]
    assert sessions[0].energy_wh == 10_000.0
    # The last is cut to the period: at most 90 % of what 22 kW gives in 3.5 hours.
    assert sessions[2].energy_wh == pytest.approx(22_000 * 3.5 * 0.9)
    # Planned day by day, the session across noon splits by its steps' share of energy.
    parts = day_parts(sessions[1:2], 48)
    assert [(p.start_step, p.end_step) for p in parts] == [(28, 48), (48, 76)]
    assert sum(p.energy_wh for p in parts) == pytest.approx(30_000)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("garage,2026-01-12T13:00:00,2026-01-12T15:00:00+01:00,5", "2: column 'arrival'"),
        ("garage,2026-01-12T13:00:00+01:00,2026-01-12T12:00:00+01:00,5", "2: column 'departure'"),
        ("garage,2026-01-12T13:00:00+01:00,2026-01-12T15:00:00+01:00,x", "2: column 'energy_kwh'"),
        ("shed,2026-01-12T13:00:00+01:00,2026-01-12T15:00:00+01:00,5", "2: column 'connection'"),
    ],
)
def test_bad_session_rows_name_line_and_column(tmp_path: Path, row: str, message: str) -> None:
    _sessions(tmp_path / "sessions.csv", [row])
    ev = {"charger_kw": 11, "sessions_csv": "sessions.csv"}
    data = street(households=[{"name": "garage", "ev": ev}])
    assert f"sessions.csv:{message}" in _error(data, tmp_path)


def test_overlapping_sessions_name_the_other_line(tmp_path: Path) -> None:
    _sessions(
        tmp_path / "sessions.csv",
        [
            "garage,2026-01-12T13:00:00+01:00,2026-01-12T18:00:00+01:00,5",
            "garage,2026-01-12T17:00:00+01:00,2026-01-12T20:00:00+01:00,5",
        ],
    )
    data = street(households=[{"name": "garage", "ev": {"sessions_csv": "sessions.csv"}}])
    assert "sessions.csv:3: column 'arrival': overlaps the session of line 2" in _error(
        data, tmp_path
    )


def test_sessions_file_needs_named_connections(tmp_path: Path) -> None:
    _sessions(tmp_path / "sessions.csv", [])
    data = street(households=[{"ev": {"sessions_csv": "sessions.csv"}}])
    assert "households[0].ev.sessions_csv: needs the group's name" in _error(data, tmp_path)


def test_drawn_daytime_sessions_a_few_times_a_week() -> None:
    ev = {
        "charger_kw": 22,
        "arrival_h": 8.5,
        "arrival_sd_h": 0.0,
        "departure_h": 17.0,
        "sessions_per_week": 4,
        "energy_kwh": 20,
    }
    data = street(households=[{"count": 20, "connection": "3x40A", "ev": ev}])
    data["period"] = {"start": "2026-01-12", "days": 7}
    sessions = scenario_of(data).homes.sessions
    # Arriving at 08:30 local: 20.5 hours after the day's noon, leaving at 17:00.
    # On the last day the session is cut at the period's end (the next day's noon).
    last = 96 * 7
    assert {s.start_step % 96 for s in sessions} == {82}
    assert all(s.end_step == min(s.start_step + 34, last) for s in sessions)
    per_week = len(sessions) / 20
    assert 2.5 <= per_week <= 5.5  # about four of seven days (seeded, 20 cars)
    assert "ev.departure_h: must differ" in _error(
        street(households=[{"ev": {"arrival_h": 9, "departure_h": 9}}])
    )


def test_daylight_saving_moves_the_local_clock() -> None:
    data = street(households=[{"noise": 0.0, "ev": {"arrival_sd_h": 0.0, "energy_kwh": 5}}])
    data["period"] = {"start": "2026-03-28", "days": 2}  # summer time from 29 March 02:00
    scenario = scenario_of(data)
    assert scenario.start == datetime(2026, 3, 28, 11, tzinfo=UTC)
    # 18:00 local: 24 quarters after noon on the first day, 96 + 20 on the second (CEST).
    assert [s.start_step for s in scenario.homes.sessions] == [24, 116]
    assert "period.timezone: not a known time zone" in _error(
        street(period={"timezone": "Mars/Olympus"})
    )


def test_non_member_load_series(tmp_path: Path) -> None:
    hours = [f"{(START + timedelta(hours=h)).isoformat()},{1000 * h}" for h in range(24)]
    (tmp_path / "others.csv").write_text("timestamp,non_member_w\n" + "\n".join(hours) + "\n")
    scenario = scenario_of(street(transformer={"non_member_csv": "others.csv"}), tmp_path)
    assert scenario.non_member_w[[0, 4, 95]].tolist() == [0.0, 1000.0, 23_000.0]
    both = street(transformer={"non_member_csv": "others.csv", "non_member_load_w": 5})
    assert "transformer.non_member_csv: give either" in _error(both, tmp_path)
    (tmp_path / "wrong.csv").write_text("timestamp,w\n" + "\n".join(hours) + "\n")
    assert "header must be 'timestamp,non_member_w'" in _error(
        street(transformer={"non_member_csv": "wrong.csv"}), tmp_path
    )


def test_dutch_price_components() -> None:
    prices = {
        "supplier_markup_eur_per_kwh": 0.02,
        "energy_tax_eur_per_kwh": 0.1,
        "vat_factor": 1.21,
        "import_markup_eur_per_kwh": 0.0,
        "export_markup_eur_per_kwh": 0.01,
    }
    plain = scenario_of(street(prices={"import_markup_eur_per_kwh": 0.0}))
    dutch = scenario_of(street(prices=prices))
    day_ahead = plain.import_price
    assert np.allclose(dutch.import_price, (day_ahead + 0.12) * 1.21)
    assert np.allclose(dutch.export_price, day_ahead - 0.01)
    with pytest.raises(NeighbourhoodError, match=r"prices\.vat_factor"):
        parse_neighbourhood(street(prices={"vat_factor": 0.8}), Path())
