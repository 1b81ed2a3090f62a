"""Keep one transformer's members below the cap in force: the engine's live allocator.

It runs every telemetry round (10 s) and at once when woken by a DSO signal. The cap
comes from a `CapProvider`: the DSO's cap in force (`DsoRuntime.cap_for`) when serving,
a fixed configured cap in the demo. The households' latest telemetry is the measured
load; their capabilities give the connection limit.

Guaranteed minimum (protocol v1 reports none): the household's own baseline for now
(what the community cannot move: base load and heat-pump runs, less PV) less the power
its heat pump can give up without losing comfort (`HeatPumpCapability`), when it sent
one, else `GUARANTEED_MIN_W`; never above the connection. A heat pump that is not
running leaves that floor lower than the real base load by up to its flexible power;
the measured load the allocation feeds back on covers that. Limits are sent only when
they change or are about to expire, all of one round in one burst; a released household
gets an empty limit that clears the old one. While a day-ahead planned limit is in
force, the household keeps the power the plan gives it above its base load (the
engine's `allocation_plan`). A car charging now (an EV envelope open now) has a minimum
power: the envelope's `min_power_w` when reported, else 6 A on every phase of the
connection. A plan leaving less than that above the base load asks for nothing, since
the car would pause anyway.

Heat pumps offered as thermal stores (protocol v1's `heat_pump_flexibility`): their
power stays in the minimum and the engine decides when a frame may take it
(`heat_pumps.member_pump_state` from the stores' ratings now, the latest comfort margin
and pause; docs/allocation.md). The fairness it needs (`PumpFairness`: how often each
pump was taken, since when it is held, when it was released) is kept per transformer,
read from the database at the first round and written whenever it changes, so a
restart keeps it. A pump fact the engine refuses (a pause beyond 48 h) leaves the pump
to emergencies only; it is logged, counted and shown (`CapStatus.pump_refused`).
The sharing rule and each household's cost of flexibility (by its reported
tariff class, for the merit order) come from the `[allocation]` settings. In an
emergency every member is told, also those without fresh telemetry.

Dynamic virtual limit: the allocator also gets a forecast of the members' load, so it
engages before the load arrives; its feedback on the measured aggregate does the rest.
The forecast is the DSO's transformer-load forecast less the non-member load when the
DSO sends one, else the sum of the members' baselines over the coming quarter hour.

One member never stops the round for the others: a member whose data the allocator
cannot use (a value outside its ranges, capabilities stored under older rules that no
longer decode) is left out of that round
with the reason, logged (a line per member and reason every ten minutes), counted in
`exclusions` and shown on the dashboard (`CapStatus.excluded`); its fresh measured load
still counts, as load the allocation cannot move. In an emergency the members left out,
and every member when a whole round fails, get an emergency limit at their floor that
needs no allocator (`_emergency_limits`); so do all members while the cap or the members
cannot be read during an emergency (the last ones read, until its end); it is cleared
when the emergency ends. A failed round shows as phase "failed" with its error, never
as the last phase that worked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from netbewust_core.allocation.allocator import LiveAllocator
from netbewust_core.allocation.heat_pumps import (
    PumpFairness,
    PumpRating,
    count_pump_curtailments,
    member_pump_state,
)
from netbewust_core.allocation.model import (
    AllocationConfig,
    AllocationError,
    AllocationMode,
    CapSeries,
    HouseholdState,
    NonMemberLoad,
)
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.model import MIN_CHARGE_CURRENT_A, NOMINAL_VOLTAGE_V
from netbewust_core.protocol.messages import (
    MAX_CONNECTION_POWER_W,
    QUARTER_HOUR,
    TELEMETRY_INTERVAL_S,
    AssetKind,
)
from netbewust_core.units import connection_power_w

from .allocation_settings import AllocationSettings
from .dso.allocation_input import allocation_input
from .dso.in_force import CapInForce, NonMemberLoadSource
from .dso.signals import CapMode, SignalSource
from .log_limits import LimitedLog
from .timestamps import CLOCK_TOLERANCE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from netbewust_core.allocation.model import Allocation
    from netbewust_core.protocol.messages import (
        BaselineForecast,
        Capabilities,
        FlexEnvelope,
        HeatPumpFlexibility,
        Telemetry,
    )

    from .server import CommunityServer
    from .store import Household, Store

    # The cap in force for a transformer at a moment.
    type CapProvider = Callable[[str, datetime], Awaitable[CapInForce]]

_LOGGER = logging.getLogger(__name__)
GUARANTEED_MIN_W = 1500.0  # base load and heat-pump comfort when no baseline was sent
STALE_AFTER = timedelta(seconds=3 * TELEMETRY_INTERVAL_S)
RENEW_BEFORE = timedelta(seconds=25)
_NO_CAP = CapSeries(intervals=())
FORECAST_AHEAD = QUARTER_HOUR  # a baseline peak this close engages the allocation
# A member that sent no capabilities yet counts as the smallest usual Dutch connection.
UNKNOWN_CONNECTION = (1, 25.0)
EXCLUDED = "excluded"  # a member's data the allocator cannot use: the rejection code
PUMP_REFUSED = "heat_pump_refused"  # a pump fact the engine refuses (the pump stays in)
FAILED = "failed"  # the phase shown while rounds fail
EXCLUSION_LOG_PERIOD_S = 600.0  # one line per member and reason in this period


def is_fresh(telemetry: Telemetry | None, now: datetime) -> bool:
    """Whether a report is recent enough to act on. One stamped ahead of the clock beyond
    the tolerance never is (ingest refuses those; this holds for any other source)."""
    if telemetry is None:
        return False
    return -CLOCK_TOLERANCE <= now - telemetry.measured_at <= STALE_AFTER


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A member left out of a round, and why."""

    household_id: str
    reason: str  # the code, e.g. "excluded"
    detail: str  # the check that failed, for the operator


