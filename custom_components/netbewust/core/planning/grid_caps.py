"""Per-step import and export caps of a planning horizon, as the guard would apply them.

The fuse (less the safety margin) caps every phase; the household peak limit caps
import; each external limit caps every step that overlaps one of its intervals before
the limit expires. A step's power is its average, so a cap in force during any part of
a step caps the whole step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..limits import LimitInterval
    from .problem import PlanningProblem


@dataclass(frozen=True, slots=True)
class GridCaps:
    """kW caps per step (`import_kw`, `export_kw`) and per phase and step (phases x n)."""

    import_kw: NDArray[np.float64]
    export_kw: NDArray[np.float64]
    phase_import_kw: NDArray[np.float64]
    phase_export_kw: NDArray[np.float64]


def step_caps(problem: PlanningProblem) -> GridCaps:
    n = problem.n_steps
    connection = problem.connection
    phase_kw = connection.max_current_a * connection.nominal_voltage_v / 1000
    phase_import = np.full((connection.phases, n), phase_kw)
    phase_export = np.full((connection.phases, n), phase_kw)
    total_import = np.full(n, phase_kw * connection.phases)
    total_export = total_import.copy()
    if connection.peak_limit_w is not None:
        total_import = np.minimum(total_import, connection.peak_limit_w / 1000)

    step_s = problem.step_minutes * 60.0
    step_start_s = np.arange(n) * step_s
    for limit in problem.external_limits:
        for interval in limit.intervals:
            start_s = (interval.start - problem.start).total_seconds()
            end_s = (min(interval.end, limit.expires_at) - problem.start).total_seconds()
            covered = (step_start_s < end_s) & (step_start_s + step_s > start_s)
            if end_s <= start_s or not covered.any():
                continue
            _cap(total_import, covered, interval.max_import_w)
            _cap(total_export, covered, interval.max_export_w)
            for phase in range(connection.phases):
                _cap(phase_import[phase], covered, _phase_value(interval, "import", phase))
                _cap(phase_export[phase], covered, _phase_value(interval, "export", phase))
    if connection.phases == 1:
        total_import = np.minimum(total_import, phase_import[0])
        total_export = np.minimum(total_export, phase_export[0])
    return GridCaps(total_import, total_export, phase_import, phase_export)


def _cap(caps: NDArray[np.float64], covered: NDArray[np.bool_], watts: float | None) -> None:
    if watts is not None:
        caps[covered] = np.minimum(caps[covered], watts / 1000)


def _phase_value(interval: LimitInterval, direction: str, phase: int) -> float | None:
    """One value applies to every phase; three values are L1, L2, L3."""
    values = (
        interval.max_import_w_per_phase
        if direction == "import"
        else interval.max_export_w_per_phase
    )
    if values is None:
        return None
    return values[0] if len(values) == 1 else values[phase]
