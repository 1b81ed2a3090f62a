"""Heat pumps in the collective plan: each home's pump a leaky thermal store (the protocol's
`HeatPumpFlexibility`), moved within its comfort band together with cars and batteries."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from community_server.heat_pump_stores import ROUNDING_MARGIN_KWH, thermal_store
from netbewust_core.collective.planner import plan_collective
from netbewust_core.collective.problem import (
    CollectiveError,
    CollectiveHousehold,
    ShiftableEnergy,
    ThermalStore,
)
from netbewust_core.planning.problem import PlanThermalHeatPump
from netbewust_core.protocol.session import ThermalPump, heat_pump_flexibility
from netbewust_core.thermal import ComfortBand, CopModel, GasBoiler, ThermalParameters
from netbewust_core.thermal.thermostat import simulate_indoor, thermostat_run

from .conftest import START, community, ev, home

STEP_H = 0.25


def pump_row(
    n: int,
    *,
    outdoor_c: float = -3.0,
    loss_w_per_k: float = 250.0,
    capacitance: float = 10.0,
    max_power_w: float = 3000.0,
    indoor_c: float = 20.0,
    boiler: GasBoiler | None = None,
) -> PlanThermalHeatPump:
    return PlanThermalHeatPump(
        device_id="hp",
        thermal=ThermalParameters(
            resistance_k_per_kw=1000 / loss_w_per_k, capacitance_kwh_per_k=capacitance
        ),
        cop=CopModel.rated(3.5),
        max_power_w=max_power_w,
        outdoor_temperature_c=(outdoor_c,) * n,
        comfort=ComfortBand((20.0,) * n, (19.5,) * n, (21.0,) * n),
        indoor_temperature_c=indoor_c,
        boiler=boiler,
    )


def store_of(row: PlanThermalHeatPump, start: datetime = START) -> ThermalStore:
    """What a member sends, as the server's planner takes it."""
    flexibility = heat_pump_flexibility(ThermalPump(start=start, row=row))
    return thermal_store(flexibility, start, row.n_steps, "hp")


def heated_home(hid: str, n: int, base_w: float = 400.0, **kwargs: object) -> CollectiveHousehold:
    row = pump_row(n, **kwargs)  # type: ignore[arg-type]
    return home(hid, [base_w] * n, thermal_stores=(store_of(row),))


def test_the_store_follows_the_engines_thermal_model() -> None:
    """Alone (no cap) the planned pump power, run through the engine's 1R1C model, gives
    the planned stored heat: the LP's store and the home's model agree."""
    n = 48
    row = pump_row(n, indoor_c=20.4)
    prices = [0.2 + 0.1 * np.sin(k / 6) for k in range(n)]
    result = plan_collective(
        community([home("a", [300.0] * n, thermal_stores=(store_of(row),))], prices, cap_w=1e6)
    )
    outcome = result.households[0]
    power_kw = np.array(outcome.heat_pump_w[0]) / 1000
    cop = np.array([row.cop.cop(t) for t in row.outdoor_temperature_c])
    indoor = simulate_indoor(row.thermal, STEP_H, 20.4, np.full(n, -3.0), power_kw * cop)
    stored = np.array(outcome.stored_heat_kwh[0])
    np.testing.assert_allclose(19.5 + stored / 10.0, indoor, atol=0.01)
    assert (indoor >= 19.5 - 0.01).all()
    assert (indoor <= 21.0 + 0.01).all()
    assert not any(outcome.heat_below_band_kwh[0][k] > 1e-6 for k in range(n))
    # The cheapest plan heats where power is cheap: it moves heat within the band.
    assert power_kw.max() > power_kw.min() + 0.5
    np.testing.assert_allclose(np.add(outcome.grid_w, 0.0), 300.0 + power_kw * 1000, atol=1e-3)


