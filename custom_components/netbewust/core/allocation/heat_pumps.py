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
`pump_max_off` already, a pump given its power back less than `pump_min_run` ago. An
emergency takes all pump power at once.

`PumpFairness` is the count the host keeps (`count_pump_curtailments` after every
allocation, with since when each pump is held and when it was last given its power
back); `member_pump_state` turns what a member reported (its pumps' ratings, comfort
margin, pause) into the allocator's `HeatPumpState`, refusing facts it cannot trust;
`recover_pumps` returns held pump power after a frame or an emergency over
successive rounds, lowest margin first, within the room below the cap (no rebound peak).
The allocator uses it itself while the frame goes on (`PumpFleet.stagger`): at most
`pump_recovery_homes` pumps get their power back per round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np

from .model import MAX_HOUSEHOLD_POWER_W, MINUTES_A_DAY, AllocationError, HeatPumpState

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
    "MemberPump",
    "PumpFairness",
    "PumpRating",
    "PumpRecovery",
    "count_pump_curtailments",
    "heat_pump_state",
    "held_pumps",
    "member_pump_state",
    "recover_pumps",
]

# A share below this is rounding, not a curtailment.
CURTAILED_W = 0.5
# The longest pause a member may choose (Home Assistant's pause duration goes to 48 h;
# an open pause is reported 24 h ahead); one ending later is refused, not honoured.
MAX_PAUSE = timedelta(hours=48)
# A comfort margin older than this is unknown (the home counts as at the edge).
MARGIN_MAX_AGE = timedelta(minutes=5)


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
    """Per home: how often a frame took its pump; whose pump is taken now and since
    when; when each pump last got its power back."""

    times_curtailed: Mapping[str, int] = field(default_factory=dict)
    curtailed_now: frozenset[str] = frozenset()
    curtailed_since: Mapping[str, datetime] = field(default_factory=dict)
    released_at: Mapping[str, datetime] = field(default_factory=dict)

    def off_minutes(self, household_id: str, now: datetime) -> float:
        """How long its pump has been held now (0 when it is not), within a day."""
        since = self.curtailed_since.get(household_id)
        if since is None or household_id not in self.curtailed_now:
            return 0.0
        return min(MINUTES_A_DAY, max(0.0, (now - since).total_seconds() / 60))

    def resting(self, household_id: str, now: datetime, min_run: timedelta) -> bool:
        """Its pump got its power back less than `min_run` ago."""
        released = self.released_at.get(household_id)
        return (
            household_id not in self.curtailed_now
            and released is not None
            and now < released + min_run
        )


