"""Which limits are in force now: the fuse, the household peak and external limits.

Per phase the guard keeps the smallest current cap; totals stay power caps, because a
total shared by three phases cannot be split without knowing the load. Each cap keeps
its source so the decision can say what binds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..limits import ExternalLimit, LimitSource
from ..model import Connection, LimitReason

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from .measurement import Measurement


@dataclass(frozen=True, slots=True)
class PowerCap:
    power_w: float
    source: LimitSource


@dataclass(frozen=True, slots=True)
class ResolvedLimits:
    """Limits on the enforced phases (see Measurement.per_phase)."""

    phase_limit_a: tuple[float, ...]
    phase_source: tuple[LimitSource, ...]
    import_cap: PowerCap | None
    export_cap_w: float | None
    export_reason: LimitReason | None
    export_phase_cap_a: tuple[float | None, ...]


def _per_phase_watts(
    values: tuple[float, ...], connection_phases: int, enforced_phases: int
) -> tuple[float, ...]:
    """Per-phase caps as given (1 value = every phase) mapped onto the enforced phases."""
    expanded = values * connection_phases if len(values) == 1 else values[:connection_phases]
    if enforced_phases == 1 and connection_phases > 1:
        return (sum(expanded),)
    return expanded[:enforced_phases]


def resolve_limits(
    *,
    connection: Connection,
    measurement: Measurement,
    external: Iterable[ExternalLimit],
    peak_cap_w: float | None,
    export_price_eur_per_kwh: float | None,
    now: datetime,
) -> ResolvedLimits:
    enforced = len(measurement.current_a)
    fuse_a = float(connection.max_current_a * (1 if measurement.per_phase else connection.phases))
    phase_limit = [fuse_a] * enforced
    phase_source = [LimitSource.FUSE] * enforced
    import_cap = None if peak_cap_w is None else PowerCap(peak_cap_w, LimitSource.HOUSEHOLD_PEAK)
    export_cap: float | None = None
    export_reason: LimitReason | None = None
    export_phase: list[float | None] = [None] * enforced

    for limit in external:
        interval = limit.interval_at(now)
        if interval is None:
            continue
        if interval.max_import_w is not None and (
            import_cap is None or interval.max_import_w < import_cap.power_w
        ):
            import_cap = PowerCap(interval.max_import_w, limit.source)
        if interval.max_import_w_per_phase is not None:
            watts = _per_phase_watts(interval.max_import_w_per_phase, connection.phases, enforced)
            for index, cap_w in enumerate(watts):
                cap_a = cap_w / measurement.voltage_v[index]
                if cap_a < phase_limit[index]:
                    phase_limit[index] = cap_a
                    phase_source[index] = limit.source
        if interval.max_export_w is not None and (
            export_cap is None or interval.max_export_w < export_cap
        ):
            export_cap = interval.max_export_w
            export_reason = LimitReason.EXPORT_LIMIT
        if interval.max_export_w_per_phase is not None:
            watts = _per_phase_watts(interval.max_export_w_per_phase, connection.phases, enforced)
            for index, cap_w in enumerate(watts):
                cap_a = cap_w / measurement.voltage_v[index]
                current = export_phase[index]
                export_phase[index] = cap_a if current is None else min(current, cap_a)
                export_reason = export_reason or LimitReason.EXPORT_LIMIT

    if export_price_eur_per_kwh is not None and export_price_eur_per_kwh < 0:
        export_cap = 0.0
        export_reason = LimitReason.NEGATIVE_EXPORT_PRICE

    return ResolvedLimits(
        phase_limit_a=tuple(phase_limit),
        phase_source=tuple(phase_source),
        import_cap=import_cap,
        export_cap_w=export_cap,
        export_reason=export_reason,
        export_phase_cap_a=tuple(export_phase),
    )


def reason_for(source: LimitSource) -> LimitReason:
    return LimitReason(source.value)
