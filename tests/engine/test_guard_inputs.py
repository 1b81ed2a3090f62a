"""Bad configuration fails loudly; bad runtime input is rejected and logged, never a crash."""

from __future__ import annotations

import logging
import math
from datetime import datetime

import pytest

from netbewust_core.guard.engine import Guard
from netbewust_core.model import (
    BatterySetpoint,
    ChargerSetpoint,
    ChargerSpec,
    Circuit,
    Connection,
    DeviceState,
    GuardConfig,
    GuardState,
    LimitReason,
    LoadSpec,
    MeterReading,
    PhaseReading,
)

from .builders import at, charging, reading

ONE = Connection(phases=1, fuse_current_a=25.0, safety_margin_a=1.0)
THREE = Connection(phases=3, fuse_current_a=25.0)
EV = ChargerSpec(device_id="ev", name="EV", priority=1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (GuardConfig(connection=ONE, devices=(EV, EV)), "unique"),
        (
            GuardConfig(
                connection=ONE,
                devices=(ChargerSpec(device_id="x", name="X", priority=1, phases=(2,)),),
            ),
            "phases",
        ),
        (
            GuardConfig(
                connection=THREE,
                devices=(ChargerSpec(device_id="x", name="X", priority=1, phases=(1, 1)),),
            ),
            "distinct",
        ),
        (
            GuardConfig(
                connection=ONE,
                devices=(ChargerSpec(device_id="x", name="X", priority=1, circuit_id="nope"),),
            ),
            "unknown circuit",
        ),
        (GuardConfig(connection=ONE, circuits=(Circuit("a", 10.0, "a"),)), "cycle"),
        (GuardConfig(connection=ONE, stale_after_s=0.0), "stale"),
    ],
)
def test_bad_configuration_is_rejected(config: GuardConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Guard(config)


def test_garbage_reading_is_rejected_and_the_last_decision_held(
    caplog: pytest.LogCaptureFixture,
) -> None:
    g = Guard(GuardConfig(connection=ONE, devices=(EV,)))
    good = g.on_meter(reading(0, 18.0), {"ev": charging("ev", 16)})
    garbage = MeterReading(timestamp=at(1), phases=(PhaseReading(power_w=math.nan),))
    with caplog.at_level(logging.WARNING):
        held = g.on_meter(garbage, {"ev": charging("ev", 16)})
    assert held.setpoints == good.setpoints
    assert held.changed == frozenset()
    assert "rejected" in caplog.text
    # Rejected readings do not count as fresh data: the guard still goes safe on time.
    for second in range(2, 12):
        g.on_meter(MeterReading(timestamp=at(second)), {})
    safe = g.on_tick(at(11))
    assert safe is not None
    assert safe.state is GuardState.SAFE_MODE


def test_unusable_first_readings_keep_devices_as_they_are_until_the_meter_timeout() -> None:
    g = Guard(GuardConfig(connection=ONE, devices=(EV,)))
    decision = g.on_meter(MeterReading(timestamp=at(0), total_power_w=math.inf), {})
    assert decision.state is GuardState.STARTING
    assert decision.setpoints == {}
    safe = g.on_tick(at(10.5))
    assert safe is not None
    assert safe.state is GuardState.SAFE_MODE
    assert safe.setpoints["ev"] == ChargerSetpoint(6.0, 1)


def test_naive_and_out_of_order_timestamps_are_rejected() -> None:
    g = Guard(GuardConfig(connection=ONE, devices=(EV,)))
    g.on_meter(reading(10, 30.0), {})  # paused
    naive = MeterReading(timestamp=datetime(2026, 1, 5, 12, 0, 11), total_power_w=0.0)
    assert g.on_meter(naive, {}).changed == frozenset()
    late = g.on_meter(reading(9, 2.0), {})  # older than the last one
    assert late.setpoints["ev"] == ChargerSetpoint(0.0, 1)
    assert late.changed == frozenset()
    assert g.on_tick(datetime(2026, 1, 5, 12, 0, 11)) is None


def test_garbage_device_readings_fall_back_to_the_setpoint() -> None:
    g = Guard(GuardConfig(connection=ONE, devices=(EV,)))
    g.on_meter(reading(0, 18.0), {"ev": charging("ev", 16)})
    broken = DeviceState("ev", power_w=math.nan, phase_currents_a=(math.inf,), soc_pct=math.nan)
    decision = g.on_meter(reading(1, 22.0), {"ev": broken, "ghost": charging("ghost", 3)})
    # Assumed at its 16 A setpoint, the base is 6 A: 16 A still fits.
    assert decision.setpoints["ev"] == ChargerSetpoint(16.0, 1)


def test_bad_plan_and_override_inputs_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    load = LoadSpec(device_id="load", name="Load", priority=2, rated_power_w=500)
    g = Guard(GuardConfig(connection=ONE, devices=(EV, load)))
    with caplog.at_level(logging.WARNING):
        g.set_plan({"ev": BatterySetpoint(100.0), "nobody": ChargerSetpoint(6.0, 1)})
        g.set_charge_now("load", True)
        g.set_export_price(math.nan)
    assert "ignored" in caplog.text
    assert g.on_meter(reading(0, 2.0), {}).setpoints["ev"] == ChargerSetpoint(16.0, 1)
    assert g.on_tick(at(0.5)) is None


def test_plan_below_minimum_current_pauses_the_charger() -> None:
    g = Guard(GuardConfig(connection=ONE, devices=(EV,)))
    g.set_plan({"ev": ChargerSetpoint(3.0, 1)})
    assert g.on_meter(reading(0, 2.0), {}).setpoints["ev"] == ChargerSetpoint(0.0, 1)


def test_total_only_three_phase_meter_enforces_the_total_and_says_so() -> None:
    charger = ChargerSpec(device_id="ev", name="EV", priority=1, phases=(1, 2, 3))
    g = Guard(GuardConfig(connection=THREE, devices=(charger,)))
    # 60 A of inflexible load in total: 15 A left for three phases is 5 A each: pause.
    total = MeterReading(timestamp=at(0), total_power_w=(60.0 + 48.0) * 230)
    decision = g.on_meter(total, {"ev": charging("ev", 16, phases=3)})
    assert decision.setpoints["ev"] == ChargerSetpoint(0.0, 3)
    assert any(x.reason is LimitReason.PER_PHASE_UNAVAILABLE for x in decision.limitations)
    assert decision.phase_current_a == pytest.approx((36.0, 36.0, 36.0))
    assert decision.phase_limit_a == pytest.approx((25.0, 25.0, 25.0))
    relaxed = g.on_meter(MeterReading(timestamp=at(30), total_power_w=6.0 * 230), {})
    assert relaxed.state is GuardState.NORMAL
    assert [x.reason for x in relaxed.limitations] == [LimitReason.PER_PHASE_UNAVAILABLE]
