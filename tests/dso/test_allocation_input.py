"""The cap in force handed to the live allocator's types."""

from __future__ import annotations

from datetime import timedelta

from community_server.dso.allocation_input import allocation_input
from community_server.dso.in_force import CapInForce, Fallback, NonMemberLoadSource, cap_in_force
from community_server.dso.signals import CapInterval, CapMode, CapSignal, SignalSource
from netbewust_core.allocation.model import AllocationMode
from netbewust_core.limits import LimitSource

from .conftest import NOW, QUARTER


def _signal(mode: CapMode, import_w: float, non_member_w: float | None = None) -> CapSignal:
    return CapSignal(
        signal_id=f"s-{mode}",
        transformer_id="trafo-12",
        source=SignalSource.OPENADR,
        mode=mode,
        received_at=NOW,
        intervals=(CapInterval(NOW, NOW + QUARTER, import_w, None, non_member_w),),
        issuer="vtn:prog-1",
    )


def test_a_frame_with_a_dso_measurement() -> None:
    cap = cap_in_force(
        "trafo-12",
        [_signal(CapMode.FRAME, 320_000.0, 40_000.0)],
        NOW + timedelta(minutes=2),
        link_lost=False,
        fallback=Fallback(non_member_estimate_w=30_000.0),
    )
    handed = allocation_input(cap)
    assert handed is not None
    series, mode, non_member = handed
    assert mode is AllocationMode.CAPACITY_FRAME
    assert series.source is LimitSource.DSO
    assert series.import_cap_w(NOW + timedelta(minutes=2), NOW + QUARTER) == 320_000.0
    assert series.intervals[0].end == NOW + QUARTER
    assert (non_member.measured_w, non_member.estimate_w) == (40_000.0, 0.0)


def test_an_emergency_and_a_fallback() -> None:
    emergency = cap_in_force(
        "trafo-12",
        [_signal(CapMode.EMERGENCY, 150_000.0)],
        NOW,
        link_lost=False,
        fallback=Fallback(),
    )
    handed = allocation_input(emergency)
    assert handed is not None
    assert handed[1] is AllocationMode.EMERGENCY

    fallback = cap_in_force(
        "trafo-12",
        [],
        NOW,
        link_lost=True,
        fallback=Fallback(safe_mode_import_w=180_000.0, non_member_estimate_w=30_000.0),
    )
    handed = allocation_input(fallback)
    assert handed is not None
    series, mode, non_member = handed
    assert mode is AllocationMode.CAPACITY_FRAME  # a fallback is a frame
    assert series.source is LimitSource.COMMUNITY
    assert series.intervals[0].end == NOW + timedelta(minutes=5)
    assert (non_member.measured_w, non_member.estimate_w) == (None, 30_000.0)


def test_no_cap_hands_over_nothing() -> None:
    nothing = CapInForce(
        "trafo-12", NOW, None, None, None, None, (), None, None, NonMemberLoadSource.UNKNOWN
    )
    assert allocation_input(nothing) is None
