"""The collective plan's limits: what each household may draw so the plan holds.

Households re-plan under their limits (keeping their integer decisions), and each one
moves its flexible energy to its own cheapest room. Limits only on the steps where the
cap binds would let every household move to the same next-cheapest step and make a new
peak there (the simulator showed exactly that). So once the cap binds anywhere, every
household with flexibility is limited wherever the members together could deviate from
the plan by more than the cap's spare room: at its planned power plus a share of that
room in proportion to how far it could move. The limits then add up to at most the cap
in every step (plus each household's `limit_headroom_w` for its forecast error), in
binding steps they are the plan, and a household whose deviation the cap can absorb
even if everyone deviates at once is not limited at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np

from ..limits import ExternalLimit, LimitInterval, LimitSource

if TYPE_CHECKING:
    from datetime import datetime

    from numpy.typing import NDArray

    from .problem import CollectiveHousehold, CollectiveProblem

    FloatArray = NDArray[np.float64]

# kW: room to deviate below this is none (solver noise).
DEVIATION_TOLERANCE_KW = 1e-3


@dataclass(frozen=True, slots=True)
class DeviationRoom:
    """Per step (kW): how far a household could raise (`up`) and lower (`down`) its
    import from the plan by re-planning, within its connection; `flexible`: the steps
    where it has anything to move (an envelope's window, a battery, a heat pump)."""

    up: FloatArray
    down: FloatArray
    flexible: NDArray[np.bool_]


def deviation_room(
    household: CollectiveHousehold,
    grid_kw: FloatArray,
    envelope_kw: tuple[FloatArray, ...],
    battery_kw: tuple[FloatArray, ...],
    pump_kw: tuple[FloatArray, ...] = (),
) -> DeviationRoom:
    n = len(grid_kw)
    up = np.zeros(n)
    down = np.zeros(n)
    flexible = np.zeros(n, dtype=bool)
    for envelope, planned in zip(household.envelopes, envelope_kw, strict=True):
        window = slice(envelope.start_step, envelope.end_step)
        up[window] += envelope.max_power_w / 1000 - planned[window]
        down[window] += planned[window]
        flexible[window] |= envelope.max_power_w > 0
    for battery, planned in zip(household.batteries, battery_kw, strict=True):
        up += battery.max_charge_w / 1000 - planned
        down += battery.max_discharge_w / 1000 + planned
        flexible[:] = True
    for store, planned in zip(household.thermal_stores, pump_kw, strict=True):
        up += store.max_power_w / 1000 - planned
        down += planned
        flexible[:] = True
    return DeviationRoom(
        up=np.clip(np.minimum(up, household.import_limit_w / 1000 - grid_kw), 0.0, None),
        down=np.clip(np.minimum(down, household.export_limit_w / 1000 + grid_kw), 0.0, None),
        flexible=flexible,
    )


def _shares(
    room: FloatArray,
    flexible: NDArray[np.bool_],
    floor: FloatArray,
    spare: FloatArray,
    coordinated: bool,
) -> FloatArray:
    """Each household's share (kW) of the spare room where the members' room to deviate
    exceeds it; NaN where the household is not limited.

    `floor`: the least share a limit can express (a limit cannot ask for export, so a
    household planned to export gets at least back to zero); those shares are set aside
    first and the rest is split in proportion to the room to deviate."""
    if not coordinated:
        return np.full(room.shape, np.nan)
    spare = np.clip(spare, 0.0, None)
    total = room.sum(axis=0)
    needed = total > spare + DEVIATION_TOLERANCE_KW
    limited = needed & flexible
    reserved = np.where(limited, np.minimum(floor, room), 0.0)
    rest = np.clip(spare - reserved.sum(axis=0), 0.0, None)
    free = np.where(limited, room - reserved, 0.0)
    free_total = free.sum(axis=0)
    fraction = np.divide(free, free_total, out=np.zeros_like(free), where=free_total > 0)
    return np.where(limited, reserved + rest * fraction, np.nan)


def household_limits(
    problem: CollectiveProblem,
    grid_kw: FloatArray,
    *,
    rooms: list[DeviationRoom],
    spare_kw: tuple[FloatArray, FloatArray],
    coordinated: tuple[bool, bool],
    validity: tuple[datetime, datetime],
) -> list[ExternalLimit]:
    """One limit per household (households x steps inputs, kW).

    `rooms`: each household's room to deviate; `spare_kw`: the import and export cap's room
    left by the plan per step; `coordinated`: whether the import / export cap binds
    anywhere (otherwise every household's plan alone fits and nothing is limited)."""
    flexible = np.array([room.flexible for room in rooms])
    up = np.array([room.up for room in rooms])
    down = np.array([room.down for room in rooms])
    import_share = _shares(up, flexible, np.clip(-grid_kw, 0.0, None), spare_kw[0], coordinated[0])
    export_share = _shares(down, flexible, np.clip(grid_kw, 0.0, None), spare_kw[1], coordinated[1])
    households = problem.households
    headroom = np.array([h.limit_headroom_w for h in households])[:, None] / 1000
    connection = np.array([h.import_limit_w for h in households])[:, None] / 1000
    import_kw = np.minimum(np.clip(grid_kw + import_share, 0.0, None) + headroom, connection)
    import_kw = np.maximum(import_kw, np.clip(grid_kw, 0.0, None))  # never below the plan
    export_kw = np.clip(export_share - grid_kw, 0.0, None)
    import_kw[np.isnan(import_share)] = np.nan
    export_kw[np.isnan(export_share)] = np.nan
    return [
        _limit(problem, import_kw[row] * 1000, export_kw[row] * 1000, validity)
        for row in range(len(households))
    ]


def _limit(
    problem: CollectiveProblem,
    import_w: FloatArray,
    export_w: FloatArray,
    validity: tuple[datetime, datetime],
) -> ExternalLimit:
    intervals: list[LimitInterval] = []
    step = timedelta(minutes=problem.step_minutes)
    for t in np.flatnonzero(~np.isnan(import_w) | ~np.isnan(export_w)):
        start = problem.start + int(t) * step
        max_import = None if np.isnan(import_w[t]) else _tenth_up(float(import_w[t]))
        max_export = None if np.isnan(export_w[t]) else _tenth_up(float(export_w[t]))
        last = intervals[-1] if intervals else None
        if (
            last is not None
            and last.end == start
            and (last.max_import_w, last.max_export_w) == (max_import, max_export)
        ):
            intervals[-1] = LimitInterval(last.start, start + step, max_import, max_export)
        else:
            intervals.append(LimitInterval(start, start + step, max_import, max_export))
    issued_at, expires_at = validity
    return ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=issued_at,
        expires_at=expires_at,
        intervals=tuple(intervals),
    )


def _tenth_up(watts: float) -> float:
    """Rounded up to 0.1 W: tidy on the wire, never below the plan."""
    return math.ceil(watts * 10 - 1e-6) / 10
