"""Typed inputs and outputs of the live allocation (transformer cap -> household limits).

Conventions as in the rest of the engine: W, UTC, grid power positive when importing.
The transformer cap reuses `LimitInterval` (import/export W per interval), so a DSO
frame, an emergency cap, the configured default and the safe-mode value are one type.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from ..collective.problem import SharingRule
from ..limits import ExternalLimit, LimitInterval, LimitSource
from ..units import MAX_CONNECTION_POWER_W
from .plan_rules import plan_request

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "Allocation",
    "AllocationConfig",
    "AllocationError",
    "AllocationMode",
    "AllocationPhase",
    "CapSeries",
    "HeatPumpState",
    "HouseholdShare",
    "HouseholdState",
    "NonMemberLoad",
    "NonMemberSource",
    "SharingRule",
]

# The protocol's bound (units): every connection a member may declare is allocated.
MAX_HOUSEHOLD_POWER_W = MAX_CONNECTION_POWER_W
MAX_HOUSEHOLDS = 100_000
MINUTES_A_DAY = 1440.0  # the protocol caps a comfort margin at a day


class AllocationError(ValueError):
    """Input to the allocation that does not validate."""


class AllocationMode(StrEnum):
    """The DSO pilot's three modes."""

    CAPACITY_FRAME = "capacity_frame"  # a cap per time block; act when the aggregate nears it
    EMERGENCY = "emergency"  # every household to its minimum at once
    DYNAMIC = "dynamic"  # forecast of the load plus feedback on the measured aggregate


class AllocationPhase(StrEnum):
    """What the live allocator is doing now (shown on the dashboard)."""

    IDLE = "idle"  # the aggregate is well below the cap: nobody is limited
    ENGAGED = "engaged"  # limits hold the aggregate below the cap
    RELEASING = "releasing"  # limits are lifted household by household, staggered
    EMERGENCY = "emergency"  # every household at its guaranteed minimum


class NonMemberSource(StrEnum):
    MEASURED = "measured"  # from the DSO's transformer measurement
    ESTIMATE = "estimate"  # the configured estimate (no or stale measurement)


