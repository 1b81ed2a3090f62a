"""Heat pumps in the neighbourhood file: the old keys map onto the thermal model, the new
keys are each checked by name, and the outdoor temperature comes from a CSV or the
daily means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from community_server.neighbourhood.spec import (
    HeatPumpKind,
    NeighbourhoodError,
    PumpControl,
    parse_neighbourhood,
)
from netbewust_core.thermal import BuildingType, InsulationEra, default_parameters

from .conftest import scenario_of, street


def _with_pump(pump: dict[str, Any], **period: Any) -> dict[str, Any]:
    data = street()
    data["households"] = [{"count": 1, "connection": "3x25A", "heat_pump": pump}]
    if period:
        data["period"] = {"start": "2026-01-12", "days": 1, **period}
    return data


def test_the_old_keys_give_a_thermal_model() -> None:
    old = {"kind": "full", "electric_w": 4900, "cop": 3.2, "heat_loss_w_per_k": 280}
    scenario = scenario_of(_with_pump(old))
    buildings = scenario.homes.buildings
    assert buildings is not None
    model = buildings.models[0]
    assert model is not None
    assert model.thermal.heat_loss_w_per_k == pytest.approx(280.0)
    # 280 W/K is beyond every semi-detached default: a detached home's capacity.
    assert model.thermal.capacitance_kwh_per_k == 13.0
    assert model.cop.cop(7.0) == pytest.approx(3.2)  # the rating point A7/W35
    assert model.cop.cop(-7.0) < 3.2 < model.cop.cop(12.0)
    assert model.boiler is None
    assert model.control is PumpControl.MODULATING
    # The thermostat's need: zero only where the band lets the home cool.
    assert scenario.homes.heat_demand_w[0].max() > 280 * 20


def test_building_type_era_and_the_new_keys() -> None:
    pump = {
        "kind": "hybrid",
        "electric_w": 1000,
        "building": "terraced",
        "era": "before_1975",
        "boiler_kw": 18,
        "gas_eur_per_m3": 1.1,
        "comfort": {"day_c": 21, "night_c": 17, "night_from_h": 23},
    }
    scenario = scenario_of(_with_pump(pump))
    group = scenario.spec.groups[0].heat_pump
    assert group is not None
    assert group.kind is HeatPumpKind.HYBRID
    defaults = default_parameters(BuildingType.TERRACED, InsulationEra.BEFORE_1975)
    model = scenario.homes.buildings.models[0] if scenario.homes.buildings else None
    assert model is not None
    assert model.thermal == defaults
    assert model.boiler is not None
    assert model.boiler.max_heat_w == 18_000
    assert model.boiler.gas_price_eur_per_m3 == 1.1
    band = model.comfort
    # Noon: day; 23:00 local is step 44: night, reaching up to the day set point.
    assert (band.setpoint_c[0], band.lower_c[0], band.upper_c[0]) == (21, 20.5, 22)
    assert (band.setpoint_c[44], band.lower_c[44], band.upper_c[44]) == (17, 16.5, 21)
    assert band.setpoint_c[43] == 21


def test_default_gas_price_follows_the_prices_table() -> None:
    data = _with_pump({"kind": "hybrid"})
    data["prices"] = {"gas_eur_per_kwh": 0.12}
    spec = parse_neighbourhood(data, Path())
    assert spec.groups[0].heat_pump is not None
    assert spec.groups[0].heat_pump.gas_eur_per_m3 == pytest.approx(0.12 * 9.77)
    assert spec.groups[0].heat_pump.boiler_kw == 24


@pytest.mark.parametrize(
    ("pump", "field"),
    [
        ({"building": "castle"}, "heat_pump.building: one of apartment"),
        ({"era": "1900"}, "heat_pump.era"),
        ({"control": "pid"}, "heat_pump.control"),
        ({"kind": "hybrid", "control": "on_off"}, "heat_pump.control"),
        ({"kind": "full", "boiler_kw": 20}, "heat_pump.boiler_kw"),
        ({"kind": "full", "gas_eur_per_m3": 1.2}, "heat_pump.gas_eur_per_m3"),
        ({"kind": "full", "min_electric_w": 4000}, "heat_pump.min_electric_w"),
        ({"kind": "full", "control": "on_off", "min_electric_w": 500}, "min_electric_w"),
        ({"capacitance_kwh_per_k": 0}, "heat_pump.capacitance_kwh_per_k"),
        ({"comfort": {"day_c": 19, "night_c": 20}}, "heat_pump.comfort.night_c"),
        ({"comfort": {"day_from_h": 7, "night_from_h": 7}}, "comfort.night_from_h"),
        ({"comfort": {"day_c": 40}}, "heat_pump.comfort.day_c"),
        ({"comfort": {"warm": True}}, "heat_pump.comfort.warm: unknown field"),
        ({"constant_cop": "yes"}, "heat_pump.constant_cop"),
        ({"heat_loss_w_per_k": [300, 200]}, "heat_pump.heat_loss_w_per_k"),
    ],
)
def test_invalid_heat_pump_fields_are_named(pump: dict[str, Any], field: str) -> None:
    with pytest.raises(NeighbourhoodError) as error:
        parse_neighbourhood(_with_pump(pump), Path())
    assert str(error.value).startswith("households[0].heat_pump.")
    assert field in str(error.value)


def _outdoor_csv(path: Path, values: list[float], *, header: str = "temperature_c") -> None:
    start = datetime(2026, 1, 12, 0, tzinfo=UTC)
    lines = [f"timestamp,{header}"] + [
        f"{(start + timedelta(hours=h)).isoformat()},{value}" for h, value in enumerate(values)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_outdoor_temperature_from_csv_or_daily_means(tmp_path: Path) -> None:
    # Daily mean: a 4 K cycle, coldest at 05:00 local (step 67 from noon).
    means = scenario_of(_with_pump({}, daily_mean_temperature_c=-3)).homes.buildings
    assert means is not None
    assert means.outdoor_c.mean() == pytest.approx(-3.0, abs=0.01)
    assert int(np.argmin(means.outdoor_c)) in (67, 68)
    assert means.outdoor_c.min() == pytest.approx(-7.0, abs=0.01)
    _outdoor_csv(tmp_path / "t.csv", [float(h % 24) - 10 for h in range(48)])
    data = _with_pump({}, outdoor_csv="t.csv")
    csv = scenario_of(data, tmp_path).homes.buildings
    assert csv is not None
    # 11:00 UTC is local noon; hourly values hold for their four quarter hours.
    assert csv.outdoor_c[:5].tolist() == [1.0, 1.0, 1.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("values", "header", "period", "message"),
    [
        ([0.0] * 48, "temp", {}, "header must be 'timestamp,temperature_c'"),
        ([0.0] * 20, "temperature_c", {}, "the period needs"),
        ([99.0] * 48, "temperature_c", {}, "temperature_c must lie within -40..50 C"),
        ([0.0] * 48, "temperature_c", {"daily_mean_temperature_c": 0}, "period.outdoor_csv"),
    ],
)
def test_bad_outdoor_csv_is_named(
    tmp_path: Path, values: list[float], header: str, period: dict[str, Any], message: str
) -> None:
    _outdoor_csv(tmp_path / "t.csv", values, header=header)
    data = _with_pump({}, outdoor_csv="t.csv", **period)
    with pytest.raises(NeighbourhoodError, match=message):
        scenario_of(data, tmp_path)
    with pytest.raises(NeighbourhoodError, match=r"period\.outdoor_csv: no such file"):
        scenario_of(_with_pump({}, outdoor_csv="absent.csv"), tmp_path)