def test_pumps_move_within_their_band_so_the_cars_fit_under_the_cap() -> None:
    """Four homes whose pumps (about 8.7 kW together) and cars (32 kWh in 2.5 h) need
    about 23 kW from step 16 to 26, under an 18 kW cap: the plan pre-heats to the band's
    top before the cars come, delivers every car, keeps every home in its band."""
    n = 48
    homes = [
        replace(heated_home(f"h{i}", n), envelopes=(ev(8000.0, 16, 26, max_power_w=11000.0),))
        for i in range(4)
    ]
    result = plan_collective(community(homes, [0.25] * n, cap_w=18_000.0))
    assert max(result.members_w) <= 18_000.0 + 1.0
    assert max(result.members_alone_w) > 18_000.0  # the cap binds
    for outcome in result.households:
        assert outcome.shortfall_wh < 1.0
        assert max(outcome.heat_below_band_kwh[0]) < 1e-6
        # Its limit holds it to its part of the plan, pump included.
        for k, planned in enumerate(outcome.grid_w):
            interval = outcome.limit.interval_at(START + k * timedelta(minutes=15))
            if interval is not None and interval.max_import_w is not None:
                assert interval.max_import_w >= planned - 0.1
    pump_kw = np.array([o.heat_pump_w[0] for o in result.households]).sum(axis=0) / 1000
    assert pump_kw[16:26].mean() < pump_kw[8:16].mean() - 3.0  # heat stored before the cars


def test_a_hybrid_burns_gas_where_that_is_cheaper_than_moving_cars() -> None:
    """A hybrid's heat comes from the pump when electricity is cheaper than gas; under a
    cap that leaves no room for both, its boiler takes over and the car is delivered."""
    n = 32
    boiler = GasBoiler(max_heat_w=20_000.0, gas_price_eur_per_m3=1.3)
    hybrid = heated_home("h", n, max_power_w=1500.0, boiler=boiler)
    car = replace(hybrid, envelopes=(ev(20_000.0, 0, n, max_power_w=11000.0),))
    free = plan_collective(community([car], [0.2] * n, cap_w=1e6)).households[0]
    assert sum(free.boiler_heat_w[0]) < sum(free.heat_pump_w[0])  # electric heat is cheaper
    capped = plan_collective(community([car], [0.2] * n, cap_w=3_000.0)).households[0]
    assert capped.shortfall_wh < 1.0
    assert max(capped.heat_below_band_kwh[0]) < 1e-6
    gas_kwh = sum(capped.boiler_heat_w[0]) * STEP_H / 1000
    assert gas_kwh > sum(free.boiler_heat_w[0]) * STEP_H / 1000 + 5.0
    assert capped.cost_eur > free.cost_eur  # the gas is paid for


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cop": (3.0,) * 3}, "equally long"),
        ({"stored_heat_min_kwh": (9.0,) * 4}, "above stored_heat_max_kwh"),
        ({"heat_loss_kw": (1.0, float("nan"), 1.0, 1.0)}, "missing or infinite"),
        ({"time_constant_h": 0.0}, "positive time constant"),
        ({"cop": (0.5,) * 4}, "COP >= 1"),
        ({"min_power_w": 4000.0}, "min_power_w"),
        ({"hybrid_heat_w": 5000.0}, "a hybrid needs"),
        ({"hybrid_heat_w": float("inf"), "gas_eur_per_kwh_heat": 0.1}, "finite and >= 0"),
        ({"stored_heat_kwh": float("inf")}, "missing or infinite"),
    ],
)
def test_a_store_that_does_not_validate(change: dict[str, object], message: str) -> None:
    valid = {
        "name": "hp",
        "stored_heat_kwh": 5.0,
        "stored_heat_min_kwh": (4.0,) * 4,
        "stored_heat_max_kwh": (8.0,) * 4,
        "time_constant_h": 40.0,
        "heat_loss_kw": (5.0,) * 4,
        "cop": (3.0,) * 4,
        "max_power_w": 3000.0,
    }
    with pytest.raises(CollectiveError, match=message):
        ThermalStore(**{**valid, **change})  # type: ignore[arg-type]


def test_a_store_must_span_the_horizon() -> None:
    household = heated_home("a", 8)
    with pytest.raises(CollectiveError, match="has 8 steps, not 12"):
        community([replace(household, baseline_w=(400.0,) * 12)], [0.2] * 12, cap_w=1e5)


def test_the_protocol_block_is_aligned_to_the_plan() -> None:
    row = pump_row(16, indoor_c=20.3)
    flexibility = heat_pump_flexibility(ThermalPump(start=START, row=row))
    same = thermal_store(flexibility, START, 16, "hp")
    assert same.stored_heat_kwh == flexibility.stored_heat_kwh
    later = thermal_store(flexibility, START + timedelta(hours=1), 20, "hp")
    assert later.steps == 20
    assert later.cop == flexibility.cop[4:] + (flexibility.cop[-1],) * 8
    # Unknown there: the (planned) bottom, the rounding margin above the sent one.
    assert later.stored_heat_kwh == pytest.approx(
        flexibility.stored_heat_min_kwh[4] + ROUNDING_MARGIN_KWH
    )
    assert later.stored_heat_min_kwh[0] == later.stored_heat_kwh
    assert (
        later.stored_heat_max_kwh
        == flexibility.stored_heat_max_kwh[4:] + (flexibility.stored_heat_max_kwh[-1],) * 8
    )
    for start in (
        START - timedelta(minutes=15),
        START + timedelta(hours=4),
        START + timedelta(minutes=5),
    ):
        with pytest.raises(CollectiveError, match="does not cover"):
            thermal_store(flexibility, start, 4, "hp")


