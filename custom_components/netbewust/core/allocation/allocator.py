"""Live allocation: the transformer cap becomes per-household limits, every few seconds.

One entry point, `LiveAllocator.allocate(cap, non_member, households, rule, mode, now)`,
called on every telemetry round (10 s) and whenever a DSO signal arrives. It returns an
`Allocation`: an `ExternalLimit` per limited household (short expiry; the server renews
them by calling again) and the explanation. See docs/allocation.md.

How it stays below the cap without oscillating:
- The members' budget is the cap (the lowest one starting within `lead_time`) less the
  non-member load (the DSO's measurement while fresh, else the configured estimate).
- Hysteresis: limits start when the members' demand or load reaches `engage_fraction`
  of the budget and are lifted only after demand stayed below `release_fraction` for
  `release_hold`.
- While engaged the limits add up to a target: the budget less a margin (feedforward),
  trimmed by an integral term on the measured aggregate (feedback for lags, overshoot
  and wrong demand estimates). The integral is clamped and frozen when the allocation
  is saturated (anti-windup). Limits drop at once but rise at most `max_rise_w_per_s`.
- Release is staggered: each household resumes at its own seeded random moment within
  `release_spread`; households still held absorb what the released ones take, so no
  rebound peak forms. Expiries are spread too, so a server that dies does not release
  every home at the same second.
- Emergency: every household to its guaranteed minimum at once, source EMERGENCY;
  the minimum then leaves out all steerable heat-pump power (`HouseholdState.heat_pump`).
- Heat pumps: when a frame cannot be met with every flexible load at its minimum, pump
  power is taken out of the minimums, hybrids first (`heat_pumps.PumpFleet`); it comes
  back a few pumps per round, lowest comfort margin first.
- Export caps: when the members' export (PV, batteries) reaches `engage_fraction` of the
  export budget (the export cap less non-member export), each exporting household gets a
  `max_export_w` in the same `ExternalLimit`, split by the same rule with no floor (PV
  can always be curtailed); lifted after export stayed below `release_fraction` for
  `release_hold`. No feedback term: the households' guards enforce export limits
  directly, and a lower export than allowed never pushes the transformer over its cap.

The collective day-ahead plan enters through `HouseholdState.planned_limit`: it caps the
live limit while it is in force, and is passed on unchanged while nothing is engaged.
Under it, a household's planned power is part of its floor and a household the plan
holds below its minimum flexible draw asks for nothing (`allocation_plan`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from ..limits import ExternalLimit, LimitInterval, LimitSource
from .heat_pumps import PumpFleet
from .model import (
    MAX_HOUSEHOLDS,
    Allocation,
    AllocationConfig,
    AllocationError,
    AllocationMode,
    AllocationPhase,
    HouseholdShare,
    HouseholdState,
    NonMemberLoad,
    NonMemberSource,
)
from .plan_rules import plan_request
from .split import ROUNDING_NOISE_W, split_budget

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from .heat_pumps import PumpFairness
    from .model import CapSeries, SharingRule

    FloatArray = NDArray[np.float64]


# Limits within this many W of the target count as reaching it.
ROUNDING_W = 1.0


class LiveAllocator:
    """Holds what must persist between calls: phase, integral, limits, release moments."""

    def __init__(self, config: AllocationConfig | None = None) -> None:
        self.config = config or AllocationConfig()
        self._phase = AllocationPhase.IDLE
        self._integral_w = 0.0
        self._last_call: datetime | None = None
        self._quiet_since: datetime | None = None
        self._release_at: dict[str, datetime] = {}
        self._limits_w: dict[str, float] = {}
        self._pump_cuts_w: dict[str, float] = {}
        self._rng = random.Random(self.config.seed)
        self._expiry_jitter: dict[str, timedelta] = {}
        self._export_engaged = False
        self._export_quiet_since: datetime | None = None
        self._export_limits_w: dict[str, float] = {}

    @property
    def phase(self) -> AllocationPhase:
        return self._phase

    def allocate(
        self,
        cap: CapSeries,
        non_member: NonMemberLoad,
        households: Sequence[HouseholdState],
        *,
        rule: SharingRule,
        mode: AllocationMode,
        now: datetime,
        forecast_members_w: float | None = None,
        pump_fairness: PumpFairness | None = None,
    ) -> Allocation:
        """The limits in force from `now`. `forecast_members_w` (DYNAMIC mode): the members'
        expected load for the coming interval, from the DSO or the households' baselines.
        `pump_fairness`: how often each home's pump was curtailed (the host keeps it with
        `heat_pumps.count_pump_curtailments`)."""
        self._check(households, now, forecast_members_w)
        dt_s = 0.0 if self._last_call is None else (now - self._last_call).total_seconds()
        self._last_call = now
        config = self.config
        non_member_w, non_member_source = self._non_member(non_member, now)
        cap_w = cap.import_cap_w(now, now + config.lead_time)
        budget_w = None if cap_w is None else cap_w - non_member_w
        fleet = _Fleet.of(households, now)
        pumps = (
            PumpFleet.of(households, fleet.floor, now, config, pump_fairness)
            if any(household.heat_pump is not None for household in households)
            else None
        )
        ids = [household.household_id for household in households]
        demand, floor = fleet.demand, fleet.floor
        measured_w = float(fleet.measured.sum())
        indicator_w = max(measured_w, float(demand.sum()))
        if mode is AllocationMode.DYNAMIC and forecast_members_w is not None:
            indicator_w = max(indicator_w, forecast_members_w)
        self._advance_phase(mode, budget_w, indicator_w, ids, now)

        limits_w: dict[str, float] = {}
        pump_cuts_w: dict[str, float] = {}
        target_w: float | None = None
        shortfall_w = 0.0
        if self._phase is AllocationPhase.EMERGENCY:
            # All pump power at once, paused or at the edge: the DSO's emergency comes first.
            if pumps is not None:
                pump_cuts_w = dict(zip(ids, pumps.power_w.tolist(), strict=True))
                floor = floor - pumps.power_w
            limits_w = dict(zip(ids, floor.tolist(), strict=True))
            if budget_w is not None:
                shortfall_w = max(0.0, float(floor.sum()) - budget_w)
        elif self._phase is not AllocationPhase.IDLE:
            limits_w, pump_cuts_w, target_w, shortfall_w = self._live_limits(
                fleet, pumps, budget_w, rule=rule, now=now, dt_s=dt_s
            )
        export_cap_w = cap.export_cap_w(now, now + config.lead_time)
        # Non-member load that imports absorbs nothing for sure (it may be an estimate);
        # non-member export adds to ours.
        export_budget_w = (
            None if export_cap_w is None else max(0.0, export_cap_w - max(0.0, -non_member_w))
        )
        export_limits_w = self._export_limits(fleet, export_budget_w, rule, now)
        previous = set(self._limits_w) | set(self._export_limits_w)
        self._limits_w = limits_w
        self._pump_cuts_w = pump_cuts_w
        self._export_limits_w = export_limits_w
        return self._result(
            households=households,
            demand=demand,
            limits_w=limits_w,
            pump_cuts_w=pump_cuts_w,
            export_limits_w=export_limits_w,
            released={hid for hid in previous if hid not in limits_w | export_limits_w},
            source=LimitSource.EMERGENCY
            if self._phase is AllocationPhase.EMERGENCY
            else cap.source,
            explanation=Allocation(
                limits={},
                shares=(),
                phase=self._phase,
                mode=mode,
                rule=rule,
                issued_at=now,
                transformer_cap_w=cap_w,
                non_member_w=non_member_w,
                non_member_source=non_member_source,
                members_budget_w=budget_w,
                members_target_w=target_w,
                members_measured_w=measured_w,
                members_demand_w=float(demand.sum()),
                feasible=shortfall_w <= 0,
                shortfall_w=shortfall_w,
                export_cap_w=export_cap_w,
                members_export_budget_w=export_budget_w,
                export_engaged=self._export_engaged,
            ),
        )

    # --- phases ---------------------------------------------------------------------

    def _advance_phase(
        self,
        mode: AllocationMode,
        budget_w: float | None,
        indicator_w: float,
        ids: list[str],
        now: datetime,
    ) -> None:
        config = self.config
        if mode is AllocationMode.EMERGENCY:
            self._phase = AllocationPhase.EMERGENCY
            self._integral_w = 0.0
            self._release_at.clear()
            return
        near_cap = budget_w is not None and indicator_w >= config.engage_fraction * budget_w
        quiet = budget_w is None or indicator_w <= config.release_fraction * budget_w
        if near_cap:
            self._phase = AllocationPhase.ENGAGED
            self._release_at.clear()
            self._quiet_since = None
            return
        match self._phase:
            case AllocationPhase.EMERGENCY:
                self._start_release(ids, now)
            case AllocationPhase.ENGAGED if budget_w is None:
                self._start_release(ids, now)  # the frame ended: nothing to hold for
            case AllocationPhase.ENGAGED:
                if not quiet:
                    self._quiet_since = None
                    return
                self._quiet_since = self._quiet_since or now
                if now - self._quiet_since >= config.release_hold:
                    self._start_release(ids, now)
            case AllocationPhase.RELEASING:
                if all(moment <= now for moment in self._release_at.values()):
                    self._phase = AllocationPhase.IDLE
                    self._release_at.clear()
                    self._integral_w = 0.0
            case AllocationPhase.IDLE:
                pass

    def _start_release(self, ids: list[str], now: datetime) -> None:
        spread_s = self.config.release_spread.total_seconds()
        self._phase = AllocationPhase.RELEASING
        self._quiet_since = None
        self._release_at = {
            hid: now + timedelta(seconds=self._rng.uniform(0.0, spread_s)) for hid in ids
        }

    # --- limits while engaged or releasing ------------------------------------------

    def _live_limits(
        self,
        fleet: _Fleet,
        pumps: PumpFleet | None,
        budget_w: float | None,
        *,
        rule: SharingRule,
        now: datetime,
        dt_s: float,
    ) -> tuple[dict[str, float], dict[str, float], float | None, float]:
        config = self.config
        releasing = self._phase is AllocationPhase.RELEASING
        # Households appearing mid-release are released at once: they were never held.
        held = np.array(
            [not releasing or self._release_at.get(hid, now) > now for hid in fleet.ids],
            dtype=bool,
        )
        held_ids = [hid for hid, hold in zip(fleet.ids, held, strict=True) if hold]
        if budget_w is None:
            # No cap any more (the frame ended): the held keep their last limit.
            kept = {hid: self._limits_w[hid] for hid in held_ids if hid in self._limits_w}
            cuts = {hid: self._pump_cuts_w[hid] for hid in kept if hid in self._pump_cuts_w}
            return kept, cuts, None, 0.0
        aim_w = budget_w * (1 - config.margin)
        target_w = aim_w + self._integral_w
        held_budget_w = target_w - float(fleet.demand[~held].sum())
        split = split_budget(
            rule,
            held_budget_w,
            fleet.demand[held],
            floor_w=fleet.floor[held],
            ceiling_w=fleet.ceiling[held],
            cost=fleet.cost[held],
        )
        floor, allotted_w = fleet.floor[held], split.limits_w
        missing_w = split.shortfall_w
        pump_cuts_w: dict[str, float] = {}
        if pumps is not None:
            # Every flexible load is at its minimum already: take pump power out of it.
            cut = pumps.cuts(missing_w, held) if missing_w > 0 else np.zeros(len(held_ids))
            missing_w = max(0.0, missing_w - float(cut.sum()))
            # Power no longer needed returns a few pumps per round (no synchronised start).
            cut = pumps.stagger(cut, held, held_ids, self._pump_cuts_w, config.pump_recovery_homes)
            floor, allotted_w = floor - cut, np.minimum(allotted_w, floor - cut)
            pump_cuts_w = {hid: w for hid, w in zip(held_ids, cut.tolist(), strict=True) if w}
        rise_w = config.max_rise_w_per_s * dt_s
        limits: dict[str, float] = {}
        for hid, allotted, minimum in zip(held_ids, allotted_w, floor, strict=True):
            previous = self._limits_w.get(hid)
            capped = allotted if previous is None else min(allotted, previous + rise_w)
            limits[hid] = max(float(capped), float(minimum))
        # Anti-windup: no integrating up while the limits could not rise to the target
        # (everyone curtailed is still ramping, or nobody is curtailed at all), nor down
        # while everyone held is at the minimum already.
        held_limits_w = sum(limits.values())
        self._update_integral(
            aim_w - float(fleet.measured.sum()),
            budget_w,
            blocked_down=missing_w > ROUNDING_NOISE_W,
            blocked_up=float(fleet.demand[held].sum()) <= held_budget_w
            or held_limits_w < held_budget_w - ROUNDING_W,
            dt_s=dt_s,
        )
        shortfall_w = float(floor.sum() + fleet.demand[~held].sum()) - budget_w
        return limits, pump_cuts_w, target_w, max(0.0, shortfall_w)

    def _update_integral(
        self, error_w: float, budget_w: float, *, blocked_down: bool, blocked_up: bool, dt_s: float
    ) -> None:
        """Integrate the aggregate's error, within [-integral_range, +margin] of the budget:
        the limits never add up to more than the budget itself."""
        if (blocked_down and error_w < 0) or (blocked_up and error_w > 0):
            return
        scale = max(budget_w, 0.0)
        updated = self._integral_w + self.config.integral_per_s * error_w * dt_s
        low, high = -self.config.integral_range * scale, self.config.margin * scale
        self._integral_w = min(high, max(low, updated))

    # --- export ---------------------------------------------------------------------

    def _export_limits(
        self, fleet: _Fleet, budget_w: float | None, rule: SharingRule, now: datetime
    ) -> dict[str, float]:
        config = self.config
        exported_w = float(fleet.export.sum())
        if budget_w is None:
            self._export_engaged, self._export_quiet_since = False, None
            return {}
        if exported_w >= config.engage_fraction * budget_w:
            self._export_engaged, self._export_quiet_since = True, None
        elif self._export_engaged and exported_w <= config.release_fraction * budget_w:
            self._export_quiet_since = self._export_quiet_since or now
            if now - self._export_quiet_since >= config.release_hold:
                self._export_engaged, self._export_quiet_since = False, None
        else:
            self._export_quiet_since = None
        if not self._export_engaged:
            return {}
        split = split_budget(
            rule,
            budget_w * (1 - config.margin),
            np.minimum(fleet.export, fleet.ceiling),
            floor_w=np.zeros_like(fleet.export),
            ceiling_w=fleet.ceiling,
            cost=fleet.cost,
        )
        return dict(zip(fleet.ids, split.limits_w.tolist(), strict=True))

    # --- output ---------------------------------------------------------------------

    def _result(
        self,
        *,
        households: Sequence[HouseholdState],
        demand: FloatArray,
        limits_w: Mapping[str, float],
        pump_cuts_w: Mapping[str, float],
        export_limits_w: Mapping[str, float],
        released: set[str],
        source: LimitSource,
        explanation: Allocation,
    ) -> Allocation:
        now = explanation.issued_at
        limits: dict[str, ExternalLimit] = {}
        shares: list[HouseholdShare] = []
        for household, wanted in zip(households, demand.tolist(), strict=True):
            hid = household.household_id
            limit_w = limits_w.get(hid)
            export_limit_w = export_limits_w.get(hid)
            planned = household.planned_limit
            if planned is not None and planned.is_expired(now):
                planned = None
            if limit_w is None and export_limit_w is None:
                if planned is not None:
                    limits[hid] = planned
            else:
                import_w = limit_w
                if import_w is None and planned is not None:
                    in_force = planned.interval_at(now)
                    import_w = None if in_force is None else in_force.max_import_w
                limits[hid] = self._limit(
                    hid,
                    None if import_w is None else round(import_w, 1),
                    None if export_limit_w is None else round(export_limit_w, 1),
                    source,
                    now,
                )
            shares.append(
                HouseholdShare(
                    household_id=hid,
                    demand_w=wanted,
                    limit_w=limit_w,
                    curtailment_w=0.0 if limit_w is None else max(0.0, wanted - limit_w),
                    released=hid in released,
                    export_w=household.export_w,
                    export_limit_w=export_limit_w,
                    pump_curtailment_w=pump_cuts_w.get(hid, 0.0),
                )
            )
        curtailed = tuple(share.household_id for share in shares if share.curtailment_w > 0.5)
        return _with(explanation, limits, tuple(shares), curtailed)

    def _limit(
        self,
        hid: str,
        import_w: float | None,
        export_w: float | None,
        source: LimitSource,
        now: datetime,
    ) -> ExternalLimit:
        jitter = self._expiry_jitter.get(hid)
        if jitter is None:
            spread_s = self.config.expiry_spread.total_seconds()
            jitter = timedelta(
                seconds=random.Random(f"{self.config.seed}:{hid}").uniform(0, spread_s)
            )
            self._expiry_jitter[hid] = jitter
        expires_at = now + self.config.limit_validity + jitter
        interval = LimitInterval(
            start=now, end=expires_at, max_import_w=import_w, max_export_w=export_w
        )
        return ExternalLimit(
            source=source, issued_at=now, expires_at=expires_at, intervals=(interval,)
        )

    # --- input ----------------------------------------------------------------------

    def _non_member(self, load: NonMemberLoad, now: datetime) -> tuple[float, NonMemberSource]:
        if load.measured_w is not None and load.measured_at is not None:
            age = now - load.measured_at
            if timedelta(0) <= age <= self.config.non_member_max_age:
                return load.measured_w, NonMemberSource.MEASURED
        return load.estimate_w, NonMemberSource.ESTIMATE

    def _check(
        self,
        households: Sequence[HouseholdState],
        now: datetime,
        forecast_members_w: float | None,
    ) -> None:
        if now.tzinfo is None or now.utcoffset() != timedelta(0):
            raise AllocationError(f"now must be a UTC timestamp, got {now!r}")
        if self._last_call is not None and now < self._last_call:
            raise AllocationError(f"time went backwards: {now} after {self._last_call}")
        if len(households) > MAX_HOUSEHOLDS:
            raise AllocationError(f"at most {MAX_HOUSEHOLDS} households")
        ids = [household.household_id for household in households]
        if len(set(ids)) != len(ids):
            raise AllocationError("household ids must be unique")
        if forecast_members_w is not None and not np.isfinite(forecast_members_w):
            raise AllocationError("forecast_members_w must be finite")


@dataclass(frozen=True, slots=True)
class _Fleet:
    """The households as arrays, in the caller's order."""

    ids: tuple[str, ...]
    demand: FloatArray
    floor: FloatArray
    ceiling: FloatArray
    cost: FloatArray
    measured: FloatArray
    export: FloatArray

    @classmethod
    def of(cls, households: Sequence[HouseholdState], now: datetime) -> _Fleet:
        def column(values: list[float]) -> FloatArray:
            return np.array(values, dtype=float)

        planned = [h.planned_import_w(now) for h in households]
        ceiling = column([h.connection_limit_w for h in households])
        measured = column([h.measured_w for h in households])
        request = plan_request(
            column([h.floor_w for h in households]),
            column([h.flexible_w for h in households]),
            planned_limit_w=column([math.inf if w is None else w for w in planned]),
            planned_flexible_w=column([h.planned_flexible_w for h in households]),
            min_flexible_w=column([h.min_flexible_w for h in households]),
            connection_w=ceiling,
            measured_w=measured,
            increment_w=column([h.flexible_increment_w for h in households]),
        )
        return cls(
            ids=tuple(h.household_id for h in households),
            demand=request.demand_w,
            floor=request.floor_w,
            ceiling=ceiling,
            cost=column([h.cost_eur_per_kwh for h in households]),
            measured=measured,
            export=column([h.export_w for h in households]),
        )


def _with(
    explanation: Allocation,
    limits: dict[str, ExternalLimit],
    shares: tuple[HouseholdShare, ...],
    curtailed: tuple[str, ...],
) -> Allocation:
    reason = _reason(explanation, curtailed)
    return replace(explanation, limits=limits, shares=shares, curtailed=curtailed, reason=reason)


def _reason(allocation: Allocation, curtailed: tuple[str, ...]) -> str:
    phase = allocation.phase
    parts = [f"{phase} ({allocation.mode}, rule {allocation.rule})"]
    if allocation.members_budget_w is not None:
        parts.append(
            f"members may use {allocation.members_budget_w:.0f} W "
            f"(cap {allocation.transformer_cap_w:.0f} W less {allocation.non_member_w:.0f} W "
            f"non-member load, {allocation.non_member_source})"
        )
    if curtailed:
        parts.append(f"{len(curtailed)} households curtailed")
    if allocation.export_engaged and allocation.members_export_budget_w is not None:
        parts.append(f"members' export held to {allocation.members_export_budget_w:.0f} W")
    if not allocation.feasible:
        parts.append(
            f"cap cannot be met: {allocation.shortfall_w:.0f} W over with every household "
            "at its guaranteed minimum"
        )
    return "; ".join(parts)