def _check_utc(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise AllocationError(f"{name} must be a UTC timestamp, got {value!r}")


def _check_power(value: float, name: str, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise AllocationError(f"{name} must be within [{low}, {high}] W, got {value!r}")


@dataclass(frozen=True, slots=True)
class CapSeries:
    """The transformer's caps (members and non-members together) and where they came from.

    `source` is DSO for a DSO frame or event, COMMUNITY for the configured default.
    Outside every interval the transformer is uncapped.
    """

    intervals: tuple[LimitInterval, ...]
    source: LimitSource = LimitSource.DSO

    def __post_init__(self) -> None:
        ordered = sorted(self.intervals, key=lambda interval: interval.start)
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise AllocationError(f"cap intervals overlap at {after.start.isoformat()}")
        object.__setattr__(self, "intervals", tuple(ordered))

    def import_cap_w(self, start: datetime, end: datetime) -> float | None:
        """The lowest import cap in force anywhere in [start, end]; None if uncapped."""
        caps = [
            interval.max_import_w
            for interval in self.intervals
            if interval.max_import_w is not None and interval.start <= end and interval.end > start
        ]
        return min(caps) if caps else None

    def export_cap_w(self, start: datetime, end: datetime) -> float | None:
        """The lowest export cap in force anywhere in [start, end]; None if uncapped."""
        caps = [
            interval.max_export_w
            for interval in self.intervals
            if interval.max_export_w is not None and interval.start <= end and interval.end > start
        ]
        return min(caps) if caps else None


@dataclass(frozen=True, slots=True)
class NonMemberLoad:
    """Load on the transformer that is not ours: the DSO's measurement or an estimate.

    The measurement is used while it is fresher than the allocator's
    `non_member_max_age`; otherwise the estimate is, and the allocation says so.
    """

    estimate_w: float
    measured_w: float | None = None
    measured_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_power(self.estimate_w, "non-member estimate", -1e9, 1e9)
        if (self.measured_w is None) != (self.measured_at is None):
            raise AllocationError("a non-member measurement needs both a value and a time")
        if self.measured_w is not None:
            _check_power(self.measured_w, "non-member measurement", -1e9, 1e9)
        if self.measured_at is not None:
            _check_utc(self.measured_at, "measured_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatPumpState:
    """A member's heat pump as the live allocation may steer it (protocol telemetry).

    `power_w`: its electric power now, part of the household's `guaranteed_min_w`.
    `hybrid`: a boiler fills in, so its pump may be held to `hybrid_cap_w` cheaply.
    `comfort_margin_min`: minutes until the home reaches the bottom of its comfort band
    with the pump off; None (unknown) counts as at the edge. `paused_until`: the member
    paused steering; its pump is taken only in an emergency until then.
    `off_minutes`: how long the allocation has held this pump off so far (the host
    counts it), for the maximum off time of an all-electric pump.
    """

    power_w: float
    hybrid: bool = False
    hybrid_cap_w: float = 0.0
    comfort_margin_min: float | None = None
    paused_until: datetime | None = None
    off_minutes: float = 0.0

    def __post_init__(self) -> None:
        top = MAX_HOUSEHOLD_POWER_W
        _check_power(self.power_w, "heat_pump.power_w", 0.0, top)
        _check_power(self.hybrid_cap_w, "heat_pump.hybrid_cap_w", 0.0, top)
        if self.hybrid_cap_w and not self.hybrid:
            raise AllocationError("heat_pump.hybrid_cap_w is for a hybrid only")
        margin = self.comfort_margin_min
        if margin is not None and not (math.isfinite(margin) and 0 <= margin <= MINUTES_A_DAY):
            raise AllocationError(
                f"heat_pump.comfort_margin_min must be within [0, {MINUTES_A_DAY}], got {margin!r}"
            )
        if self.paused_until is not None:
            _check_utc(self.paused_until, "heat_pump.paused_until")
        if not (math.isfinite(self.off_minutes) and 0 <= self.off_minutes <= MINUTES_A_DAY):
            raise AllocationError(
                f"heat_pump.off_minutes must be within [0, {MINUTES_A_DAY}], "
                f"got {self.off_minutes!r}"
            )

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdState:
    """One member as it reports itself (telemetry and capabilities).

    `guaranteed_min_w`: the lowest import limit it may be given (inflexible load, EV
    minimum charge, heat-pump comfort). `flexible_w`: what it would draw above that
    minimum right now if it were not limited, so its demand is the sum of the two.
    `cost_eur_per_kwh`: what curtailing it costs, for the merit order.
    `planned_limit`: the collective day-ahead plan's limit for it, if any; the live
    allocation never gives more than the plan in force. While that plan is in force,
    `planned_flexible_w` (the plan's power for its flexible load now) is kept as part of
    its floor, and a plan leaving less than `min_flexible_w` (an EV's 6 A minimum) above
    the floor means it asks for nothing (`allocation_plan`). `flexible_increment_w`: the
    flexible load is set in whole steps of this power (a charger's 1 A on its phases),
    so its planned power is kept rounded up to a whole step; 0: any power.
    `heat_pump`: its heat pump, if the member lets the allocation steer it (else its
    pump counts as inflexible, within the minimum, as before).
    """

    household_id: str
    measured_w: float
    guaranteed_min_w: float
    flexible_w: float
    connection_limit_w: float
    cost_eur_per_kwh: float = 0.0
    planned_limit: ExternalLimit | None = None
    planned_flexible_w: float = 0.0
    min_flexible_w: float = 0.0
    flexible_increment_w: float = 0.0
    heat_pump: HeatPumpState | None = None

    def __post_init__(self) -> None:
        if not self.household_id:
            raise AllocationError("a household needs an id")
        hid = self.household_id
        top = MAX_HOUSEHOLD_POWER_W
        _check_power(self.measured_w, f"{hid}: measured_w", -top, top)
        # 0 W: a connection with nothing that may draw (a charger-only home at rest).
        _check_power(self.connection_limit_w, f"{hid}: connection_limit_w", 0.0, top)
        _check_power(self.guaranteed_min_w, f"{hid}: guaranteed_min_w", 0.0, top)
        _check_power(self.flexible_w, f"{hid}: flexible_w", 0.0, top)
        _check_power(self.planned_flexible_w, f"{hid}: planned_flexible_w", 0.0, top)
        _check_power(self.min_flexible_w, f"{hid}: min_flexible_w", 0.0, top)
        _check_power(self.flexible_increment_w, f"{hid}: flexible_increment_w", 0.0, top)
        if not (math.isfinite(self.cost_eur_per_kwh) and self.cost_eur_per_kwh >= 0):
            raise AllocationError(f"{hid}: cost_eur_per_kwh must be finite and >= 0")
        pump = self.heat_pump
        if pump is not None and pump.power_w > self.guaranteed_min_w:
            # The pump's power is what a frame may take out of the minimum.
            raise AllocationError(
                f"{hid}: heat_pump.power_w ({pump.power_w} W) must be within guaranteed_min_w"
            )

    @property
    def floor_w(self) -> float:
        """The guaranteed minimum, within what the connection can carry."""
        return min(self.guaranteed_min_w, self.connection_limit_w)

    @property
    def export_w(self) -> float:
        """What it feeds in now (PV, battery): the export its limit would have to cover."""
        return max(0.0, -self.measured_w)

    def planned_import_w(self, now: datetime) -> float | None:
        """The day-ahead plan's import limit in force at `now`, if any."""
        planned = self.planned_limit.interval_at(now) if self.planned_limit else None
        return None if planned is None else planned.max_import_w

    def request_at(self, now: datetime) -> tuple[float, float]:
        """Floor and demand for the live allocation, under the plan in force."""
        planned_w = self.planned_import_w(now)
        request = plan_request(
            self.floor_w,
            self.flexible_w,
            planned_limit_w=math.inf if planned_w is None else planned_w,
            planned_flexible_w=self.planned_flexible_w,
            min_flexible_w=self.min_flexible_w,
            connection_w=self.connection_limit_w,
            measured_w=self.measured_w,
            increment_w=self.flexible_increment_w,
        )
        return float(request.floor_w), float(request.demand_w)

    def demand_w(self, now: datetime) -> float:
        """What it would draw unlimited, within its connection and the plan in force."""
        return self.request_at(now)[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationConfig:
    """Tuning of the live allocator; the defaults are what the benchmark runs.

    Fractions are of the members' budget (transformer cap less non-member load).
    """

    margin: float = 0.03  # aim this far below the budget
    engage_fraction: float = 0.92  # start limiting when demand or load reaches this
    release_fraction: float = 0.85  # lift limits when demand stays below this ...
    release_hold: timedelta = timedelta(minutes=2)  # ... for this long
    release_spread: timedelta = timedelta(minutes=5)  # households resume over this span
    integral_per_s: float = 1 / 60  # feedback: a persistent error is removed in ~a minute
    integral_range: float = 0.05  # anti-windup: the correction stays within +-5 %
    max_rise_w_per_s: float = 150.0  # a household's limit rises at most this fast
    lead_time: timedelta = timedelta(seconds=30)  # a lower cap is met this early
    limit_validity: timedelta = timedelta(seconds=60)  # renewed on every call
    expiry_spread: timedelta = timedelta(minutes=3)  # expiries spread so a dead server ...
    non_member_max_age: timedelta = timedelta(seconds=60)  # ... releases nobody at once
    seed: int = 0
    # Heat pumps (docs/allocation.md): a home whose comfort margin is below this is at
    # the edge of its band and keeps its pump outside an emergency ...
    pump_edge_margin_min: float = 30.0
    # ... margins within one band count as equal, so the fairness count decides ...
    pump_margin_band_min: float = 15.0
    # ... and an all-electric pump is never held off longer than this (a frame).
    pump_max_off: timedelta = timedelta(minutes=120)
    # Pumps given their power back per round after a frame's need or an emergency ends.
    pump_recovery_homes: int = 4
    # A pump given its power back runs at least this long before a frame takes it again
    # (no short cycling, and the maximum off time is not simply started over).
    pump_min_run: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if not (0 <= self.pump_edge_margin_min <= MINUTES_A_DAY and self.pump_margin_band_min > 0):
            raise AllocationError("pump_edge_margin_min must be within a day, the band > 0")
        if self.pump_max_off <= timedelta(0):
            raise AllocationError("pump_max_off must be positive")
        if self.pump_min_run < timedelta(0):
            raise AllocationError("pump_min_run must not be negative")
        if self.pump_recovery_homes < 1:
            raise AllocationError("pump_recovery_homes must be at least 1")
        if not 0 <= self.margin < 0.5:
            raise AllocationError("margin must be within [0, 0.5)")
        if not 0 < self.release_fraction < self.engage_fraction <= 1:
            raise AllocationError("need 0 < release_fraction < engage_fraction <= 1")
        if not (self.integral_per_s >= 0 and 0 <= self.integral_range < 0.5):
            raise AllocationError("integral gain must be >= 0 and its range within [0, 0.5)")
        if not self.max_rise_w_per_s > 0:
            raise AllocationError("max_rise_w_per_s must be > 0")
        if self.limit_validity <= timedelta(0):
            raise AllocationError("limit_validity must be positive")
        for name in ("release_hold", "release_spread", "lead_time", "expiry_spread"):
            if getattr(self, name) < timedelta(0):
                raise AllocationError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdShare:
    """One household's part of the allocation, for the explanation."""

    household_id: str
    demand_w: float
    limit_w: float | None  # None: not limited
    curtailment_w: float  # demand less limit, >= 0
    released: bool = False  # its limit was lifted this call (send it a clearing update)
    export_w: float = 0.0
    export_limit_w: float | None = None  # None: export not limited
    pump_curtailment_w: float = 0.0  # heat-pump power taken out of its minimum


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """Per-household limits and why: the rule, the mode, the budget, who gave up what."""

    limits: Mapping[str, ExternalLimit]
    shares: tuple[HouseholdShare, ...]
    phase: AllocationPhase
    mode: AllocationMode
    rule: SharingRule
    issued_at: datetime
    transformer_cap_w: float | None
    non_member_w: float
    non_member_source: NonMemberSource
    members_budget_w: float | None  # cap less non-member load
    members_target_w: float | None  # what the limits add up to (budget less margin, trimmed)
    members_measured_w: float
    members_demand_w: float
    feasible: bool = True
    shortfall_w: float = 0.0  # how far the cap is missed with everyone at their minimum
    reason: str = ""
    curtailed: tuple[str, ...] = field(default_factory=tuple)
    export_cap_w: float | None = None  # the transformer's export cap, if any
    members_export_budget_w: float | None = None  # export cap less non-member export
    export_engaged: bool = False  # members' export limits are in force

    @property
    def total_curtailment_w(self) -> float:
        return sum(share.curtailment_w for share in self.shares)
