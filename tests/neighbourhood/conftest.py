"""Tiny neighbourhoods whose outcomes can be checked by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from community_server.neighbourhood.scenario import Scenario, build_scenario
from community_server.neighbourhood.spec import parse_neighbourhood


def street(**overrides: Any) -> dict[str, Any]:
    """Four 3x25A homes with an 11 kW charger, cars home at 18:00 sharp, one day."""
    data: dict[str, Any] = {
        "name": "test street",
        "seed": 3,
        "period": {"start": "2026-01-12", "days": 1, "daily_mean_temperature_c": 0},
        "transformer": {"capacity_kva": 30, "power_factor": 1.0},
        "households": [
            {
                "count": 4,
                "connection": "3x25A",
                "noise": 0.0,
                "ev": {"charger_kw": 11, "energy_kwh": 20, "arrival_sd_h": 0.0},
            }
        ],
    }
    data.update(overrides)
    return data


def scenario_of(data: dict[str, Any], base: Path = Path()) -> Scenario:
    return build_scenario(parse_neighbourhood(data, base))


@pytest.fixture
def tiny_street() -> Scenario:
    return scenario_of(street())
