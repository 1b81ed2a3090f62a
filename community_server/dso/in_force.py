"""Which transformer cap is in force now, including the fallback when the DSO link is lost.

Rules (documented in docs/dso.md):
- among frames and dynamic limits covering `now`, the most recently received wins (a new
  frame supersedes the overlapping part of an older one);
- emergencies in force lower that further: each direction takes the lowest cap;
- with the link lost and nothing in force, the program's safe-mode value applies, else the
  configured conservative default. With the link up and nothing in force there is no cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from .signals import CapMode, SignalSource

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from .signals import CapInterval, CapSignal


class NonMemberLoadSource(StrEnum):
    DSO_MEASUREMENT = "dso_measurement"
    CONFIGURED_ESTIMATE = "configured_estimate"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Fallback:
    """What applies when the link is lost and no received cap covers now."""

    safe_mode_import_w: float | None = None  # from the DSO (GAC safe-mode event)
    default_import_w: float | None = None  # configured conservative default
    non_member_estimate_w: float | None = None  # configured, used when the DSO sends none


@dataclass(frozen=True, slots=True)
class CapInForce:
    transformer_id: str
    at: datetime
    import_w: float | None
    export_w: float | None
    mode: CapMode | None  # None: no cap from the DSO
    source: SignalSource | None
    signal_ids: tuple[str, ...]
    until: datetime | None  # when this cap's interval ends; None for fallbacks and no cap
    non_member_load_w: float | None
    non_member_load_source: NonMemberLoadSource
    load_forecast_w: float | None = None  # the DSO's transformer-load forecast (dynamic)


def _lowest(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def _highest(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def cap_in_force(
    transformer_id: str,
    signals: Iterable[CapSignal],
    now: datetime,
    *,
    link_lost: bool,
    fallback: Fallback,
) -> CapInForce:
    covering: list[tuple[CapSignal, CapInterval]] = []
    for signal in signals:
        interval = signal.interval_at(now)
        if signal.transformer_id == transformer_id and interval is not None:
            covering.append((signal, interval))
    regular = [pair for pair in covering if pair[0].mode is not CapMode.EMERGENCY]
    emergencies = [pair for pair in covering if pair[0].mode is CapMode.EMERGENCY]
    # Stable sort: of two received in the same millisecond, the later stored one wins.
    chosen = [sorted(regular, key=lambda pair: pair[0].received_at)[-1]] if regular else []
    chosen += emergencies
    measured = _lowest(interval.non_member_load_w for _, interval in chosen)
    if measured is not None:
        non_member, non_member_source = measured, NonMemberLoadSource.DSO_MEASUREMENT
    elif fallback.non_member_estimate_w is not None:
        non_member = fallback.non_member_estimate_w
        non_member_source = NonMemberLoadSource.CONFIGURED_ESTIMATE
    else:
        non_member, non_member_source = None, NonMemberLoadSource.UNKNOWN
    if chosen:
        deciding = emergencies[-1][0] if emergencies else chosen[0][0]
        return CapInForce(
            transformer_id=transformer_id,
            at=now,
            import_w=_lowest(interval.import_w for _, interval in chosen),
            export_w=_lowest(interval.export_w for _, interval in chosen),
            mode=deciding.mode,
            source=deciding.source,
            signal_ids=tuple(signal.signal_id for signal, _ in chosen),
            until=min(interval.end for _, interval in chosen),
            non_member_load_w=non_member,
            non_member_load_source=non_member_source,
            load_forecast_w=_highest(interval.load_forecast_w for _, interval in chosen),
        )
    fallback_w, fallback_source = None, None
    if link_lost and fallback.safe_mode_import_w is not None:
        fallback_w, fallback_source = fallback.safe_mode_import_w, SignalSource.SAFE_MODE
    elif link_lost and fallback.default_import_w is not None:
        fallback_w = fallback.default_import_w
        fallback_source = SignalSource.CONFIGURED_DEFAULT
    return CapInForce(
        transformer_id=transformer_id,
        at=now,
        import_w=fallback_w,
        export_w=None,
        mode=CapMode.FRAME if fallback_source else None,
        source=fallback_source,
        signal_ids=(),
        until=None,
        non_member_load_w=non_member,
        non_member_load_source=non_member_source,
    )
