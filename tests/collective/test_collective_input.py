"""Bad collective input is rejected with a clear error, never a crash later on."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from netbewust_core.collective.planner import plan_collective
from netbewust_core.collective.problem import CollectiveError, CollectiveProblem, ShiftableEnergy

from .conftest import START, community, ev, home

PRICES = [0.1, 0.2, 0.3, 0.4]


def valid() -> CollectiveProblem:
    return community([home("a", [0.0] * 4, envelopes=(ev(1000, 0, 4),))], PRICES, cap_w=5000.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transformer_export_cap_w": (1.0, 2.0)}, "has 2 values for 4 steps"),
        ({"export_price_eur_per_kwh": (0.0, math.nan, 0.0, 0.0)}, "missing or infinite"),
        ({"transformer_import_cap_w": (1.0, -1.0, 1.0, 1.0)}, "caps must be >= 0"),
        ({"non_member_load_w": (0.0,) * 5}, "has 5 values"),
        ({"export_price_eur_per_kwh": (0.0, 0.5, 0.0, 0.0)}, "export price above import"),
        ({"households": ()}, "at least one household"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"step_minutes": 7}, "step_minutes"),
        ({"start": datetime(2026, 1, 15)}, "UTC"),
        ({"limit_validity": timedelta(0)}, "limit_validity"),
        ({"import_price_eur_per_kwh": ()}, "horizon is empty"),
    ],
)
def test_a_bad_problem_is_rejected(change: dict[str, object], message: str) -> None:
    with pytest.raises(CollectiveError, match=message):
        replace(valid(), **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"household_id": "", "baseline_w": [0.0] * 4}, "needs an id"),
        ({"household_id": "a", "baseline_w": [0.0, math.inf, 0.0, 0.0]}, "missing or infinite"),
        ({"household_id": "a", "baseline_w": [20_000.0] * 4}, "exceeds the connection"),
        ({"household_id": "a", "baseline_w": [0.0] * 4, "import_limit_w": 0.0}, "import > 0"),
        ({"household_id": "a", "baseline_w": [0.0] * 4, "export_limit_w": math.inf}, "finite"),
    ],
)
def test_a_bad_household_is_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CollectiveError, match=message):
        home(kwargs.pop("household_id"), kwargs.pop("baseline_w"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start_step": 3, "end_step": 3}, "window"),
        ({"start_step": -1, "end_step": 3}, "window"),
        ({"energy_wh": -1.0}, ">= 0"),
        ({"max_power_w": math.nan}, ">= 0"),
        ({"energy_wh": math.inf}, "finite"),
    ],
)
def test_a_bad_envelope_is_rejected(fields: dict[str, float], message: str) -> None:
    values: dict[str, object] = {
        "name": "ev",
        "energy_wh": 1000.0,
        "max_power_w": 4000.0,
        "start_step": 0,
        "end_step": 4,
        **fields,
    }
    with pytest.raises(CollectiveError, match=message):
        ShiftableEnergy(**values)  # type: ignore[arg-type]


def test_households_must_fit_the_horizon_and_be_unique() -> None:
    with pytest.raises(CollectiveError, match="baseline has 3 values"):
        community([home("a", [0.0] * 3)], PRICES, cap_w=1.0)
    with pytest.raises(CollectiveError, match="ends after the horizon"):
        community([home("a", [0.0] * 4, envelopes=(ev(100, 2, 6),))], PRICES, cap_w=1.0)
    with pytest.raises(CollectiveError, match="used twice"):
        community([home("a", [0.0] * 4), home("a", [0.0] * 4)], PRICES, cap_w=1.0)


def test_limits_cannot_be_issued_after_the_horizon() -> None:
    late = replace(valid(), issued_at=START + timedelta(hours=1))
    with pytest.raises(CollectiveError, match="after the end of the horizon"):
        plan_collective(late)