def why_excluded(err: Exception) -> str:
    """A member's exclusion reason: the check that failed, or the error's type when it
    is not a validation error (a bug shows as such on the dashboard, not as bad data)."""
    detail = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
    return detail[:300]


class RoundFailed(Exception):
    """An allocation round failed; already logged, counted and shown on the dashboard."""


@dataclass(frozen=True, slots=True)
class CapStatus:
    """What the dashboard shows about the allocation and the cap it works to."""

    cap_w: float | None
    phase: str
    members_budget_w: float | None
    limited: int
    mode: str | None  # frame, emergency, dynamic; None: no cap in force
    source: str | None  # http, openadr, safe_mode, configured_default
    until: datetime | None
    non_member_w: float | None
    non_member_source: str
    rule: str
    export_cap_w: float | None = None
    export_limited: bool = False  # members' export limits are in force
    forecast_members_w: float | None = None  # dynamic mode: the forecast the allocator used
    forecast_source: str | None = None  # dso or baselines
    excluded: tuple[Exclusion, ...] = ()  # members left out of this round
    error: str | None = None  # why the round failed (phase "failed")
    failed_rounds: int = 0  # rounds failed in a row
    pumps_curtailed: int = 0  # members whose heat-pump power this round takes
    pump_refused: tuple[Exclusion, ...] = ()  # members whose pump facts were refused


def fixed_cap(cap_w: float) -> CapProvider:
    """A configured cap that is always in force (the demo's transformer)."""

    async def provide(transformer_id: str, now: datetime) -> CapInForce:
        return CapInForce(
            transformer_id=transformer_id,
            at=now,
            import_w=cap_w,
            export_w=None,
            mode=CapMode.FRAME,
            source=SignalSource.CONFIGURED_DEFAULT,
            signal_ids=(),
            until=None,
            non_member_load_w=None,
            non_member_load_source=NonMemberLoadSource.UNKNOWN,
        )

    return provide


