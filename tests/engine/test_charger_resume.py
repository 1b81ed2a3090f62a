"""A paused charger's resume: the hysteresis is for cars the guard paused for lack of room.

A car paused by its plan (or that has just arrived) starts as soon as the room allows its
minimum, even when the plan asks exactly that minimum; a car the guard paused at the
fuse resumes only when the room (not the plan) allows minimum + hysteresis (1 A).
1 A = 230 W; limit = fuse - margin = 24 A.
"""

from __future__ import annotations

from netbewust_core.guard.engine import Guard
from netbewust_core.model import (
    ChargerSetpoint,
    ChargerSpec,
    ChargerState,
    Connection,
    DeviceState,
    GuardConfig,
)

from .builders import charging, reading

ONE_PHASE = Connection(phases=1, fuse_current_a=25.0, safety_margin_a=1.0)
EV = ChargerSpec(device_id="ev", name="EV", priority=1)
# A guard that has seen the car charge: it draws what it is given (no overshoot).
EXACT = DeviceState("ev", power_w=0.0, charger_state=ChargerState.B)


def guard() -> Guard:
    return Guard(GuardConfig(connection=ONE_PHASE, devices=(EV,)))


def _learn_no_overshoot(g: Guard) -> None:
    """The car has charged at 10 A drawing exactly 10 A: no overshoot to reserve."""
    g.set_plan({"ev": ChargerSetpoint(10.0, 1)})
    g.on_meter(reading(-200, 2.0), {"ev": EXACT})
    g.on_meter(reading(-180, 12.0), {"ev": charging("ev", 10)})
    g.set_plan({"ev": ChargerSetpoint(0.0, 1)})
    decision = g.on_meter(reading(-120, 12.0), {"ev": charging("ev", 10)})
    assert decision.setpoints["ev"] == ChargerSetpoint(0.0, 1)  # paused by its plan


def test_a_car_planned_at_its_minimum_starts_with_ample_room() -> None:
    g = guard()
    g.set_plan({"ev": ChargerSetpoint(6.0, 1)})
    decision = g.on_meter(reading(0, 2.0), {"ev": EXACT})  # 22 A of room
    assert decision.setpoints["ev"] == ChargerSetpoint(6.0, 1)


def test_a_car_paused_by_its_plan_starts_with_room_for_its_minimum() -> None:
    g = guard()
    _learn_no_overshoot(g)
    g.set_plan({"ev": ChargerSetpoint(6.0, 1)})
    # 6.5 A of room: enough for the minimum; no hysteresis for a car the plan paused.
    decision = g.on_meter(reading(0, 17.5), {"ev": EXACT})
    assert decision.setpoints["ev"] == ChargerSetpoint(6.0, 1)


def test_a_car_paused_at_the_fuse_resumes_only_with_room_for_minimum_plus_hysteresis() -> None:
    g = guard()
    _learn_no_overshoot(g)
    g.set_plan({"ev": ChargerSetpoint(6.0, 1)})
    started = g.on_meter(reading(0, 2.0), {"ev": EXACT})
    assert started.setpoints["ev"] == ChargerSetpoint(6.0, 1)
    running = g.on_meter(reading(20, 8.0), {"ev": charging("ev", 6)})
    assert running.setpoints["ev"] == ChargerSetpoint(6.0, 1)
    # A kettle: 20 A of base load leaves 4 A, below the minimum: the guard pauses it.
    paused = g.on_meter(reading(40, 26.0), {"ev": charging("ev", 6)})
    assert paused.setpoints["ev"] == ChargerSetpoint(0.0, 1)
    # 6.5 A of room: the plan's 6 A would fit, but the guard paused it: not yet.
    waiting = g.on_meter(reading(60, 17.5), {"ev": EXACT})
    assert waiting.setpoints["ev"] == ChargerSetpoint(0.0, 1)
    # 7 A of room (minimum + 1 A hysteresis): it resumes at its planned 6 A.
    resumed = g.on_meter(reading(80, 17.0), {"ev": EXACT})
    assert resumed.setpoints["ev"] == ChargerSetpoint(6.0, 1)


def test_a_car_paused_at_the_fuse_then_by_its_plan_starts_at_its_minimum() -> None:
    g = guard()
    _learn_no_overshoot(g)
    g.set_plan({"ev": ChargerSetpoint(6.0, 1)})
    g.on_meter(reading(0, 20.0), {"ev": EXACT})  # 4 A of room: held back by the fuse
    g.set_plan({"ev": ChargerSetpoint(0.0, 1)})
    g.on_meter(reading(20, 20.0), {"ev": EXACT})  # the plan pauses it
    g.set_plan({"ev": ChargerSetpoint(6.0, 1)})
    decision = g.on_meter(reading(40, 17.5), {"ev": EXACT})  # 6.5 A of room
    assert decision.setpoints["ev"] == ChargerSetpoint(6.0, 1)


def test_a_car_arriving_while_there_is_no_room_starts_at_its_minimum() -> None:
    g = guard()
    _learn_no_overshoot(g)
    g.set_plan({"ev": ChargerSetpoint(6.0, 1)})
    unplugged = DeviceState("ev", power_w=0.0, charger_state=ChargerState.A)
    g.on_meter(reading(0, 20.0), {"ev": unplugged})  # 4 A of room, no car yet
    decision = g.on_meter(reading(20, 17.5), {"ev": EXACT})  # it arrives; 6.5 A of room
    assert decision.setpoints["ev"] == ChargerSetpoint(6.0, 1)
