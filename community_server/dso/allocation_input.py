"""The cap in force, in the live allocator's input types (`netbewust_core.allocation.model`).

Only the current cap is handed over, up to when its interval ends: the allocator runs
every few seconds, so the next interval arrives on time. A fallback (safe mode or the
configured default) has no end; it is handed over for `fallback_horizon` and renewed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from netbewust_core.allocation.model import AllocationMode, CapSeries, NonMemberLoad
from netbewust_core.limits import LimitInterval, LimitSource

from .in_force import NonMemberLoadSource
from .signals import CapMode, SignalSource

if TYPE_CHECKING:
    from .in_force import CapInForce

_MODES = {
    CapMode.FRAME: AllocationMode.CAPACITY_FRAME,
    CapMode.EMERGENCY: AllocationMode.EMERGENCY,
    CapMode.DYNAMIC: AllocationMode.DYNAMIC,
}
_FALLBACKS = {SignalSource.SAFE_MODE, SignalSource.CONFIGURED_DEFAULT}


def allocation_input(
    cap: CapInForce, *, fallback_horizon: timedelta = timedelta(minutes=5)
) -> tuple[CapSeries, AllocationMode, NonMemberLoad] | None:
    """(caps, mode, non-member load) for the allocator; None when the DSO caps nothing."""
    if cap.mode is None or (cap.import_w is None and cap.export_w is None):
        return None
    end = cap.until or cap.at + fallback_horizon
    source = LimitSource.COMMUNITY if cap.source in _FALLBACKS else LimitSource.DSO
    series = CapSeries(
        intervals=(
            LimitInterval(
                start=cap.at, end=end, max_import_w=cap.import_w, max_export_w=cap.export_w
            ),
        ),
        source=source,
    )
    measured = cap.non_member_load_source is NonMemberLoadSource.DSO_MEASUREMENT
    non_member = NonMemberLoad(
        estimate_w=0.0 if measured or cap.non_member_load_w is None else cap.non_member_load_w,
        measured_w=cap.non_member_load_w if measured else None,
        measured_at=cap.at if measured else None,
    )
    return series, _MODES[cap.mode], non_member