class CapControl:
    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        transformer_id: str,
        caps: CapProvider,
        *,
        settings: AllocationSettings | None = None,
        config: AllocationConfig | None = None,
    ) -> None:
        self._server = server
        self._store = store
        self.transformer_id = transformer_id
        self._caps = caps
        self.settings = settings or AllocationSettings()
        self.rule = self.settings.rule
        self._allocator = LiveAllocator(config or AllocationConfig())
        self._sent: dict[str, ExternalLimit] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # a woken round never interleaves with a timed one
        self.status: CapStatus | None = None
        # The collective day-ahead plan's limit per household (`use_plan`).
        self.planned_limits: dict[str, ExternalLimit] = {}
        self.exclusions: Counter[str] = Counter()  # members left out, by reason, ever
        self.failed_rounds = 0  # in a row
        # Households holding an emergency limit sent without the allocator.
        self._fallback: set[str] = set()
        # The last cap and members read: a round that cannot read them during an
        # emergency still keeps every member limited until that emergency ends.
        self._last_cap: CapInForce | None = None
        self._last_members: list[Household] = []
        self._log = LimitedLog(_LOGGER, first=1, period_s=EXCLUSION_LOG_PERIOD_S)
        # Heat-pump fairness, read from the database at the first round.
        self.pump_fairness: PumpFairness | None = None
        self.pump_curtailments_begun = 0  # since the server started
        self._pump_cuts_w: dict[str, float] = {}  # last round's, per member
        self._unsaved_pumps: set[str] = set()  # members whose fairness is not stored yet

    def use_plan(self, planned: Mapping[str, ExternalLimit], published: Iterable[str]) -> None:
        """Cap with the day-ahead plan from now; `published` households already have it."""
        self.planned_limits = dict(planned)
        for household_id in published:
            self._sent[household_id] = planned[household_id]
        self.wake()

    def wake(self) -> None:
        """Run a round now (a DSO signal arrived) instead of at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            started = time.perf_counter()
            failed = True
            try:
                async with self._lock:  # read the clock inside: rounds never go back in time
                    await self._step(self._server.now())
                failed = False
            except RoundFailed:
                pass  # logged (limited), counted and on the dashboard already
            except Exception:  # one bad round must not end the control loop
                _LOGGER.exception("allocation round for %s failed", self.transformer_id)
            metrics = self._server.metrics
            metrics.allocation_round(
                self.transformer_id, time.perf_counter() - started, failed=failed
            )
            for exclusion in self.status.excluded if self.status else ():
                metrics.allocation_excluded[self.transformer_id, exclusion.reason] += 1
            if self.status is not None:
                metrics.heat_pump_facts_refused[self.transformer_id] += len(
                    self.status.pump_refused
                )
                metrics.heat_pumps_curtailed[self.transformer_id] = self.status.pumps_curtailed
            metrics.heat_pump_curtailments[self.transformer_id] = self.pump_curtailments_begun
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TELEMETRY_INTERVAL_S)

    async def step(self, now: datetime) -> Allocation:
        async with self._lock:
            return await self._step(now)

    async def _step(self, now: datetime) -> Allocation:
        """One round; raises `RoundFailed` (after the emergency fallback) when it fails."""
        self._log.flush()
        cap: CapInForce | None = None
        members: list[Household] = []
        excluded: list[Exclusion] = []
        try:
            cap = self._last_cap = await self._caps(self.transformer_id, now)
            households = await self._server.run_in_db(self._store.households)
            members = [h for h in households if h.transformer_id == self.transformer_id]
            self._last_members = members
            handed = allocation_input(cap)
            series, mode, non_member = (
                handed
                if handed is not None
                else (_NO_CAP, AllocationMode.CAPACITY_FRAME, NonMemberLoad(estimate_w=0.0))
            )
            emergency = mode is AllocationMode.EMERGENCY
            if self.pump_fairness is None:
                self.pump_fairness = await self._server.run_in_db(
                    self._store.pump_fairness, [h.household_id for h in members]
                )
            refused: list[Exclusion] = []
            states, excluded = self._states(members, now, everyone=emergency, refused=refused)
            non_member = self._with_unallocated(non_member, excluded, now)
            forecast_w, forecast_source = (
                self._forecast_members_w(cap, members, now)
                if mode is AllocationMode.DYNAMIC
                else (None, None)
            )
            allocation = self._allocator.allocate(
                series,
                non_member,
                states,
                rule=self.rule,
                mode=mode,
                now=now,
                forecast_members_w=forecast_w,
                pump_fairness=self.pump_fairness,
            )
        except Exception as err:
            await self._failed(now, cap, members, excluded, err)
            raise RoundFailed(f"allocation round for {self.transformer_id}: {err}") from err
        self.failed_rounds = 0
        self._count_pumps(allocation)
        outgoing = self._changed(allocation.limits, now)
        unallocated = [h for h in members if h.household_id not in allocation.limits]
        if emergency:  # those the allocator could not take still get an emergency limit
            outgoing |= self._changed(self._emergency_limits(unallocated, now), now)
        outgoing |= self._fallbacks_cleared(outgoing, now, emergency=emergency)
        for share in allocation.shares:
            if share.released and share.household_id in self._sent:
                outgoing[share.household_id] = self._released(share.household_id, now)
        await self._send(
            outgoing, released={s.household_id for s in allocation.shares if s.released}
        )
        await self._save_pumps()  # after the limits: they must not wait for the disk
        self.status = CapStatus(
            cap_w=allocation.transformer_cap_w,
            phase=str(allocation.phase),
            members_budget_w=allocation.members_budget_w,
            limited=len(allocation.limits) + (len(unallocated) if emergency else 0),
            mode=None if cap.mode is None else str(cap.mode),
            source=None if cap.source is None else str(cap.source),
            until=cap.until,
            non_member_w=cap.non_member_load_w,
            non_member_source=str(cap.non_member_load_source),
            rule=str(self.rule),
            export_cap_w=allocation.export_cap_w,
            export_limited=allocation.export_engaged,
            forecast_members_w=forecast_w,
            forecast_source=forecast_source,
            excluded=tuple(excluded),
            pumps_curtailed=len(self.pump_fairness.curtailed_now) if self.pump_fairness else 0,
            pump_refused=tuple(refused),
        )
        return allocation

    def _count_pumps(self, allocation: Allocation) -> None:
        """The fairness after this round; the members whose fairness changed are stored
        next (`_save_pumps`)."""
        before = self.pump_fairness or PumpFairness()
        after = self.pump_fairness = count_pump_curtailments(before, allocation)
        self._pump_cuts_w = {
            share.household_id: share.pump_curtailment_w
            for share in allocation.shares
            if share.pump_curtailment_w > 0
        }
        self.pump_curtailments_begun += len(after.curtailed_now - before.curtailed_now)
        self._unsaved_pumps |= (after.curtailed_now ^ before.curtailed_now) | {
            hid for hid, at in after.released_at.items() if before.released_at.get(hid) != at
        }

    async def _save_pumps(self) -> None:
        """Store the fairness of the members whose fairness changed; those a failed write
        missed are stored with the next round's."""
        if not self._unsaved_pumps or self.pump_fairness is None:
            return
        changed = sorted(self._unsaved_pumps)
        try:
            await self._server.run_in_db(
                self._store.save_pump_fairness, self.pump_fairness, changed
            )
        except Exception:  # logged; the limits went out already
            _LOGGER.exception("could not store the heat-pump fairness of %s", self.transformer_id)
            return
        self._unsaved_pumps.difference_update(changed)

    def _changed(
        self, limits: Mapping[str, ExternalLimit], now: datetime
    ) -> dict[str, ExternalLimit]:
        """The limits worth sending: new, moved, near expiry, or the plan replacing one."""
        return {
            household_id: limit
            for household_id, limit in limits.items()
            if (previous := self._sent.get(household_id)) is None
            or _differs(previous, limit, now)
            or (limit is self.planned_limits.get(household_id) and previous is not limit)
        }

    def _states(
        self, members: list[Household], now: datetime, *, everyone: bool, refused: list[Exclusion]
    ) -> tuple[list[HouseholdState], list[Exclusion]]:
        """Each member's allocator input; a member whose data it refuses is left out, one
        whose pump facts it refuses keeps its pump in its minimum (`refused`)."""
        states: list[HouseholdState] = []
        excluded: list[Exclusion] = []
        for household in members:
            try:
                if household.capabilities_error is not None:
                    raise ValueError(household.capabilities_error)
                state = self._state(household, now, everyone=everyone, refused=refused)
            except Exception as err:  # whatever it is, it is this member's alone
                exclusion = Exclusion(household.household_id, EXCLUDED, why_excluded(err))
                excluded.append(exclusion)
                self.exclusions[exclusion.reason] += 1
                self._log.log(
                    logging.WARNING,
                    f"{exclusion.reason} {household.household_id}",
                    "%s left out of the allocation of %s: %s",
                    household.household_id,
                    self.transformer_id,
                    exclusion.detail,
                )
                continue
            if state is not None:
                states.append(state)
        for refusal in refused:
            self._log.log(
                logging.WARNING,
                f"{refusal.reason} {refusal.household_id}",
                "%s: heat-pump facts refused (the pump is left to emergencies): %s",
                refusal.household_id,
                refusal.detail,
            )
        return states, excluded

    def _with_unallocated(
        self, non_member: NonMemberLoad, excluded: list[Exclusion], now: datetime
    ) -> NonMemberLoad:
        """What the members left out draw loads the transformer like non-member load."""
        extra_w = 0.0
        for exclusion in excluded:
            telemetry = self._server.latest_telemetry.get(exclusion.household_id)
            if telemetry is not None and is_fresh(telemetry, now):
                total = telemetry.total_power_w
                if math.isfinite(total):
                    extra_w += max(-MAX_CONNECTION_POWER_W, min(MAX_CONNECTION_POWER_W, total))
        if extra_w == 0.0:
            return non_member
        try:
            return dataclasses.replace(
                non_member,
                estimate_w=non_member.estimate_w + extra_w,
                measured_w=None
                if non_member.measured_w is None
                else non_member.measured_w + extra_w,
            )
        except AllocationError:  # beyond any transformer: the DSO's figure alone
            return non_member

    async def _failed(
        self,
        now: datetime,
        cap: CapInForce | None,
        members: list[Household],
        excluded: list[Exclusion],
        err: Exception,
    ) -> None:
        """A failed round: log it (limited), show it, and in an emergency still limit
        every member, with no help from the allocator."""
        self.failed_rounds += 1
        error = f"{type(err).__name__}: {err}"[:300]
        self._log.log(
            logging.ERROR,
            "round failed",
            "allocation round for %s failed (%d in a row): %s",
            self.transformer_id,
            self.failed_rounds,
            error,
        )
        held = self._last_cap
        if cap is None and held is not None and held.mode is CapMode.EMERGENCY:
            cap = held if held.until is None or now < held.until else None
        emergency = cap is not None and cap.mode is CapMode.EMERGENCY
        outgoing: dict[str, ExternalLimit] = {}
        if emergency:
            members = members or self._last_members
            outgoing = self._changed(self._emergency_limits(members, now), now)
            await self._send(outgoing, released=set())
        self.status = CapStatus(
            cap_w=None if cap is None else cap.import_w,
            phase=FAILED,
            members_budget_w=None,
            limited=len(self._fallback) if emergency else 0,
            mode=None if cap is None or cap.mode is None else str(cap.mode),
            source=None if cap is None or cap.source is None else str(cap.source),
            until=None if cap is None else cap.until,
            non_member_w=None if cap is None else cap.non_member_load_w,
            non_member_source=str(
                NonMemberLoadSource.UNKNOWN if cap is None else cap.non_member_load_source
            ),
            rule=str(self.rule),
            excluded=tuple(excluded),
            error=error,
            failed_rounds=self.failed_rounds,
        )

    def _emergency_limits(
        self, members: Iterable[Household], now: datetime
    ) -> dict[str, ExternalLimit]:
        """Each member at its floor, as an emergency limit, from its own data alone."""
        expires_at = now + self._allocator.config.limit_validity
        limits = {}
        for household in members:
            interval = LimitInterval(
                start=now, end=expires_at, max_import_w=self._emergency_floor_w(household, now)
            )
            limits[household.household_id] = ExternalLimit(
                source=LimitSource.EMERGENCY,
                issued_at=now,
                expires_at=expires_at,
                intervals=(interval,),
            )
        self._fallback |= set(limits)
        return limits

    def _emergency_floor_w(self, household: Household, now: datetime) -> float:
        """Its base load less what its heat pump can give up, as in `_state`, within
        what a limit may carry; `GUARANTEED_MIN_W` when that cannot be worked out."""
        try:
            base_w = _base_load_w(self._server.latest_baseline.get(household.household_id), now)
            capabilities = household.capabilities
            heat_pump = capabilities.heat_pump if capabilities else None
            stores = capabilities.thermal_heat_pumps if capabilities else ()
            if base_w is not None and stores:  # an emergency takes all pump power
                base_w -= min(base_w, sum(store.max_power_w for store in stores))
            elif base_w is not None and heat_pump is not None:
                base_w -= heat_pump.flexible_power_w
        except ArithmeticError, TypeError, ValueError:
            base_w = None
        if base_w is None or not math.isfinite(base_w):
            return GUARANTEED_MIN_W
        return max(0.0, min(base_w, MAX_CONNECTION_POWER_W))

    def _fallbacks_cleared(
        self, outgoing: Mapping[str, ExternalLimit], now: datetime, *, emergency: bool
    ) -> dict[str, ExternalLimit]:
        """Clear the fallback emergency limits once the emergency is over, unless this
        round limits the household anyway."""
        if emergency:
            return {}
        cleared = {
            household_id: self._released(household_id, now)
            for household_id in self._fallback
            if household_id not in outgoing
        }
        self._fallback.clear()
        return cleared

    def _released(self, household_id: str, now: datetime) -> ExternalLimit:
        """Back to the day-ahead plan when one is in force, else an empty (clearing) limit."""
        planned = self.planned_limits.get(household_id)
        if planned is not None and not planned.is_expired(now):
            return planned
        return ExternalLimit(
            source=LimitSource.COMMUNITY, issued_at=now, expires_at=now + timedelta(minutes=1)
        )

    def _forecast_members_w(
        self, cap: CapInForce, members: list[Household], now: datetime
    ) -> tuple[float | None, str | None]:
        """The members' expected load: the DSO's forecast, else their baselines' sum."""
        if cap.load_forecast_w is not None:
            return max(0.0, cap.load_forecast_w - (cap.non_member_load_w or 0.0)), "dso"
        expected = [
            _peak_base_load_w(self._server.latest_baseline.get(h.household_id), now)
            for h in members
        ]
        present = [watts for watts in expected if watts is not None]
        return (sum(present), "baselines") if present else (None, None)

    async def _send(self, outgoing: dict[str, ExternalLimit], *, released: set[str]) -> None:
        if not outgoing:
            return
        try:
            messages = await self._server.send_limits(outgoing)
        except Exception:
            _LOGGER.exception("could not send %d limits", len(outgoing))
            return
        for message in messages:
            household_id = message.household
            if household_id in released and outgoing[household_id] is not self.planned_limits.get(
                household_id
            ):
                self._sent.pop(household_id, None)
            else:
                self._sent[household_id] = outgoing[household_id]

    def _state(
        self,
        household: Household,
        now: datetime,
        *,
        everyone: bool,
        refused: list[Exclusion] | None = None,
    ) -> HouseholdState | None:
        telemetry = self._server.latest_telemetry.get(household.household_id)
        fresh = is_fresh(telemetry, now)
        if not fresh and not everyone:
            return None
        capabilities = household.capabilities
        connection_w = connection_power_w(*member_connection(capabilities))
        measured = telemetry.total_power_w if fresh and telemetry is not None else 0.0
        base_w = _base_load_w(self._server.latest_baseline.get(household.household_id), now)
        heat_pump = capabilities.heat_pump if capabilities else None
        stores = capabilities.thermal_heat_pumps if capabilities else ()
        # A thermal store's pump stays in the minimum: the engine decides when to take it.
        if base_w is not None and heat_pump is not None and not stores:
            base_w = max(0.0, base_w - heat_pump.flexible_power_w)
        floor_w = min(GUARANTEED_MIN_W if base_w is None else base_w, connection_w)
        pump = None
        if stores:
            reported = household.heat_pump
            reading = member_pump_state(
                [pump_rating(store, now) for store in stores],
                now=now,
                floor_w=floor_w,
                measured_w=measured,
                comfort_margin_min=reported.comfort_margin_min if reported else None,
                comfort_margin_at=reported.comfort_margin_at if reported else None,
                paused_until=reported.paused_until if reported else None,
                held_w=self._pump_cuts_w.get(household.household_id, 0.0),
            )
            pump = reading.state
            if reading.refused is not None and refused is not None:
                refused.append(Exclusion(household.household_id, PUMP_REFUSED, reading.refused))
        planned = self.planned_limits.get(household.household_id)
        in_force = None if planned is None else planned.interval_at(now)
        planned_w = None if in_force is None else in_force.max_import_w
        return HouseholdState(
            household_id=household.household_id,
            measured_w=max(-connection_w, min(connection_w, measured)),
            guaranteed_min_w=floor_w,
            flexible_w=max(0.0, min(connection_w, measured) - floor_w),
            connection_limit_w=connection_w,
            cost_eur_per_kwh=self.settings.cost_for(
                capabilities.tariff_class if capabilities else None
            ),
            planned_limit=planned,
            # The collective plan fits the cap: what it gives above the base load is kept.
            planned_flexible_w=0.0
            if planned_w is None
            else max(0.0, min(planned_w, connection_w) - floor_w),
            min_flexible_w=_charging_minimum_w(capabilities, now),
            heat_pump=pump,
        )


