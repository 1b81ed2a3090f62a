"""Split a members' power budget into household limits by the community's rule.

Pure numpy, no state. Every household gets at least its floor (guaranteed minimum) and
its limits add up to the budget whenever that is possible:

- EQUAL_SHARE: every household may use the same flexible power above its own minimum
  (max-min fair: the largest users give up most, nobody gives up more than needed).
- PRO_RATA_FLEXIBLE: every household gives up the same fraction of its flexible power.
- MERIT_ORDER: the cheapest flexibility (cost per kWh) is curtailed first, fully.

A budget above the summed demand is handed out as equal headroom, so the limits still
add up to the budget and small rises in demand do not need a new allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..collective.problem import SharingRule

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]


# Sums of floats that should be equal differ by this much; not a real shortfall.
ROUNDING_NOISE_W = 1e-6


@dataclass(frozen=True, slots=True)
class Split:
    limits_w: FloatArray
    shortfall_w: float  # budget missed with every household at its floor (0 if met)


def split_budget(
    rule: SharingRule,
    budget_w: float,
    demand_w: FloatArray,
    *,
    floor_w: FloatArray,
    ceiling_w: FloatArray,
    cost: FloatArray,
) -> Split:
    """Limits within [floor, ceiling] that add up to `budget_w` where possible.

    `demand_w` must lie within [floor, ceiling]; `cost` orders the merit order (ties
    by position, so the caller's order makes it deterministic).
    """
    flexible = demand_w - floor_w
    curtailment = float(demand_w.sum()) - budget_w
    if curtailment <= 0:
        return Split(_headroom(demand_w, ceiling_w, -curtailment), 0.0)
    total_flexible = float(flexible.sum())
    if curtailment >= total_flexible:
        shortfall = curtailment - total_flexible
        return Split(floor_w.copy(), shortfall if shortfall > ROUNDING_NOISE_W else 0.0)
    match rule:
        case SharingRule.EQUAL_SHARE:
            allowed = _water_fill(flexible, total_flexible - curtailment)
        case SharingRule.PRO_RATA_FLEXIBLE:
            allowed = flexible * (1 - curtailment / total_flexible)
        case SharingRule.MERIT_ORDER:
            allowed = flexible - _cheapest_first(flexible, cost, curtailment)
    return Split(floor_w + allowed, 0.0)


def _water_fill(sizes: FloatArray, total: float) -> FloatArray:
    """min(size, level) with the level at which they add up to `total` (< sum of sizes)."""
    ordered = np.sort(sizes)
    count = len(ordered)
    used_below = np.concatenate(([0.0], np.cumsum(ordered)[:-1]))
    # With level between ordered[k-1] and ordered[k]: used_below[k] + level * (count - k).
    capacity_at = used_below + ordered * (count - np.arange(count))
    k = int(np.searchsorted(capacity_at, total, side="right"))
    level = (total - used_below[k]) / (count - k)
    filled: FloatArray = np.minimum(sizes, level)
    return filled


def _cheapest_first(flexible: FloatArray, cost: FloatArray, curtailment: float) -> FloatArray:
    order = np.argsort(cost, kind="stable")
    taken_before = np.concatenate(([0.0], np.cumsum(flexible[order])[:-1]))
    cut = np.zeros_like(flexible)
    cut[order] = np.clip(curtailment - taken_before, 0.0, flexible[order])
    return cut


def _headroom(demand_w: FloatArray, ceiling_w: FloatArray, spare_w: float) -> FloatArray:
    """Demand plus an equal share of `spare_w`, each within its ceiling."""
    room = ceiling_w - demand_w
    if spare_w >= float(room.sum()):
        return ceiling_w.copy()
    return demand_w + _water_fill(room, spare_w)
