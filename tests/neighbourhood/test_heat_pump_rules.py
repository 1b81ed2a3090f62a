"""Heat pumps keep their product rules in every planned strategy: at most two starts a
day, and the collective plan leaves room for each pump's own on/off schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from community_server.neighbourhood.planning import (
    HEAT_STARTS_PER_DAY,
    collective_limits,
    heat_pump_schedules,
)
from community_server.neighbourhood.scenario import STEPS_PER_DAY, Scenario
from community_server.neighbourhood.strategies import Strategy, run_strategy

from .conftest import scenario_of, street

if TYPE_CHECKING:
    from numpy.typing import NDArray


@pytest.fixture
def heated_street() -> Scenario:
    """Three full heat pumps and two cars under a 20 kW transformer, two cold days."""
    data = street(
        period={"start": "2026-01-12", "days": 2, "daily_mean_temperature_c": [-3, -5]},
        transformer={"capacity_kva": 20, "power_factor": 1.0},
    )
    data["households"] = [
        {
            "count": 3,
            "connection": "3x25A",
            "noise": 0.0,
            "heat_pump": {"kind": "full", "electric_w": 3000, "heat_loss_w_per_k": 220},
        },
        {
            "count": 2,
            "connection": "3x25A",
            "noise": 0.0,
            "ev": {"charger_kw": 11, "energy_kwh": 16, "arrival_sd_h": 0.0},
        },
    ]
    return scenario_of(data)


def _starts_per_day(on: NDArray[np.bool_]) -> list[int]:
    starts = np.concatenate(([on[0]], on[1:] & ~on[:-1]))
    return [int(count) for count in starts.reshape(-1, STEPS_PER_DAY).sum(axis=1)]


def test_each_pump_starts_at_most_twice_a_day(heated_street: Scenario) -> None:
    schedules = heat_pump_schedules(heated_street)
    pumps = np.flatnonzero(heated_street.homes.hp_electric_w > 0)
    assert len(pumps) == 3
    for home in pumps:
        on = schedules[home] > 1.0
        assert on.any()
        assert max(_starts_per_day(on)) <= HEAT_STARTS_PER_DAY
        # On/off: the pump draws its rated power or nothing.
        assert np.allclose(schedules[home][on], heated_street.homes.hp_electric_w[home])
    for strategy in (Strategy.ALONE, Strategy.COMMUNITY):
        result = run_strategy(heated_street, strategy)
        assert 0 < result.heat_pump_starts_per_day <= HEAT_STARTS_PER_DAY
        assert result.heat_not_delivered_kwh < 1.0


def test_limits_leave_room_for_the_pumps_own_schedule(heated_street: Scenario) -> None:
    schedules = heat_pump_schedules(heated_street)
    limits, _ = collective_limits(heated_street)
    homes = heated_street.homes
    assert any(limits), "the cap binds somewhere, so some homes are limited"
    for day, day_limits in enumerate(limits):
        for home, limit in day_limits.items():
            for k in range(day * STEPS_PER_DAY, (day + 1) * STEPS_PER_DAY):
                interval = limit.interval_at(heated_street.step_start(k))
                if interval is None or interval.max_import_w is None:
                    continue
                fixed = homes.base_forecast_w[home, k] + schedules[home, k] - homes.pv_w[home, k]
                assert interval.max_import_w >= fixed - 1.0