def count_pump_curtailments(fairness: PumpFairness, allocation: Allocation) -> PumpFairness:
    """The count after `allocation`: a pump counts once per curtailment, when it begins;
    a curtailment that ends marks the pump released at the allocation's moment."""
    now = frozenset(
        share.household_id for share in allocation.shares if share.pump_curtailment_w > CURTAILED_W
    )
    at = allocation.issued_at
    counts = dict(fairness.times_curtailed)
    for hid in now - fairness.curtailed_now:
        counts[hid] = counts.get(hid, 0) + 1
    since = {hid: fairness.curtailed_since.get(hid, at) for hid in now}
    released = dict(fairness.released_at)
    for hid in fairness.curtailed_now - now:
        released[hid] = at
    return PumpFairness(
        times_curtailed=counts, curtailed_now=now, curtailed_since=since, released_at=released
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpRating:
    """One of a member's heat pumps as its thermal store describes it, at this moment.

    `hybrid_heat_w`: the boiler's heat (None: all-electric). `heat_loss_kw` and `cop`:
    the store's values for the current quarter hour (None: past the store's horizon).
    """

    max_power_w: float
    hybrid_heat_w: float | None = None
    heat_loss_kw: float | None = None
    cop: float | None = None

    def __post_init__(self) -> None:
        checks = (
            ("max_power_w", self.max_power_w, 0.0, MAX_HOUSEHOLD_POWER_W),
            ("hybrid_heat_w", self.hybrid_heat_w, 0.0, 1e6),
            ("heat_loss_kw", self.heat_loss_kw, -1e3, 1e3),
            ("cop", self.cop, 0.1, 20.0),
        )
        for name, value, low, high in checks:
            if value is not None and not (math.isfinite(value) and low <= value <= high):
                raise AllocationError(f"pump rating {name} must be within [{low}, {high}]")

    def hybrid_cap_w(self) -> float:
        """The electric power a hybrid is held to: what its boiler cannot cover of the
        heat loss now; all of its power when the loss or COP is unknown."""
        if self.hybrid_heat_w is None or self.heat_loss_kw is None or self.cop is None:
            return self.max_power_w
        missing_kw = self.heat_loss_kw - self.hybrid_heat_w / 1000
        return min(self.max_power_w, max(0.0, missing_kw * 1000 / self.cop))


@dataclass(frozen=True, slots=True)
class MemberPump:
    """A member's pumps for the allocator, and why a reported fact was refused."""

    state: HeatPumpState
    refused: str | None = None


def member_pump_state(
    ratings: Sequence[PumpRating],
    *,
    now: datetime,
    floor_w: float,
    measured_w: float,
    comfort_margin_min: float | None,
    comfort_margin_at: datetime | None,
    paused_until: datetime | None,
    off_minutes: float = 0.0,
    held_w: float = 0.0,
) -> MemberPump:
    """The allocator's view of a member's pumps from what it reported.

    Power now: the pumps' rated power within the member's floor (its base load, with
    the pump runs it planned) and what it would draw unheld: its draw now and the pump
    power the allocation holds back (`held_w`, last round's cut). The protocol reports no
    pump power, so this is an upper estimate. A hybrid only when every pump is one. The margin is
    aged by the minutes since it was measured, and unknown after `MARGIN_MAX_AGE`. A
    pause ending beyond `MAX_PAUSE` from now is refused with the margin (the report is
    not trusted; the home counts as at the edge): frames leave the pump alone, an
    emergency still takes it.
    """
    if not ratings:
        raise AllocationError("a member's pump state needs at least one pump rating")
    margin = comfort_margin_min
    if margin is not None and not (math.isfinite(margin) and margin >= 0):
        raise AllocationError(f"comfort_margin_min must be finite and >= 0, got {margin!r}")
    if margin is not None:
        age = (
            timedelta(0)
            if comfort_margin_at is None
            else max(now - comfort_margin_at, timedelta(0))
        )
        margin = None if age > MARGIN_MAX_AGE else max(0.0, margin - age.total_seconds() / 60)
    refused = None
    if paused_until is not None and paused_until > now + MAX_PAUSE:
        refused = f"pause until {paused_until.isoformat()} is beyond {MAX_PAUSE} ahead"
        margin, paused_until = None, None
    hybrid = all(rating.hybrid_heat_w is not None for rating in ratings)
    if not (math.isfinite(held_w) and held_w >= 0):
        raise AllocationError(f"held_w must be finite and >= 0, got {held_w!r}")
    unheld_w = max(0.0, measured_w) + held_w
    power_w = min(sum(rating.max_power_w for rating in ratings), floor_w, unheld_w)
    state = heat_pump_state(
        power_w=max(0.0, power_w),
        hybrid_cap_w=sum(rating.hybrid_cap_w() for rating in ratings) if hybrid else None,
        comfort_margin_min=margin,
        paused_until=paused_until,
        off_minutes=off_minutes,
    )
    return MemberPump(state, refused)


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
            off_min = max(pump.off_minutes, fairness.off_minutes(hid, now))
            steerable = not (
                margin is None
                or margin < config.pump_edge_margin_min
                or pump.paused(now)
                or (not pump.hybrid and off_min >= max_off_min)
                or fairness.resting(hid, now, config.pump_min_run)
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