# --- never worse than doing nothing, on random small neighbourhoods -----------------


def _unmanaged_w(
    households: list[CollectiveHousehold], rows: list[PlanThermalHeatPump]
) -> np.ndarray:
    """Members' load without Netbewust: pumps at their own thermostat, cars at full power
    from arrival until delivered."""
    n = len(households[0].baseline_w)
    total = np.zeros(n)
    for household, row in zip(households, rows, strict=True):
        total += household.baseline_w
        cop = np.array([row.cop.cop(t) for t in row.outdoor_temperature_c])
        run = thermostat_run(
            row.thermal,
            STEP_H,
            row.indoor_temperature_c,
            outdoor_c=np.asarray(row.outdoor_temperature_c),
            setpoint_c=np.asarray(row.comfort.setpoint_c),
            cop=cop,
            electric_max_kw=np.full(n, row.max_power_w / 1000),
        )
        total += run.electric_kw * 1000
        for envelope in household.envelopes:
            left = envelope.energy_wh
            for k in range(envelope.start_step, envelope.end_step):
                power = min(envelope.max_power_w, left / STEP_H)
                total[k] += power
                left -= power * STEP_H
    return total


@st.composite
def neighbourhoods(
    draw: st.DrawFn,
) -> tuple[list[CollectiveHousehold], list[PlanThermalHeatPump], float]:
    n = 32
    count = draw(st.integers(2, 5))
    households, rows = [], []
    for i in range(count):
        row = pump_row(
            n,
            outdoor_c=draw(st.floats(-8.0, 8.0)),
            loss_w_per_k=draw(st.floats(120.0, 320.0)),
            capacitance=draw(st.floats(4.0, 20.0)),
            max_power_w=draw(st.sampled_from([1500.0, 3000.0, 4500.0])),
            indoor_c=draw(st.floats(19.6, 20.9)),
        )
        envelopes: tuple[ShiftableEnergy, ...] = ()
        if draw(st.booleans()):
            start = draw(st.integers(0, 20))
            end = draw(st.integers(start + 4, n))
            energy = draw(st.floats(1000.0, 11_000.0 * (end - start) * STEP_H * 0.8))
            envelopes = (ev(energy, start, end, max_power_w=11_000.0),)
        base = draw(st.floats(150.0, 800.0))
        households.append(
            home(f"h{i}", [base] * n, envelopes=envelopes, thermal_stores=(store_of(row),))
        )
        rows.append(row)
    cap = draw(st.floats(3_000.0, 25_000.0 * count / 2))
    return households, rows, cap


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
@given(neighbourhoods())
def test_the_plan_with_pumps_is_never_worse_than_doing_nothing(
    case: tuple[list[CollectiveHousehold], list[PlanThermalHeatPump], float],
) -> None:
    """Where unmanaged homes stay under the cap the plan does too, and it never gives a
    home less comfort or a car less energy than the home's own plan alone would."""
    households, rows, cap = case
    n = len(households[0].baseline_w)
    unmanaged = _unmanaged_w(households, rows)
    result = plan_collective(
        community(households, [0.2 + 0.01 * (k % 7) for k in range(n)], cap_w=cap)
    )
    alone = plan_collective(
        community(households, [0.2 + 0.01 * (k % 7) for k in range(n)], cap_w=1e7)
    )
    if unmanaged.max() <= cap:
        assert max(result.members_w) <= cap + 1.0
        for together, own in zip(result.households, alone.households, strict=True):
            assert together.shortfall_wh <= own.shortfall_wh + 1.0
            assert sum(together.heat_below_band_kwh[0]) <= sum(own.heat_below_band_kwh[0]) + 1e-3
    # Wherever it is, the plan never puts the members above the cap more than unmanaged
    # homes would.
    assert max(result.members_w) <= max(cap, float(unmanaged.max())) + 1.0
