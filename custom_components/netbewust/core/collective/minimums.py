"""Rounding shares of a shared cap to what devices can really draw.

An LP (or a proportional split) hands out continuous power, but a charger pauses below
its 6 A minimum and an on/off heat pump draws its rated power or nothing. A share
strictly between zero and the device's minimum is therefore lost energy: the household
cannot use it and nobody else gets it. `round_to_minimums` takes such shares back (and
the part of larger shares above their own minimum where needed) and gives whole
minimums to the devices owed the most, never handing out more than the original total
plus the spare room. `round_plan_to_minimums` applies it to a whole collective plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .problem import CollectiveProblem

    FloatArray = NDArray[np.float64]

# W: a share this close to the minimum already is the minimum (solver noise).
MINIMUM_TOLERANCE_W = 1.0


def round_to_minimums(
    share_w: FloatArray,
    minimum_w: FloatArray,
    owed: FloatArray,
    spare_w: float = 0.0,
) -> FloatArray:
    """Each share either 0 or at least its minimum; the total stays within the input's.

    `owed` orders who is rounded up first (largest first: e.g. the energy a device is
    behind its plan). `spare_w` is room under the cap beyond the shares' sum.
    """
    share = np.asarray(share_w, dtype=float)
    minimum = np.asarray(minimum_w, dtype=float)
    if share.shape != minimum.shape or share.shape != np.shape(owed):
        raise ValueError("share, minimum and owed need the same shape")
    if not (np.isfinite(share).all() and np.isfinite(minimum).all()):
        raise ValueError("shares and minimums must be finite")
    if (share < 0).any() or (minimum < 0).any() or not spare_w >= 0:
        raise ValueError("shares, minimums and spare room must be >= 0")
    short = (share > 0) & (share < minimum - MINIMUM_TOLERANCE_W)
    rounded = np.where(short, 0.0, share)
    room = float(share[short].sum()) + float(spare_w)
    # Shares above their minimum may give up the part above it to complete another's.
    donors = (minimum > 0) & ~short
    for index in np.flatnonzero(short)[np.argsort(-np.asarray(owed)[short], kind="stable")]:
        excess = np.where(donors, np.clip(rounded - minimum, 0.0, None), 0.0)
        missing = float(minimum[index]) - room
        if missing > float(excess.sum()):
            continue
        if missing > 0:
            rounded -= excess * (missing / float(excess.sum()))
            room += missing
        rounded[index] = minimum[index]
        room -= float(minimum[index])
    return rounded


@dataclass(frozen=True, slots=True)
class PlanRounding:
    change_kw: FloatArray  # to add to each household's plan (households x steps)
    lost_kwh: FloatArray  # per household: energy rounding could not place anywhere
    envelope_kw: list[tuple[FloatArray, ...]]  # the envelopes' schedules, rounded


def round_plan_to_minimums(
    problem: CollectiveProblem,
    envelopes: list[tuple[FloatArray, ...]],
    grid_kw: FloatArray,
    import_cap_kw: FloatArray,
) -> PlanRounding:
    """The plan with no device strictly between zero and its minimum (its limit would
    then be useless), and the energy it delivers kept.

    Step by step, the room of the shares that are too small plus the cap's spare room
    goes to whole minimums, first for the devices owed the most energy by earlier
    rounding; where the cap has room a share is rounded up. What a device is still owed
    at the end is placed in the cheapest steps of its window with room for it. The
    members' sum never exceeds the cap (or the plan, where that was already above it).
    """
    count, n = grid_kw.shape
    owners: list[int] = []
    slots: list[int] = []  # the device's envelope within its household
    windows: list[tuple[int, int]] = []
    powers: list[FloatArray] = []
    minimums: list[float] = []
    maximums: list[float] = []
    for index, household in enumerate(problem.households):
        for slot, (envelope, planned) in enumerate(
            zip(household.envelopes, envelopes[index], strict=True)
        ):
            if envelope.min_power_w <= 0:
                continue
            owners.append(index)
            slots.append(slot)
            windows.append((envelope.start_step, envelope.end_step))
            powers.append(np.clip(planned, 0.0, None) * 1000)
            minimums.append(envelope.min_power_w)
            maximums.append(envelope.max_power_w)
    change = np.zeros((count, n))
    lost = np.zeros(count)
    if not owners:
        return PlanRounding(change, lost, list(envelopes))
    planned_w = np.array(powers)
    rounded_w = planned_w.copy()
    minimum_w = np.array(minimums)
    owner = np.array(owners)
    owed = np.zeros(len(owners))
    spare_w = np.clip(import_cap_kw - grid_kw.sum(axis=0), 0.0, None) * 1000
    for t in range(n):
        rounded_w[:, t] = round_to_minimums(planned_w[:, t], minimum_w, owed, spare_w[t])
        owed += planned_w[:, t] - rounded_w[:, t]
        spare_w[t] = max(spare_w[t] - float((rounded_w[:, t] - planned_w[:, t]).sum()), 0.0)
    household_room_w = np.array([h.import_limit_w for h in problem.households])[:, None] - (
        grid_kw * 1000 + _by_household(owner, rounded_w - planned_w, count)
    )
    cheapest_first = np.argsort(np.asarray(problem.import_price_eur_per_kwh), kind="stable")
    for device in np.flatnonzero(owed > MINIMUM_TOLERANCE_W):
        start, end = windows[device]
        home = owner[device]
        for t in cheapest_first:
            if owed[device] <= MINIMUM_TOLERANCE_W:
                break
            if not start <= t < end:
                continue
            now = rounded_w[device, t]
            room = min(maximums[device] - now, spare_w[t], household_room_w[home, t])
            add = min(float(owed[device]), room)
            if now + add < minimum_w[device] - MINIMUM_TOLERANCE_W:
                add = minimum_w[device] - now  # whole minimum: it finishes a little early
                if add > room:
                    continue
            rounded_w[device, t] += add
            owed[device] -= add
            spare_w[t] -= add
            household_room_w[home, t] -= add
    change = _by_household(owner, rounded_w - planned_w, count) / 1000
    np.add.at(lost, owner, np.clip(owed, 0.0, None) * problem.step_hours / 1000)
    schedules = [list(powers) for powers in envelopes]
    for device, (index, slot) in enumerate(zip(owners, slots, strict=True)):
        schedules[index][slot] = rounded_w[device] / 1000
    return PlanRounding(change, lost, [tuple(powers) for powers in schedules])


def _by_household(owner: NDArray[np.int64], per_device: FloatArray, count: int) -> FloatArray:
    total = np.zeros((count, per_device.shape[1]))
    np.add.at(total, owner, per_device)
    return total
