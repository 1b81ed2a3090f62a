"""Measured inputs of a real feeder (issue 17): a heat pump's electricity from a CSV
column is load its home cannot move, in every strategy; a battery's own schedule drives
it without plans, within its power, its charge and (guarded) its fuse; a session's
own charger power holds in every strategy; a bad value names its file, line and column."""

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


def _battery_csv(path: Path, watts: list[float]) -> None:
    rows = [f"{(START + timedelta(minutes=15 * k)).isoformat()},{w:g}" for k, w in enumerate(watts)]
    path.write_text("timestamp,store\n" + "\n".join(rows) + "\n", encoding="utf-8")


def test_a_battery_follows_its_profile_within_power_and_charge(tmp_path: Path) -> None:
    # 2 kW charge for an hour, then a discharge of 8 kW asked from a 5 kW battery.
    _battery_csv(tmp_path / "store.csv", [2000.0] * 4 + [-8000.0] * 92)
    battery = {"capacity_kwh": 10, "power_kw": 5, "profile_csv": "store.csv"}
    data = street(households=[{"name": "store", "noise": 0.0, "battery": battery}])
    scenario = scenario_of(data, tmp_path)
    result = run_strategy(scenario, Strategy.UNMANAGED)
    battery_w = result.transformer_w - scenario.homes.base_forecast_w[0]
    assert np.allclose(battery_w[:4], 2000.0)  # from 5 kWh to 6.9 kWh stored
    assert np.allclose(battery_w[4:8], -5000.0)  # cut to its power
    # Empty at 10 % (1 kWh) after 5.6 kWh out: then it gives nothing more.
    assert np.allclose(battery_w[10:], 0.0)
    assert -battery_w[4:].sum() * 0.25 == pytest.approx((6900 - 1000) * 0.95, rel=1e-3)
    # Without a profile the same battery covers the base load (self-consumption).
    own = street(households=[{"noise": 0.0, "battery": {"capacity_kwh": 10, "power_kw": 5}}])
    assert scenario_of(own).homes.battery_profile_w is None
    assert run_strategy(scenario_of(own), Strategy.UNMANAGED).transformer_w[0] == 0.0


def test_the_guard_holds_a_scheduled_battery_within_the_fuse(tmp_path: Path) -> None:
    _battery_csv(tmp_path / "store.csv", [5000.0] * 96)
    battery = {"capacity_kwh": 40, "power_kw": 5, "profile_csv": "store.csv"}
    homes = [
        {"connection": "1x25A", "annual_kwh": 15_000, "noise": 0.0, "battery": battery},
        {"noise": 0.0, "battery": {"capacity_kwh": 10, "power_kw": 5}},  # self-consumption
    ]
    scenario = scenario_of(street(households=homes), tmp_path)
    assert np.isnan(scenario.homes.battery_profile_w[1]).all()  # type: ignore[index]
    unmanaged = run_strategy(scenario, Strategy.UNMANAGED)
    # The first quarter: the second home's battery covers its own base load.
    base_w = scenario.homes.base_forecast_w[0, 0]
    assert unmanaged.transformer_w[0] == pytest.approx(base_w + 5000.0)
    fuse_w = 25 * 230
    assert base_w + 5000.0 > fuse_w
    guard = run_strategy(scenario_of(street(households=homes[:1]), tmp_path), Strategy.GUARD)
    assert guard.transformer_w.max() <= fuse_w + 1e-6
    assert guard.transformer_w[0] == pytest.approx(fuse_w, rel=1e-3)  # charging from the room
    bad = {"capacity_kwh": 10, "power_kw": 5, "profile_column": "store"}
    assert "households[0].battery.profile_column: only with profile_csv" in _error(
        street(households=[{"battery": bad}]), tmp_path
    )


def _sessions(path: Path, rows: list[str]) -> None:
    header = "connection,arrival,departure,energy_kwh,charger_kw\n"
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")


def test_a_charger_power_per_session(tmp_path: Path) -> None:
    _sessions(
        tmp_path / "sessions.csv",
        [
            # A car that takes 7.4 kW, then one that takes the charger's 22 kW.
            "garage,2026-01-12T13:00:00+01:00,2026-01-12T15:00:00+01:00,30,7.4",
            "garage,2026-01-12T19:00:00+01:00,2026-01-12T23:00:00+01:00,20,",
        ],
    )
    ev = {"charger_kw": 22, "sessions_csv": "sessions.csv"}
    group = {"name": "garage", "connection": "3x35A", "noise": 0.0, "ev": ev}
    scenario = scenario_of(street(households=[group]), tmp_path)
    first, second = scenario.homes.sessions
    assert (first.max_w, second.max_w) == (7400.0, None)
    assert first.energy_wh == pytest.approx(7400 * 2 * 0.9)  # cut to what 7.4 kW gives
    base_w = scenario.homes.base_forecast_w[0]
    unmanaged = run_strategy(scenario, Strategy.UNMANAGED).transformer_w - base_w
    assert unmanaged[4:8].tolist() == pytest.approx([7400.0] * 4)  # full power on arrival
    assert unmanaged[28] == pytest.approx(22_000.0)
    for strategy in (Strategy.ALONE, Strategy.COMMUNITY):
        result = run_strategy(scenario, strategy)
        car_w = result.transformer_w - base_w
        assert car_w[4:12].max() <= 7400.0 + 1e-6, strategy  # the plan keeps the car's power
        assert result.ev_not_delivered_kwh == pytest.approx(0.0, abs=0.05), strategy


@pytest.mark.parametrize(
    ("power", "message"),
    [
        ("30", "column 'charger_kw': 30 kW, the charger of 'garage' gives 4.14..22 kW"),
        ("3.7", "column 'charger_kw': 3.7 kW, the charger of 'garage' gives 4.14..22 kW"),
        ("60", "column 'charger_kw': must be 3.7..50"),
        ("fast", "column 'charger_kw': not a number: 'fast'"),
    ],
)
def test_a_session_power_the_charger_cannot_give(tmp_path: Path, power: str, message: str) -> None:
    row = f"garage,2026-01-12T13:00:00+01:00,2026-01-12T15:00:00+01:00,5,{power}"
    _sessions(tmp_path / "sessions.csv", [row])
    ev = {"charger_kw": 22, "sessions_csv": "sessions.csv"}
    data = street(households=[{"name": "garage", "connection": "3x35A", "ev": ev}])
    assert f"sessions.csv:2: {message}" in _error(data, tmp_path)
