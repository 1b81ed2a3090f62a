"""Each strategy on a tiny street whose outcome can be checked by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from community_server.neighbourhood.planning import (
    PLANNING_MARGIN,
    collective_limits,
    household_requests,
)
from community_server.neighbourhood.scenario import STEP_H
from community_server.neighbourhood.strategies import Strategy, run_strategy

from .conftest import scenario_of, street

if TYPE_CHECKING:
    from community_server.neighbourhood.scenario import Scenario


def test_unmanaged_cars_overload_the_transformer(tiny_street: Scenario) -> None:
    result = run_strategy(tiny_street, Strategy.UNMANAGED)
    # Four cars arrive together and charge at 11 kW: at least 44 kW on a 30 kW cap.
    assert result.peak_w >= 44_000
    assert result.hours_above_cap > 0
    assert result.energy_above_cap_kwh > 0
    assert result.ev_not_delivered_kwh == 0
    assert result.ev_sessions_short == 0


def test_guard_only_changes_nothing_when_the_fuses_have_room(tiny_street: Scenario) -> None:
    unmanaged = run_strategy(tiny_street, Strategy.UNMANAGED)
    guard = run_strategy(tiny_street, Strategy.GUARD)
    # 11 kW plus a few hundred W base load fits 3x25A (17.25 kW): the guard need not act.
    assert guard.peak_w == pytest.approx(unmanaged.peak_w)


def test_guard_keeps_a_small_connection_within_its_fuse() -> None:
    data = street()
    data["households"] = [
        {
            "count": 3,
            "connection": "1x25A",
            "annual_kwh": 15_000,  # a base load of a few kW
            "ev": {"charger_kw": 3.7, "energy_kwh": 10, "arrival_sd_h": 0.0},
        }
    ]
    scenario = scenario_of(data)
    unmanaged = run_strategy(scenario, Strategy.UNMANAGED)
    guard = run_strategy(scenario, Strategy.GUARD)
    fuse_w = 25 * 230
    assert unmanaged.transformer_w.max() > 3 * fuse_w  # over the fuses without a guard
    assert guard.transformer_w.max() <= 3 * fuse_w + 1e-6


def test_planning_alone_moves_charging_to_the_cheapest_hours(tiny_street: Scenario) -> None:
    alone = run_strategy(tiny_street, Strategy.ALONE)
    unmanaged = run_strategy(tiny_street, Strategy.UNMANAGED)
    assert alone.community_cost_eur < unmanaged.community_cost_eur
    assert alone.ev_sessions_short == 0
    # Everyone picks the same cheap quarter hours: the secondary peak.
    assert alone.peak_w > tiny_street.cap_w


def test_community_keeps_the_cap_and_delivers_every_car(tiny_street: Scenario) -> None:
    community = run_strategy(tiny_street, Strategy.COMMUNITY)
    assert community.peak_w <= tiny_street.cap_w
    assert community.hours_above_cap == 0
    assert community.ev_sessions_short == 0
    alone = run_strategy(tiny_street, Strategy.ALONE)
    # Meeting the cap costs something, but never more than charging on arrival.
    assert community.community_cost_eur >= alone.community_cost_eur - 1e-6
    unmanaged = run_strategy(tiny_street, Strategy.UNMANAGED)
    assert community.community_cost_eur <= unmanaged.community_cost_eur


def test_heat_pumps_comfort_and_gas() -> None:
    data = street()
    data["households"] = [
        {"count": 2, "heat_pump": {"kind": "hybrid", "heat_loss_w_per_k": 300}},
        {"count": 1, "heat_pump": {"kind": "full", "electric_w": 3000, "heat_loss_w_per_k": 200}},
    ]
    scenario = scenario_of(data)
    unmanaged = run_strategy(scenario, Strategy.UNMANAGED)
    # 300 W/K at 18-24 K below the set point needs 5.4-7.2 kW of heat; the 450 W hybrid
    # delivers about 1.2 kW at these temperatures, its boiler (90 %) the rest.
    heat_kwh = scenario.homes.heat_demand_w[:2].sum() * STEP_H / 1000
    assert heat_kwh > 2 * 24 * 5.0
    assert unmanaged.gas_m3[:2].sum() > (heat_kwh - 2 * 24 * 1.3) / (9.77 * 0.9)
    assert unmanaged.gas_eur[:2].sum() == pytest.approx(unmanaged.gas_m3[:2].sum() * 0.14 * 9.77)
    assert unmanaged.gas_m3[2] == 0.0
    alone = run_strategy(scenario, Strategy.ALONE)
    assert alone.heat_pump_starts_per_day > 0
    # Planned: no home dearer, none colder than under its own thermostat.
    assert (alone.household_cost_eur <= unmanaged.household_cost_eur + 0.01).all()
    assert (alone.comfort_kh <= unmanaged.comfort_kh + 0.01).all()


def test_same_seed_same_results() -> None:
    first = run_strategy(scenario_of(street()), Strategy.COMMUNITY)
    second = run_strategy(scenario_of(street()), Strategy.COMMUNITY)
    assert np.array_equal(first.transformer_w, second.transformer_w)
    assert np.array_equal(first.household_cost_eur, second.household_cost_eur)


def test_homes_planning_under_community_limits_make_no_new_peak() -> None:
    """Each home re-plans under its limit and chases its own cheapest room: the limits
    must leave no quarter hour where they can all pile in (a "secondary peak"). Eight
    cars arriving over the evening under a 28.5 kW planning cap: limits on the binding
    quarter hours alone let their own plans reach 32 kW."""
    data = street()
    data["households"][0]["count"] = 8
    data["households"][0]["ev"]["arrival_sd_h"] = 1.5
    scenario = scenario_of(data)
    limits, _ = collective_limits(scenario)
    plans = household_requests(scenario, limits)
    ev = plans.ev_w
    homes = scenario.homes
    planned = (homes.base_forecast_w + ev + plans.hp_w + plans.battery_w - homes.pv_w).sum(axis=0)

    alone_ev = household_requests(scenario).ev_w
    assert alone_ev.sum(axis=0).max() > scenario.cap_w  # alone they would overload it
    assert planned.max() <= scenario.cap_w * (1 - PLANNING_MARGIN) + 1.0
    for session in homes.sessions:  # and every car still gets its energy
        energy_wh = ev[session.home, session.start_step : session.end_step].sum() * STEP_H
        assert energy_wh == pytest.approx(session.energy_wh, abs=1.0)
