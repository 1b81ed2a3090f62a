"""Heat pumps on their thermal model in every strategy: their own plans stay within the
pump's power and keep the comfort their thermostat keeps, and the collective plan
moves each pump's heat and leaves room for it in the limits."""

from __future__ import annotations

import numpy as np
import pytest

from community_server.neighbourhood.planning import (
    collective_limits,
    collective_plan,
    heat_pump_schedules,
    household_requests,
)
from community_server.neighbourhood.realtime import Control, Requests, simulate
from community_server.neighbourhood.scenario import STEPS_PER_DAY, Scenario
from community_server.neighbourhood.strategies import Strategy, run_strategy

from .conftest import scenario_of, street


@pytest.fixture
def heated_street() -> Scenario:
    """Three all-electric homes and two cars under a 20 kW transformer, two cold days."""
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


def test_each_pumps_own_plan_keeps_its_comfort(heated_street: Scenario) -> None:
    schedules = heat_pump_schedules(heated_street)
    homes = heated_street.homes
    pumps = np.flatnonzero(homes.hp_electric_w > 0)
    assert len(pumps) == 3
    for home in pumps:
        assert schedules.hp_w[home].sum() > 0
        assert schedules.hp_w[home].max() <= homes.hp_electric_w[home] + 1e-6
    assert not schedules.boiler_w.any()  # all-electric: no boiler
    unmanaged = run_strategy(heated_street, Strategy.UNMANAGED)
    for strategy in (Strategy.ALONE, Strategy.COMMUNITY):
        result = run_strategy(heated_street, strategy)
        assert result.heat_pump_starts_per_day > 0
        # The plans (on the same model the minute loop runs) keep the band as well as
        # the thermostat, here within a hundredth of a kelvin-hour.
        assert (result.comfort_kh[pumps] <= unmanaged.comfort_kh[pumps] + 0.01).all()


def test_limits_leave_room_for_the_heat_the_collective_plan_gives_each_pump(
    heated_street: Scenario,
) -> None:
    plan = collective_plan(heated_street)
    limits = plan.limits
    homes = heated_street.homes
    assert any(limits), "the cap binds somewhere, so some homes are limited"
    # Under limits the pumps run the collective plan's heat, kept whole.
    under_limits = household_requests(heated_street, limits, plan.heat)
    np.testing.assert_array_equal(under_limits.hp_w, plan.heat.hp_w)
    pumps = homes.hp_electric_w > 0
    assert (plan.heat.hp_w[pumps].max(axis=1) > 0).all()
    assert (plan.heat.hp_w <= homes.hp_electric_w[:, None] + 1e-6).all()
    # The plan moved heat: not the pumps' own schedules.
    assert np.abs(plan.heat.hp_w - heat_pump_schedules(heated_street).hp_w).max() > 100
    for day, day_limits in enumerate(limits):
        for home, limit in day_limits.items():
            for k in range(day * STEPS_PER_DAY, (day + 1) * STEPS_PER_DAY):
                interval = limit.interval_at(heated_street.step_start(k))
                if interval is None or interval.max_import_w is None:
                    continue
                fixed = homes.base_forecast_w[home, k] + plan.heat.hp_w[home, k]
                assert interval.max_import_w >= fixed - homes.pv_w[home, k] - 1.0
    # The old entry point gives the same limits.
    assert collective_limits(heated_street)[0] == limits


def test_an_on_off_pump_is_only_blocked_and_never_worse() -> None:
    """An on/off pump (the planner's ON_OFF model: its thermostat blocked in at most two
    windows a day, or boosted to pre-heat) planned alone is cheaper and no colder."""
    data = street(period={"start": "2026-01-12", "days": 1, "daily_mean_temperature_c": -2})
    data["households"] = [
        {
            "count": 1,
            "connection": "3x25A",
            "noise": 0.0,
            "heat_pump": {
                "kind": "full",
                "electric_w": 4000,
                "building": "semi_detached",
                "era": "1975_1991",
                "control": "on_off",
            },
        }
    ]
    scenario = scenario_of(data)
    model = scenario.homes.buildings.models[0] if scenario.homes.buildings else None
    assert model is not None
    assert model.control.value == "on_off"
    unmanaged = run_strategy(scenario, Strategy.UNMANAGED)
    alone = run_strategy(scenario, Strategy.ALONE)
    assert alone.household_cost_eur[0] < unmanaged.household_cost_eur[0] - 0.5
    assert alone.comfort_kh[0] <= unmanaged.comfort_kh[0] + 0.01
    assert alone.heat_pump_kwh[0] > 0


def test_homes_without_a_pump_have_no_indoor_temperature(tiny_street: Scenario) -> None:
    outcome = simulate(tiny_street, Requests(), Control.NONE)
    assert outcome.indoor_c.shape == outcome.boiler_w.shape == outcome.grid_w.shape
    assert np.isnan(outcome.indoor_c).all()
    assert not outcome.boiler_w.any()
    result = run_strategy(tiny_street, Strategy.UNMANAGED)
    assert not result.comfort_kh.any()
    assert not result.gas_m3.any()
