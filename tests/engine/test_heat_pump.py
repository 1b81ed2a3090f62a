"""Heat pumps: power limit before switching, a daily switch budget the fuse may break."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from netbewust_core.guard.engine import Guard
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.model import (
    Connection,
    GuardConfig,
    HeatPumpControl,
    HeatPumpSetpoint,
    HeatPumpSpec,
    Limitation,
    LimitReason,
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
