"""Heat-pump power in the live allocation: who gives it up, how often, and how it returns.

A member's heat pump is part of its guaranteed minimum. When a capacity frame cannot be
met with every flexible load at its minimum, the allocation takes pump power too, in
this order (docs/allocation.md):

1. hybrids, down to their cap: cheap, their boiler fills in;
2. all-electric pumps by comfort margin, largest first; margins in one band
   (`pump_margin_band_min`) count as equal and the fairness count (fewest curtailments
   first) decides, and a pump already held stays held (no switching every round).

Never taken outside an emergency: a home at the edge of its band (margin below
`pump_edge_margin_min`, or unknown), a paused home, an all-electric pump held off for
`pump_max_off` already. An emergency takes all pump power at once.

`PumpFairness` is the count the host keeps (`count_pump_curtailments` after every
allocation); `recover_pumps` returns held pump power after a frame or an emergency over
successive rounds, lowest margin first, within the room below the cap (no rebound peak).
The allocator uses it itself while the frame goes on (`PumpFleet.stagger`): at most
`pump_recovery_homes` pumps get their power back per round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .model import AllocationError, HeatPumpState

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from numpy.typing import NDArray

    from .model import Allocation, AllocationConfig, HouseholdState

    FloatArray = NDArray[np.float64]
    BoolArray = NDArray[np.bool_]
    IntArray = NDArray[np.intp]

__all__ = [
    "HeldPump",
    "PumpFairness",
    "PumpRecovery",
    "count_pump_curtailments",
    "heat_pump_state",
    "held_pumps",
    "recover_pumps",
]

# A share below this is rounding, not a curtailment.
CURTAILED_W = 0.5


def heat_pump_state(
    *,
    power_w: float,
    hybrid_cap_w: float | None,
    comfort_margin_min: float | None,
    paused_until: datetime | None,
    off_minutes: float = 0.0,
) -> HeatPumpState:
    """The engine's pump state from the protocol's values (telemetry and capabilities).

    `hybrid_cap_w`: the power a hybrid's pump may be held to (None: all-electric).
    """
    return HeatPumpState(
        power_w=power_w,
        hybrid=hybrid_cap_w is not None,
        hybrid_cap_w=hybrid_cap_w or 0.0,
        comfort_margin_min=comfort_margin_min,
        paused_until=paused_until,
        off_minutes=off_minutes,
    )


@dataclass(frozen=True, slots=True)
class PumpFairness:
    """Per home: how often a frame took its pump; and whose pump is taken now."""

    times_curtailed: Mapping[str, int] = field(default_factory=dict)
    curtailed_now: frozenset[str] = frozenset()


def count_pump_curtailments(fairness: PumpFairness, allocation: Allocation) -> PumpFairness:
    """The count after `allocation`: a pump counts once per curtailment, when it begins."""
    now = frozenset(
        share.household_id for share in allocation.shares if share.pump_curtailment_w > CURTAILED_W
    )
    counts = dict(fairness.times_curtailed)
    for hid in now - fairness.curtailed_now:
        counts[hid] = counts.get(hid, 0) + 1
    return PumpFairness(times_curtailed=counts, curtailed_now=now)


@dataclass(frozen=True, slots=True)
class PumpFleet:
    """The members' pumps as arrays, in the caller's order (0 W where there is none)."""

    power_w: FloatArray  # all pump power in the minimum: what an emergency takes
    takeable_w: FloatArray  # what a frame may take
    order: IntArray  # the order in which a frame takes it
    margin_min: FloatArray  # comfort margin, NaN where unknown

    @classmethod
    def of(
        cls,
        households: Sequence[HouseholdState],
        floor_w: FloatArray,
        now: datetime,
        config: AllocationConfig,
        fairness: PumpFairness | None,
    ) -> PumpFleet:
        fairness = fairness or PumpFairness()
        count = len(households)
        power, takeable = np.zeros(count), np.zeros(count)
        hybrid, band, times, held = (np.zeros(count) for _ in range(4))
        margins = np.full(count, np.nan)
        max_off_min = config.pump_max_off.total_seconds() / 60
        for index, household in enumerate(households):
            pump = household.heat_pump
            if pump is None:
                continue
            hid = household.household_id
            power[index] = pump.power_w
            margin = pump.comfort_margin_min
            margins[index] = np.nan if margin is None else margin
            hybrid[index] = pump.hybrid
            band[index] = -1.0 if margin is None else margin // config.pump_margin_band_min
            held[index] = hid in fairness.curtailed_now
            # Its current curtailment's own count does not push it down the order.
            times[index] = fairness.times_curtailed.get(hid, 0) - held[index]
            steerable = not (
                margin is None
                or margin < config.pump_edge_margin_min
                or pump.paused(now)
                or (not pump.hybrid and pump.off_minutes >= max_off_min)
            )
            if steerable:
                kept = pump.hybrid_cap_w if pump.hybrid else 0.0
                takeable[index] = max(0.0, pump.power_w - kept)
        # The plan's rules may have clipped a floor (connection): never below 0 W.
        power = np.minimum(power, floor_w)
        takeable = np.minimum(takeable, floor_w)
        # np.lexsort: the last key sorts first.
        order = np.lexsort((np.arange(count), -held, times, -band, -hybrid))
        return cls(power_w=power, takeable_w=takeable, order=order, margin_min=margins)

    def cuts(self, shortfall_w: float, selected: BoolArray) -> FloatArray:
        """Pump power taken from the `selected` households, in order, to meet `shortfall_w`."""
        order = self.order[selected[self.order]]
        sizes = self.takeable_w[order]
        taken_before = np.concatenate(([0.0], np.cumsum(sizes)[:-1]))
        cut = np.zeros_like(self.takeable_w)
        cut[order] = np.clip(shortfall_w - taken_before, 0.0, sizes)
        return cut[selected]

    def stagger(
        self,
        cut_w: FloatArray,
        selected: BoolArray,
        ids: Sequence[str],
        previous_w: Mapping[str, float],
        max_homes: int,
    ) -> FloatArray:
        """`cut_w` (of the `selected`) with returning pump power staggered: at most
        `max_homes` pumps get theirs back, lowest margin first; the others keep last
        round's cut, but never more than a frame may take from them now (a home at the
        edge, paused or past its maximum off time gets its pump back at once)."""
        holdable = np.minimum(
            np.array([previous_w.get(hid, 0.0) for hid in ids]), self.takeable_w[selected]
        )
        returning = holdable > cut_w + CURTAILED_W
        if not returning.any():
            return cut_w
        margins = self.margin_min[selected]
        recovery = recover_pumps(
            [
                HeldPump(
                    household_id=ids[index],
                    power_w=float(holdable[index] - cut_w[index]),
                    comfort_margin_min=None if np.isnan(margins[index]) else margins[index],
                )
                for index in np.flatnonzero(returning)
            ],
            # The split's cut fits the target, so any part of the return does too.
            float((holdable - cut_w)[returning].sum()),
            max_homes=max_homes,
        )
        still_held = {pump.household_id for pump in recovery.held}
        kept = np.array([hid in still_held for hid in ids], dtype=bool)
        staggered: FloatArray = np.where(kept, holdable, cut_w)
        return staggered


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldPump:
    """A pump whose power the allocation took and has not returned yet."""

    household_id: str
    power_w: float  # what it draws again when it resumes
    comfort_margin_min: float | None  # None: unknown, returned first (as at the edge)

    def __post_init__(self) -> None:
        if not self.household_id:
            raise AllocationError("a held pump needs a household id")
        if not (math.isfinite(self.power_w) and self.power_w >= 0):
            raise AllocationError(f"{self.household_id}: held pump power_w must be >= 0")
        margin = self.comfort_margin_min
        if margin is not None and not (math.isfinite(margin) and margin >= 0):
            raise AllocationError(f"{self.household_id}: held pump comfort_margin_min must be >= 0")


@dataclass(frozen=True, slots=True)
class PumpRecovery:
    released: tuple[str, ...]  # may run again from this round
    held: tuple[HeldPump, ...]  # still held: pass them to the next round


def held_pumps(
    allocation: Allocation, households: Sequence[HouseholdState]
) -> tuple[HeldPump, ...]:
    """The pumps `allocation` took power from: what a recovery starts with."""
    margins = {
        household.household_id: household.heat_pump.comfort_margin_min
        for household in households
        if household.heat_pump is not None
    }
    return tuple(
        HeldPump(
            household_id=share.household_id,
            power_w=share.pump_curtailment_w,
            comfort_margin_min=margins.get(share.household_id),
        )
        for share in allocation.shares
        if share.pump_curtailment_w > CURTAILED_W
    )


def recover_pumps(
    held: Sequence[HeldPump],
    room_w: float,
    *,
    max_homes: int = 10,
    max_step_w: float = math.inf,
) -> PumpRecovery:
    """Which held pumps may resume this round, lowest margin first.

    `room_w`: the cap less the transformer's load now (what may be added without a
    rebound above it). At most `max_homes` pumps and `max_step_w` resume per round; a
    pump that does not fit is passed over for a smaller one behind it.
    """
    if not math.isfinite(room_w):
        raise AllocationError(f"room_w must be finite, got {room_w!r}")
    if max_homes < 1:
        raise AllocationError("max_homes must be at least 1")
    if not max_step_w > 0:
        raise AllocationError("max_step_w must be > 0")
    ids = [pump.household_id for pump in held]
    if len(set(ids)) != len(ids):
        raise AllocationError("held pumps' household ids must be unique")
    ordered = sorted(
        held,
        key=lambda pump: -1.0 if pump.comfort_margin_min is None else pump.comfort_margin_min,
    )
    budget_w = min(room_w, max_step_w)
    released: list[str] = []
    kept: list[HeldPump] = []
    for pump in ordered:
        if len(released) < max_homes and pump.power_w <= budget_w:
            released.append(pump.household_id)
            budget_w -= pump.power_w
        else:
            kept.append(pump)
    return PumpRecovery(released=tuple(released), held=tuple(kept))
