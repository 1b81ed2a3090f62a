"""Safe states, by injecting the fault: a failing evaluation, a silent meter, an
installer's safe current, and a heat pump that is never blocked for more than 2 hours."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, NoReturn

import pytest

from netbewust_core.guard.charger import ChargerController
from netbewust_core.guard.engine import Guard
from netbewust_core.guard.safe_state import MAX_BLOCK_S, safe_current_allowed
from netbewust_core.model import (
    BatterySetpoint,
    BatterySpec,
    ChargerSetpoint,
    ChargerSpec,
    Connection,
    GuardConfig,
    GuardState,
    HeatPumpControl,
    HeatPumpSetpoint,
    HeatPumpSpec,
    Limitation,
    LimitReason,
)

from .builders import T0, at, charging, drawing, reading

if TYPE_CHECKING:
    from netbewust_core.model import AnyDeviceSpec

ONE_PHASE = Connection(phases=1, fuse_current_a=25.0, safety_margin_a=1.0)
EV = ChargerSpec(device_id="ev", name="EV", priority=1)
BATTERY = BatterySpec(
    device_id="bat", name="Battery", priority=2, max_charge_w=2000, max_discharge_w=2000
)
POWER_LIMITED = HeatPumpSpec(device_id="hp", name="HP", priority=3, rated_power_w=2000)


def guard(*devices: AnyDeviceSpec, stale_after_s: float = 10.0) -> Guard:
    return Guard(GuardConfig(connection=ONE_PHASE, devices=devices, stale_after_s=stale_after_s))


def _engine_bug(*_args: object, **_kwargs: object) -> NoReturn:
    raise ZeroDivisionError("engine bug")


def test_a_failing_evaluation_puts_devices_in_their_safe_state_until_one_succeeds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    g = guard(EV, BATTERY, POWER_LIMITED)
    states = {"ev": charging("ev", 16), "bat": drawing("bat", -500, soc_pct=60)}
    normal = g.on_meter(reading(0, 18.0), states)
    assert normal.setpoints["ev"] == ChargerSetpoint(16.0, 1)

    monkeypatch.setattr(ChargerController, "serve", _engine_bug)
    with caplog.at_level(logging.INFO):
        failed = g.on_meter(reading(1, 18.0), states)
        again = g.on_meter(reading(2, 18.0), states)
        assert g.on_tick(at(2.5)) is None  # nothing new while it stays failed
    assert failed.state is GuardState.SAFE_MODE
    assert failed.limitations == (Limitation(LimitReason.GUARD_ERROR),)
    assert failed.setpoints == {
        "ev": ChargerSetpoint(6.0, 1),
        "bat": BatterySetpoint(0.0),
        "hp": HeatPumpSetpoint(on=True, power_limit_w=450.0),
    }
    assert failed.changed == {"ev", "bat", "hp"}
    assert again.changed == frozenset()
    failures = [r for r in caplog.records if "evaluation failed" in r.getMessage()]
    assert len(failures) == 1  # once, with the traceback
    assert failures[0].exc_info is not None
    assert failures[0].exc_info[0] is ZeroDivisionError

    monkeypatch.undo()
    with caplog.at_level(logging.INFO):
        back = g.on_meter(reading(3, 8.0), states)
    assert back.state is GuardState.NORMAL
    assert "succeed again" in caplog.text
    # Recovery starts from the safe state: increases still wait for the rate limit.
    assert back.setpoints["ev"] == ChargerSetpoint(6.0, 1)
    assert g.on_meter(reading(12, 8.0), states).setpoints["ev"] == ChargerSetpoint(16.0, 1)


def test_a_failing_tick_is_safe_too(monkeypatch: pytest.MonkeyPatch) -> None:
    g = guard(EV)
    g.on_meter(reading(0, 18.0), {"ev": charging("ev", 16)})
    monkeypatch.setattr(Guard, "_is_stale", _engine_bug)
    failed = g.on_tick(at(0.5))
    assert failed is not None
    assert failed.state is GuardState.SAFE_MODE
    assert failed.setpoints["ev"] == ChargerSetpoint(6.0, 1)


def test_a_host_whose_adapters_failed_asks_the_engine_for_the_safe_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    g = guard(EV)
    g.on_meter(reading(0, 18.0), {"ev": charging("ev", 16)})
    with caplog.at_level(logging.ERROR):
        failed = g.fail_safe(at(1), KeyError("sensor.p1"))
    assert failed.setpoints["ev"] == ChargerSetpoint(6.0, 1)
    assert "KeyError" in caplog.text  # the traceback is in the log
    # Ticks alone do not end it; an evaluated reading does.
    assert g.on_tick(at(2)) is None
    assert g.on_meter(reading(3, 8.0), {}).state is GuardState.NORMAL


@pytest.mark.parametrize(
    ("safe_current_a", "expected_a"), [(None, 6.0), (10.0, 10.0), (0.0, 0.0), (40.0, 16.0)]
)
def test_a_charger_falls_back_to_its_installer_set_safe_current(
    safe_current_a: float | None, expected_a: float
) -> None:
    spec = ChargerSpec(device_id="ev", name="EV", priority=1, safe_current_a=safe_current_a)
    g = guard(spec)
    g.on_meter(reading(0, 18.0), {"ev": charging("ev", 16)})
    safe = g.on_tick(at(10.5))
    assert safe is not None
    assert safe.state is GuardState.SAFE_MODE
    assert safe.setpoints["ev"] == ChargerSetpoint(expected_a, 1)


@pytest.mark.parametrize("bad", [3.0, -1.0, float("nan")])
def test_a_safe_current_between_0_and_the_minimum_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="safe current"):
        guard(ChargerSpec(device_id="ev", name="EV", priority=1, safe_current_a=bad))


def test_an_emergency_pauses_chargers_below_their_safe_current() -> None:
    g = guard(EV)
    g.on_meter(reading(0, 18.0), {"ev": charging("ev", 16)})
    g.set_emergency(True)
    decision = g.on_tick(at(0.5))
    assert decision is not None
    assert decision.setpoints["ev"] == ChargerSetpoint(0.0, 1)


SG_READY = HeatPumpSpec(
    device_id="hp",
    name="HP",
    priority=1,
    rated_power_w=2300,
    control=HeatPumpControl.SG_READY,
)


def test_a_silent_meter_blocks_an_sg_ready_pump_for_at_most_two_hours_in_a_row() -> None:
    g = guard(SG_READY)
    g.on_meter(reading(0, 12.0), {"hp": drawing("hp", 2300)})
    blocked = g.on_tick(at(10.5))
    assert blocked is not None
    assert blocked.setpoints["hp"] == HeatPumpSetpoint(on=False)
    assert g.on_tick(at(10.5 + MAX_BLOCK_S - 1)) is None
    released = g.on_tick(at(10.5 + MAX_BLOCK_S))
    assert released is not None
    assert released.state is GuardState.SAFE_MODE
    assert released.setpoints["hp"] == HeatPumpSetpoint(on=True)
    # It runs its minimum on time (30 min) before the safe state blocks it again.
    assert g.on_tick(at(10.5 + MAX_BLOCK_S + SG_READY.min_on_s - 1)) is None
    again = g.on_tick(at(10.5 + MAX_BLOCK_S + SG_READY.min_on_s))
    assert again is not None
    assert again.setpoints["hp"] == HeatPumpSetpoint(on=False)


def test_a_pump_blocked_by_the_plan_is_released_after_two_hours_before_others_are_served() -> None:
    charger = ChargerSpec(device_id="ev", name="EV", priority=0)
    g = guard(charger, SG_READY, stale_after_s=1e6)
    g.set_plan({"hp": HeatPumpSetpoint(on=False)})
    states = {"ev": charging("ev", 16), "hp": drawing("hp", 0)}
    first = g.on_meter(reading(0, 2.0 + 16), states)
    assert first.setpoints == {"ev": ChargerSetpoint(16.0, 1), "hp": HeatPumpSetpoint(on=False)}
    hour = g.on_meter(reading(3600, 2.0 + 16), states)
    assert hour.setpoints["hp"] == HeatPumpSetpoint(on=False)
    released = g.on_meter(reading(MAX_BLOCK_S, 2.0 + 16), states)
    assert released.setpoints["hp"] == HeatPumpSetpoint(on=True)
    # Its 10 A were reserved first: 24 - 2 - 10 A (the car draws no more than offered).
    assert released.setpoints["ev"] == ChargerSetpoint(12.0, 1)


def test_only_inflexible_load_keeps_an_overdue_pump_blocked() -> None:
    g = guard(SG_READY, stale_after_s=1e6)
    g.set_plan({"hp": HeatPumpSetpoint(on=False)})
    g.on_meter(reading(0, 2.0), {"hp": drawing("hp", 0)})
    crowded = g.on_meter(reading(MAX_BLOCK_S, 20.0), {"hp": drawing("hp", 0)})
    assert crowded.setpoints["hp"] == HeatPumpSetpoint(on=False)
    assert crowded.unresolved_overload is False
    assert Limitation(LimitReason.FUSE, "hp", 1) in crowded.limitations
    free = g.on_meter(reading(MAX_BLOCK_S + 1, 2.0), {"hp": drawing("hp", 0)})
    assert free.setpoints["hp"] == HeatPumpSetpoint(on=True)
    assert free.timestamp - T0 == timedelta(seconds=MAX_BLOCK_S + 1)


@pytest.mark.parametrize(
    ("safe_a", "allowed"),
    [(0.0, True), (6.0, True), (10.0, True), (16.0, True), (3.0, False), (16.5, False)],
)
def test_a_safe_current_is_0_or_from_the_minimum_to_the_maximum(
    safe_a: float, allowed: bool
) -> None:
    assert safe_current_allowed(safe_a, 6.0, 16.0) is allowed
