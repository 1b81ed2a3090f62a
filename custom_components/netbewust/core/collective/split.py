"""Splitting the transformer cap between groups of households, and re-splitting it.

The collective LP decomposes into groups coupled only by the cap. A split gives each
group a share per step; shares always add up to the cap, so every group's solution
together respects it. The first split is pro rata: where the households' own plans
exceed the cap, every group keeps the same fraction of its flexible use (its use above
what it cannot avoid); where they fit, spare room is split by flexible size. A re-split
then hands the room that groups left unused to the groups that value more room (their
cap rows' duals), so no group's cost can rise and the binding groups' costs fall.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

# kW: room below this is treated as none (the LP's feasibility tolerance is far smaller).
ROOM_TOLERANCE_KW = 1e-4
# EUR/kW per step: a dual below this is a degenerate zero.
VALUE_TOLERANCE = 1e-9


def initial_shares(
    usage: FloatArray, floor: FloatArray, available: FloatArray, weight: FloatArray
) -> FloatArray:
    """Per group and step, its share of `available` (groups x steps).

    `usage`: each group's total in the households' own plans; `floor`: the least it can
    use; `weight`: each group's flexible size, for splitting spare room.
    """
    fallback = np.broadcast_to((weight / weight.sum())[:, None], usage.shape)
    spare = available - usage.sum(axis=0)
    fits = usage + np.clip(spare, 0.0, None) * fallback

    flexible = np.clip(usage - floor, 0.0, None)
    flexible_total = flexible.sum(axis=0)
    fraction = np.divide(
        flexible,
        flexible_total,
        out=np.array(fallback, dtype=float),
        where=flexible_total > ROOM_TOLERANCE_KW,
    )
    # Below the floors the cap cannot be met; the groups' slacks then show by how much.
    cut = floor + (available - floor.sum(axis=0)) * fraction
    result: FloatArray = np.where(spare >= 0, fits, cut)
    return result


def reshare(
    shares: FloatArray, usage: FloatArray, values: FloatArray, available: FloatArray
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """New shares and which groups gain room they value.

    `usage` is each group's use within its share (its excess above the share removed);
    `values` its cap rows' duals (EUR per kW per step). A group's current solution stays
    feasible under its new share, so only the groups that gain need solving again.
    """
    used = np.minimum(usage, shares)
    room = available - used.sum(axis=0)
    wanting = values > VALUE_TOLERANCE
    total_value = np.where(wanting, values, 0.0).sum(axis=0)
    weight = np.divide(
        np.where(wanting, values, 0.0),
        total_value,
        out=np.zeros_like(values),
        where=total_value > 0,
    )
    useful = (room > ROOM_TOLERANCE_KW) & (total_value > 0)
    new_shares = used + np.where(useful, room, 0.0) * weight
    # Where nobody wants more, the room stays with the groups that had it.
    new_shares = np.where(useful, new_shares, shares)
    gains: NDArray[np.bool_] = (wanting & useful).any(axis=1)
    return new_shares, gains