def pump_rating(store: HeatPumpFlexibility, now: datetime) -> PumpRating:
    """A thermal store's pump as the engine rates it now (its current quarter hour's heat
    loss and COP; neither past the store's horizon)."""
    step = (now - store.start) // QUARTER_HOUR
    within = 0 <= step < store.steps
    return PumpRating(
        max_power_w=store.max_power_w,
        hybrid_heat_w=store.hybrid_heat_w,
        heat_loss_kw=store.heat_loss_kw[step] if within else None,
        cop=store.cop[step] if within else None,
    )


def envelope_min_power_w(envelope: FlexEnvelope, phases: int) -> float:
    """The smallest power the envelope's device draws when it draws at all.

    The reported `min_power_w`; without it an EV charger is assumed to need 6 A on every
    phase of the connection (never above its maximum), and anything else no minimum.
    """
    if envelope.min_power_w is not None:
        return envelope.min_power_w
    if envelope.asset is AssetKind.EV:
        return min(MIN_CHARGE_CURRENT_A * NOMINAL_VOLTAGE_V * phases, envelope.max_power_w)
    return 0.0


def member_connection(capabilities: Capabilities | None) -> tuple[int, float]:
    """A member's phases and fuse current, or `UNKNOWN_CONNECTION`'s."""
    if capabilities is None:
        return UNKNOWN_CONNECTION
    return capabilities.phases, capabilities.fuse_current_a


