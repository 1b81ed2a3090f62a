"""Meter reading -> current per phase: preferred sources, signs, and rejection of garbage."""

from __future__ import annotations

import math

import pytest

from netbewust_core.guard.measurement import measure, phase_current
from netbewust_core.model import Connection, MeterReading, PhaseReading

from .builders import at

ONE = Connection(phases=1, fuse_current_a=25.0)
THREE = Connection(phases=3, fuse_current_a=25.0)


def test_power_over_voltage_is_preferred_to_rounded_current() -> None:
    assert phase_current(PhaseReading(power_w=2300.0, voltage_v=230.0, current_a=11.0), 230.0) == (
        10.0,
        230.0,
    )


def test_export_gives_a_negative_current() -> None:
    current, _ = phase_current(PhaseReading(power_w=-460.0, voltage_v=230.0), 230.0) or (0, 0)
    assert current == -2.0


def test_meter_current_takes_the_sign_of_power_when_voltage_is_missing() -> None:
    assert phase_current(PhaseReading(power_w=-900.0, current_a=4.0), 230.0) == (-4.0, 230.0)
    # No power at all: assume import, the safe side.
    assert phase_current(PhaseReading(current_a=4.0), 230.0) == (4.0, 230.0)


def test_power_alone_uses_nominal_voltage() -> None:
    assert phase_current(PhaseReading(power_w=460.0), 230.0) == (2.0, 230.0)


@pytest.mark.parametrize(
    "phase",
    [
        PhaseReading(),
        PhaseReading(power_w=math.nan),
        PhaseReading(power_w=math.inf, voltage_v=230.0),
        PhaseReading(power_w=1e9, voltage_v=230.0),
        PhaseReading(current_a=-3.0),
        PhaseReading(current_a=math.nan, voltage_v=230.0),
    ],
)
def test_unusable_phases_are_missing(phase: PhaseReading) -> None:
    assert phase_current(phase, 230.0) is None


def test_implausible_voltage_falls_back_to_nominal() -> None:
    assert phase_current(PhaseReading(power_w=460.0, voltage_v=12.0), 230.0) == (2.0, 230.0)
    assert phase_current(PhaseReading(power_w=460.0, voltage_v=math.nan), 230.0) == (2.0, 230.0)


def test_three_phase_reading() -> None:
    reading = MeterReading(
        timestamp=at(0),
        phases=(
            PhaseReading(power_w=2300.0, voltage_v=230.0),
            PhaseReading(power_w=-230.0, voltage_v=230.0),
            PhaseReading(power_w=0.0, voltage_v=240.0),
        ),
    )
    measurement = measure(reading, THREE)
    assert measurement is not None
    assert measurement.per_phase
    assert measurement.current_a == (10.0, -1.0, 0.0)
    assert measurement.total_power_w == pytest.approx(2070.0)


def test_a_missing_phase_falls_back_to_the_total() -> None:
    reading = MeterReading(
        timestamp=at(0),
        phases=(PhaseReading(power_w=2300.0), PhaseReading(), PhaseReading(power_w=0.0)),
        total_power_w=6900.0,
    )
    measurement = measure(reading, THREE)
    assert measurement is not None
    assert not measurement.per_phase  # one virtual phase carrying the sum
    assert measurement.current_a == (30.0,)


def test_total_only_on_one_phase_is_per_phase() -> None:
    measurement = measure(MeterReading(timestamp=at(0), total_power_w=4600.0), ONE)
    assert measurement is not None
    assert measurement.per_phase
    assert measurement.current_a == (20.0,)


def test_nothing_usable_is_rejected() -> None:
    assert measure(MeterReading(timestamp=at(0)), ONE) is None
    assert measure(MeterReading(timestamp=at(0), total_power_w=math.nan), THREE) is None
