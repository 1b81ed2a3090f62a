"""What a household asks the live allocation for while a day-ahead plan is in force.

Two rules, found by the neighbourhood simulator (docs/simulator.md), applied to whole
fleets at once (numpy) or to one household (0-d arrays):

- A household whose day-ahead limit leaves less room above its floor than its smallest
  usable flexible draw (an EV's 6 A minimum) asks for nothing: pooling a minimum for it
  would take room from the households the plan has charging.
- Where a day-ahead limit is in force, the plan fits the cap with a margin: the power
  the plan gives the household's flexible load is kept as part of its floor, and only
  what it asks beyond the plan (catch-up) is shared by the rule. A load set in whole
  steps (a charger: whole amperes) keeps its planned power rounded up to a whole step:
  the guard gives a charger the whole amperes of its room, so room for exactly a plan
  of 15.9 A charges it at 15 A and leaves it behind its plan in every quarter hour.

Without a plan in force (limit +inf) and with no minimum, the request is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]

# Plans come from a solver: a room a hair below the minimum is the minimum.
SOLVER_TOLERANCE_W = 1.0


@dataclass(frozen=True, slots=True)
class PlanRequest:
    floor_w: FloatArray  # guaranteed floor, including the planned power kept
    flexible_w: FloatArray  # what is left for the rule to share
    kept_w: FloatArray  # the planned power moved into the floor
    demand_w: FloatArray  # floor plus request or the measurement, within connection and plan


def plan_request(
    floor_w: ArrayLike,
    flexible_w: ArrayLike,
    *,
    planned_limit_w: ArrayLike,
    planned_flexible_w: ArrayLike,
    min_flexible_w: ArrayLike,
    connection_w: ArrayLike,
    measured_w: ArrayLike = 0.0,
    increment_w: ArrayLike = 0.0,
) -> PlanRequest:
    """Floor and flexible power for the live allocation under the day-ahead plan.

    `planned_limit_w`: the plan's import limit in force (+inf where none);
    `planned_flexible_w`: the plan's power for the flexible load now;
    `min_flexible_w`: the smallest flexible draw that is usable at all (0: any);
    `increment_w`: the flexible load is set in whole steps of this power (a charger's
    1 A on its phases; 0: any power).
    The demand is what it would draw unlimited: never above the plan in force (unless
    its floor is) nor its connection.
    """
    floor = np.asarray(floor_w, dtype=float)
    limit = np.asarray(planned_limit_w, dtype=float)
    usable = np.clip(np.minimum(np.asarray(flexible_w, dtype=float), limit - floor), 0.0, None)
    minimum = np.asarray(min_flexible_w, dtype=float)
    flexible = np.where(usable >= minimum - SOLVER_TOLERANCE_W, usable, 0.0)
    planned = np.clip(np.asarray(planned_flexible_w, dtype=float), 0.0, None)
    kept = np.where(np.isfinite(limit), np.minimum(planned, flexible), 0.0)
    kept = np.maximum(kept, np.minimum(_whole_steps(kept, increment_w), limit - floor))
    connection = np.asarray(connection_w, dtype=float)
    floor = np.clip(floor + kept, 0.0, connection)
    flexible = np.clip(flexible - kept, 0.0, None)
    ceiling = np.minimum(connection, np.maximum(limit, floor))
    wanted = np.maximum(floor + flexible, np.asarray(measured_w, dtype=float))
    return PlanRequest(
        floor_w=floor,
        flexible_w=flexible,
        kept_w=kept,
        demand_w=np.maximum(floor, np.minimum(wanted, ceiling)),
    )


def _whole_steps(power_w: FloatArray, increment_w: ArrayLike) -> FloatArray:
    """`power_w` rounded up to whole increments (unchanged where the increment is 0)."""
    increment = np.asarray(increment_w, dtype=float)
    steps = np.divide(
        power_w - SOLVER_TOLERANCE_W, increment, out=np.zeros_like(power_w), where=increment > 0
    )
    return np.where(increment > 0, np.ceil(steps).clip(0.0, None) * increment, power_w)
