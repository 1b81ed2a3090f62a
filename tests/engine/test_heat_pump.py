"""Heat pumps: power limit before switching, a daily switch budget the fuse may break."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from netbewust_core.guard.engine import Guard
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.model import (
    ChargerSetpoint,
    ChargerSpec,
    ChargerState,
    Connection,
    DeviceState,
    GuardConfig,
    HeatPumpControl,
    HeatPumpSetpoint,
    HeatPumpSpec,
    Limitation,
    LimitReason,
    MeterReading,
    PhaseReading,
)

from .builders import at, drawing, reading

if TYPE_CHECKING:
    import pytest

ONE_PHASE = Connection(phases=1, fuse_current_a=25.0, safety_margin_a=1.0)
HP_A = 2000 / 230  # 8.7 A


def sg_ready_guard(**overrides: object) -> Guard:
    spec = HeatPumpSpec(
        device_id="hp",
        name="Heat pump",
        priority=1,
        rated_power_w=2000,
        control=HeatPumpControl.SG_READY,
        min_on_s=600,
        min_off_s=600,
        **overrides,  # type: ignore[arg-type]
    )
    return Guard(GuardConfig(connection=ONE_PHASE, devices=(spec,), stale_after_s=1e6))


def test_power_limit_is_preferred_over_switching() -> None:
    spec = HeatPumpSpec(device_id="hp", name="HP", priority=1, rated_power_w=2000)
    g = Guard(GuardConfig(connection=ONE_PHASE, devices=(spec,)))
    ok = g.on_meter(reading(0, 5.0 + HP_A), {"hp": drawing("hp", 2000)})
    assert ok.setpoints["hp"] == HeatPumpSetpoint(on=True)
    # 20 A inflexible: 4 A (920 W) left for the heat pump, above its 450 W minimum.
    tight = g.on_meter(reading(1, 20.0 + HP_A), {"hp": drawing("hp", 2000)})
    assert tight.setpoints["hp"] == HeatPumpSetpoint(on=True, power_limit_w=920.0)
    # 22 A inflexible: 2 A (460 W) left, just above its 450 W limited power.
    tighter = g.on_meter(reading(2, 22.0 + 920 / 230), {"hp": drawing("hp", 920)})
    assert tighter.setpoints["hp"] == HeatPumpSetpoint(on=True, power_limit_w=460.0)
    # 23 A: not even the limited power fits, so the fuse switches it off.
    off = g.on_meter(reading(3, 23.0 + 460 / 230), {"hp": drawing("hp", 460)})
    assert off.setpoints["hp"] == HeatPumpSetpoint(on=False)


def test_sg_ready_switches_off_for_the_fuse_within_budget() -> None:
    g = sg_ready_guard()
    g.on_meter(reading(0, 5.0 + HP_A), {"hp": drawing("hp", 2000)})
    off = g.on_meter(reading(1, 20.0 + HP_A), {"hp": drawing("hp", 2000)})
    assert off.setpoints["hp"] == HeatPumpSetpoint(on=False)
    assert Limitation(LimitReason.FUSE, "hp", 1) in off.limitations
    assert all(x.reason is not LimitReason.HEAT_PUMP_SWITCH_BUDGET for x in off.limitations)
    # Room returns, but the minimum off time holds it off.
    held = g.on_meter(reading(300, 5.0), {"hp": drawing("hp", 0)})
    assert held.setpoints["hp"] == HeatPumpSetpoint(on=False)
    back = g.on_meter(reading(602, 5.0), {"hp": drawing("hp", 0)})
    assert back.setpoints["hp"] == HeatPumpSetpoint(on=True)


def test_fuse_breaks_the_switch_budget_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    g = sg_ready_guard()
    g.on_meter(reading(0, 5.0 + HP_A), {"hp": drawing("hp", 2000)})
    g.on_meter(reading(1, 20.0 + HP_A), {"hp": drawing("hp", 2000)})  # switch 1: off
    g.on_meter(reading(700, 5.0), {"hp": drawing("hp", 0)})  # switch 2: on
    # Budget (2 a day) used up and min on time not reached: only the fuse may switch it.
    with caplog.at_level(logging.WARNING):
        forced = g.on_meter(reading(800, 20.0 + HP_A), {"hp": drawing("hp", 2000)})
    assert forced.setpoints["hp"] == HeatPumpSetpoint(on=False)
    assert Limitation(LimitReason.HEAT_PUMP_SWITCH_BUDGET, "hp", 1) in forced.limitations
    assert "beyond its switch budget" in caplog.text
    # After a forced off it may come back on (min off time permitting) despite the budget.
    assert g.on_meter(reading(1500, 5.0), {"hp": drawing("hp", 0)}).setpoints[
        "hp"
    ] == HeatPumpSetpoint(on=True)


def test_budget_resets_each_utc_day() -> None:
    g = sg_ready_guard(max_switches_per_day=2)
    g.on_meter(reading(0, 5.0 + HP_A), {"hp": drawing("hp", 2000)})
    g.on_meter(reading(1, 20.0 + HP_A), {"hp": drawing("hp", 2000)})
    g.on_meter(reading(700, 5.0), {"hp": drawing("hp", 0)})
    next_day = 13 * 3600  # the test day starts at 12:00 UTC
    shed = g.on_meter(reading(next_day, 20.0 + HP_A), {"hp": drawing("hp", 2000)})
    assert shed.setpoints["hp"] == HeatPumpSetpoint(on=False)
    assert all(x.reason is not LimitReason.HEAT_PUMP_SWITCH_BUDGET for x in shed.limitations)


def test_planner_off_request_honoured_only_within_budget() -> None:
    g = sg_ready_guard(max_switches_per_day=1)
    g.set_plan({"hp": HeatPumpSetpoint(on=False)})
    # One switch a day leaves none to come back on: the guard keeps it running.
    decision = g.on_meter(reading(0, 5.0 + HP_A), {"hp": drawing("hp", 2000)})
    assert decision.setpoints["hp"] == HeatPumpSetpoint(on=True)


def test_zero_budget_still_yields_to_the_fuse() -> None:
    g = sg_ready_guard(max_switches_per_day=0)
    decision = g.on_meter(reading(0, 20.0 + HP_A), {"hp": drawing("hp", 2000)})
    # The fuse binds, so it is switched off anyway, and that is reported.
    assert decision.setpoints["hp"] == HeatPumpSetpoint(on=False)
    assert Limitation(LimitReason.HEAT_PUMP_SWITCH_BUDGET, "hp", 1) in decision.limitations


def test_only_the_fuse_breaks_the_budget_not_a_dso_cap() -> None:
    g = sg_ready_guard(max_switches_per_day=0)
    g.set_external_limit(
        ExternalLimit(
            source=LimitSource.DSO,
            issued_at=at(0),
            expires_at=at(3600),
            intervals=(LimitInterval(at(0), at(3600), max_import_w_per_phase=(3000.0,)),),
        )
    )
    decision = g.on_meter(reading(1, 10.0 + HP_A), {"hp": drawing("hp", 2000)})
    assert decision.setpoints["hp"] == HeatPumpSetpoint(on=True)
    assert decision.unresolved_overload


def test_a_pump_switched_on_is_reserved_its_power_in_that_decision() -> None:
    """The pump draws nothing yet when the guard switches it on; the car served after it
    must not take the room the pump is about to draw."""
    pump = HeatPumpSpec(
        device_id="hp",
        name="Heat pump",
        priority=0,
        rated_power_w=2000,
        control=HeatPumpControl.SG_READY,
        min_on_s=600,
        min_off_s=600,
    )
    car = ChargerSpec(device_id="ev", name="EV", priority=1)
    g = Guard(GuardConfig(connection=ONE_PHASE, devices=(pump, car), stale_after_s=1e6))
    unplugged = DeviceState("ev", power_w=0.0, charger_state=ChargerState.A)
    g.on_meter(reading(0, 5.0 + HP_A), {"hp": drawing("hp", 2000), "ev": unplugged})
    shed = g.on_meter(reading(1, 20.0 + HP_A), {"hp": drawing("hp", 2000), "ev": unplugged})
    assert shed.setpoints["hp"] == HeatPumpSetpoint(on=False)
    # Past its minimum off time, 19 A of room: the pump comes back (8.7 A) and the car
    # that just arrived gets what is left, less the 1 A a starting car may overshoot.
    idle = DeviceState("ev", power_w=0.0, charger_state=ChargerState.B)
    both = g.on_meter(reading(602, 5.0), {"hp": drawing("hp", 0), "ev": idle})
    assert both.setpoints["hp"] == HeatPumpSetpoint(on=True)
    assert both.setpoints["ev"] == ChargerSetpoint(9.0, 1)  # floor(19 - 8.7) - 1


def test_a_pump_that_fits_a_total_cap_exactly_is_not_shed_by_rounding() -> None:
    """Base load plus the pump equal to a community cap: the float sum of the per-phase
    room falls a hair below zero (1e-13 W here), which is no overload."""
    pump = HeatPumpSpec(
        device_id="hp",
        name="Heat pump",
        priority=0,
        phases=(1, 2, 3),
        rated_power_w=2000,
        control=HeatPumpControl.SG_READY,
    )
    g = Guard(GuardConfig(connection=Connection(phases=3, fuse_current_a=25.0), devices=(pump,)))
    total_w = 1676.8 + 1234.5  # base load + what the pump draws
    g.set_external_limit(
        ExternalLimit(
            source=LimitSource.COMMUNITY,
            issued_at=at(0),
            expires_at=at(60),
            intervals=(LimitInterval(at(0), at(60), max_import_w=total_w),),
        )
    )
    meter = MeterReading(
        timestamp=at(1),
        phases=(PhaseReading(power_w=total_w / 3, voltage_v=230.0),) * 3,
    )
    decision = g.on_meter(meter, {"hp": drawing("hp", 1234.5)})
    assert decision.setpoints["hp"] == HeatPumpSetpoint(on=True)
    assert not decision.unresolved_overload
    assert decision.limitations == ()
    # A watt over the cap is an overload: the pump goes.
    over = g.on_meter(
        MeterReading(
            timestamp=at(2),
            phases=(PhaseReading(power_w=(total_w + 1.0) / 3, voltage_v=230.0),) * 3,
        ),
        {"hp": drawing("hp", 1234.5)},
    )
    assert over.setpoints["hp"] == HeatPumpSetpoint(on=False)


def test_a_power_limited_pump_switched_on_is_reserved_its_cap() -> None:
    pump = HeatPumpSpec(
        device_id="hp", name="Heat pump", priority=0, rated_power_w=2000, min_on_s=0, min_off_s=0
    )
    car = ChargerSpec(device_id="ev", name="EV", priority=1)
    g = Guard(GuardConfig(connection=ONE_PHASE, devices=(pump, car), stale_after_s=1e6))
    idle = DeviceState("ev", power_w=0.0, charger_state=ChargerState.B)
    g.set_plan({"hp": HeatPumpSetpoint(on=False)})
    off = g.on_meter(reading(0, 5.0 + HP_A), {"hp": drawing("hp", 2000), "ev": idle})
    assert off.setpoints["hp"] == HeatPumpSetpoint(on=False)
    g.set_plan({"hp": HeatPumpSetpoint(on=True, power_limit_w=1150.0)})
    both = g.on_meter(reading(60, 5.0), {"hp": drawing("hp", 0), "ev": idle})
    assert both.setpoints["hp"] == HeatPumpSetpoint(on=True, power_limit_w=1150.0)
    assert both.setpoints["ev"] == ChargerSetpoint(13.0, 1)  # 19 A - 5 A for the pump - 1 A
