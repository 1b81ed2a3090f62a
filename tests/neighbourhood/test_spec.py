"""The neighbourhood file: defaults, every field checked by name, CSV profiles and prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from community_server.neighbourhood.spec import (
    HeatPumpKind,
    NeighbourhoodError,
    load_neighbourhood,
    parse_neighbourhood,
)

from .conftest import scenario_of, street

EXAMPLES = Path(__file__).parents[2] / "examples" / "neighbourhoods"


def test_examples_load() -> None:
    cold = load_neighbourhood(EXAMPLES / "cold_week_250.toml")
    assert cold.households == 250
    assert cold.days == 7
    assert cold.transformer_kva == 400
    assert load_neighbourhood(EXAMPLES / "small.toml").households == 20
    with_csv = load_neighbourhood(EXAMPLES / "with_csv.toml")
    assert with_csv.price_csv is not None
    assert with_csv.groups[0].base_load_csv is not None


def test_defaults() -> None:
    spec = parse_neighbourhood({"households": [{"count": 2, "heat_pump": {}}]}, Path())
    assert spec.transformer_cap_w == pytest.approx(400_000 * 0.95)
    assert spec.days == 7
    assert spec.daily_mean_c[2] == -6.0
    assert spec.groups[0].heat_pump is not None
    assert spec.groups[0].heat_pump.kind is HeatPumpKind.HYBRID
    assert spec.groups[0].heat_pump.electric_w == 450


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"households": []}, "households"),
        ({"colour": "red"}, "colour: unknown field"),
        ({"transformer": {"capacity_kva": -5}}, "transformer.capacity_kva"),
        ({"transformer": {"capacity_kva": "big"}}, "transformer.capacity_kva"),
        ({"period": {"days": 0}}, "period.days"),
        ({"period": {"start": "12 jan"}}, "period.start"),
        ({"period": {"days": 2, "daily_mean_temperature_c": [1]}}, "daily_mean_temperature_c"),
        ({"community": {"sharing_rule": "loudest"}}, "community.sharing_rule"),
        ({"community": {"heat_shift_hours": 5}}, "community.heat_shift_hours"),
        ({"households": [{"connection": "2x10A"}]}, "households[0].connection"),
        ({"households": [{"ev": {"charger_kw": 2}}]}, "households[0].ev.charger_kw: must be"),
        ({"households": [{"ev": {"charger_kw": 60}}]}, "households[0].ev.charger_kw"),
        (
            {"households": [{"connection": "1x25A", "ev": {"charger_kw": 11}}]},
            "households[0].ev.charger_kw",
        ),
        ({"households": [{"heat_pump": {"kind": "geo"}}]}, "households[0].heat_pump.kind"),
        ({"households": [{"annual_kwh": [5000, 2000]}]}, "households[0].annual_kwh"),
        ({"households": [{"count": 1.5}]}, "households[0].count"),
        ({"households": [{"base_load_csv": "missing.csv"}]}, "households[0].base_load_csv"),
        ({"prices": {"csv": "missing.csv"}}, "prices.csv"),
        ({"households": [{"noise": "0.2"}]}, "households[0].noise: must be a valid number"),
        ({"households": [{"count": True}]}, "households[0].count: must be a valid integer"),
        ({"households": [{"ev": {"chargerkw": 11}}]}, "households[0].ev.chargerkw: unknown field"),
    ],
)
def test_invalid_fields_are_named(change: dict[str, object], field: str) -> None:
    data = street()
    data.update(change)
    with pytest.raises(NeighbourhoodError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_neighbourhood(data, Path())


def test_bad_toml_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = [unclosed", encoding="utf-8")
    with pytest.raises(NeighbourhoodError, match="not valid TOML"):
        load_neighbourhood(path)
    with pytest.raises(NeighbourhoodError, match="cannot read"):
        load_neighbourhood(tmp_path / "absent.toml")


def _profile_csv(path: Path, start: datetime, steps: int, watts: list[float]) -> None:
    lines = ["timestamp,a,b"]
    for k in range(steps):
        moment = start + timedelta(minutes=15 * k)
        lines.append(f"{moment.isoformat()},{watts[k % len(watts)]},{2 * watts[k % len(watts)]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_csv_profiles_and_prices(tmp_path: Path) -> None:
    start = datetime(2026, 1, 12, 11, tzinfo=UTC)  # local noon, when the simulation starts
    _profile_csv(tmp_path / "base.csv", start, 96, [300.0, 500.0])
    hourly = ["timestamp,price_eur_per_mwh"] + [
        f"{(start + timedelta(hours=h)).isoformat()},{100 + h}" for h in range(24)
    ]
    (tmp_path / "prices.csv").write_text("\n".join(hourly) + "\n", encoding="utf-8")
    data = street(prices={"csv": "prices.csv", "import_markup_eur_per_kwh": 0.1})
    data["households"] = [{"count": 3, "base_load_csv": "base.csv"}]
    scenario = scenario_of(data, tmp_path)
    base = scenario.homes.base_forecast_w
    assert base[0, :4].tolist() == [300.0, 500.0, 300.0, 500.0]
    assert base[1, :2].tolist() == [600.0, 1000.0]  # second column
    assert base[2, 0] == 300.0  # column 3 mod 2
    assert scenario.import_price[:5] == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.201])


def test_csv_that_misses_the_period_is_rejected(tmp_path: Path) -> None:
    start = datetime(2026, 1, 12, 11, tzinfo=UTC)
    _profile_csv(tmp_path / "short.csv", start, 40, [300.0])
    data = street()
    data["households"] = [{"base_load_csv": "short.csv"}]
    with pytest.raises(NeighbourhoodError, match="the period needs"):
        scenario_of(data, tmp_path)
    (tmp_path / "gap.csv").write_text(
        "timestamp,a\n2026-01-12T11:00:00+00:00,1\n2026-01-12T11:30:00+00:00,1\n",
        encoding="utf-8",
    )
    data["households"] = [{"base_load_csv": "gap.csv"}]
    with pytest.raises(NeighbourhoodError, match="15 minutes apart"):
        scenario_of(data, tmp_path)
    (tmp_path / "text.csv").write_text(
        "timestamp,a\n2026-01-12T11:00:00+00:00,lots\n", encoding="utf-8"
    )
    data["households"] = [{"base_load_csv": "text.csv"}]
    with pytest.raises(NeighbourhoodError, match=r"text\.csv:2"):
        scenario_of(data, tmp_path)


def test_seeded_scenario_is_deterministic() -> None:
    one, two = scenario_of(street()), scenario_of(street())
    assert np.array_equal(one.import_price, two.import_price)
    assert one.homes.sessions == two.homes.sessions
    other = scenario_of(street(seed=4))
    assert not np.array_equal(one.import_price, other.import_price)