def _charging_minimum_w(capabilities: Capabilities | None, now: datetime) -> float:
    """The minimum power of a car that may charge now (its envelope is open), else 0."""
    if capabilities is None:
        return 0.0
    minimums = [
        envelope_min_power_w(envelope, capabilities.phases)
        for envelope in capabilities.envelopes
        if envelope.asset is AssetKind.EV and envelope.earliest_start <= now < envelope.deadline
    ]
    # Two cars: the smaller one can still use what is left.
    return min(minimums, default=0.0)


def _base_load_w(baseline: BaselineForecast | None, now: datetime) -> float | None:
    """The household's expected base load for the current quarter hour, if it sent one."""
    if baseline is None or now < baseline.start:
        return None
    index = int((now - baseline.start) / QUARTER_HOUR)
    if index >= len(baseline.power_w):
        return None
    return max(0.0, baseline.power_w[index])


def _peak_base_load_w(baseline: BaselineForecast | None, now: datetime) -> float | None:
    """The highest base load the baseline expects from now to a quarter hour ahead."""
    ahead = [_base_load_w(baseline, moment) for moment in (now, now + FORECAST_AHEAD)]
    present = [watts for watts in ahead if watts is not None]
    return max(present) if present else None


def _differs(previous: ExternalLimit, new: ExternalLimit, now: datetime) -> bool:
    """Send again when a cap (import or export) moved by over 1 %, or nears its expiry."""
    if previous.expires_at - now < RENEW_BEFORE:
        return True
    old, fresh = previous.interval_at(now), new.interval_at(now)
    if old is None or fresh is None:
        return old is not fresh
    return _moved(old.max_import_w, fresh.max_import_w) or _moved(
        old.max_export_w, fresh.max_export_w
    )


def _moved(old_w: float | None, new_w: float | None) -> bool:
    if old_w is None or new_w is None:
        return old_w != new_w
    return abs(old_w - new_w) > 0.01 * max(old_w, 1.0)
