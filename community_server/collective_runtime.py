"""The collective day-ahead plan, run by the server for every transformer.

Every `check_s` (and `debounce_s` after a DSO signal) the runtime builds each
transformer's `CollectiveProblem` for the coming 24 h (or as far as prices are known):
Nord Pool spot prices with the `[collective]` tariff, the cap in force per quarter hour
(DSO frames, else the configured default, else the transformer's capacity) less
`planning_margin_pct` and the non-member load, and each member's latest baseline,
envelopes, battery and connection; each member's limits carry `limit_headroom_pct` of
its highest forecast baseline for the forecast's error.
It plans again when that problem changed (prices, frames, baselines, envelopes) or the
last plan is `replan_minutes` old, in a worker thread (about 0.6 s for 250 homes). A
battery's charge moves by itself as the plan runs, so it alone does not re-plan: the
next regular plan starts from where the battery then is.

Each household's planned limit goes to its transformer's `CapControl` (the live
allocation passes it through while idle and caps with it while engaged) and is
published to the household when it changed; re-planning renews its expiry.

A battery is planned from the state of charge in the member's latest telemetry when
that is fresh (`is_fresh`, as the live allocation judges it) and must end no lower
than that or 50 %, whichever is lower. Without a fresh one (not reported, the member
silent) it is planned from 50 % and must end no lower: it is never planned empty on a
guess. An EV envelope's minimum power is the reported `min_power_w`, else 6 A on every
phase of the connection. A member without a baseline covering the plan's start is
left out (the live allocation still covers it); baseline gaps later in the day are
filled with its mean. A member whose data the planner refuses is left out of that plan
alone, with the reason: logged (a line per member and reason every ten minutes),
counted in `exclusions` and shown with the plan (`PlanStatus.excluded`).
Without prices there is no plan: the status says so and the old limits run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from netbewust_core.collective.planner import plan_collective
from netbewust_core.collective.problem import (
    CollectiveError,
    CollectiveHousehold,
    CollectiveProblem,
    ShiftableEnergy,
)
from netbewust_core.planning.prices import (
    ExportRule,
    FetchStatus,
    PriceError,
    TariffRules,
    quarter_hour_series,
)
from netbewust_core.planning.problem import PlanBattery
from netbewust_core.protocol.messages import QUARTER_HOUR
from netbewust_core.timegrid import (
    HOURS_PER_QUARTER,
    QUARTERS_PER_DAY,
    QUARTERS_PER_HOUR,
    floor_to_quarter_hour,
)
from netbewust_core.units import connection_power_w

from .cap_control import (
    EXCLUDED,
    EXCLUSION_LOG_PERIOD_S,
    Exclusion,
    envelope_min_power_w,
    is_fresh,
    member_connection,
    why_excluded,
)
from .log_limits import LimitedLog

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from netbewust_core.collective.planner import CollectiveResult
    from netbewust_core.collective.problem import SharingRule
    from netbewust_core.limits import ExternalLimit
    from netbewust_core.planning.prices import DayAheadPrices, PricePoint
    from netbewust_core.protocol.messages import BaselineForecast, Capabilities, FlexEnvelope

    from .cap_control import CapControl, CapProvider
    from .config import CollectiveConfig
    from .server import CommunityServer
    from .store import Household, Store

_LOGGER = logging.getLogger(__name__)
HORIZON_STEPS = QUARTERS_PER_DAY  # a day ahead
MIN_HORIZON_STEPS = QUARTERS_PER_HOUR  # less than an hour of known prices is no plan
PRICE_RETRY = timedelta(minutes=10)  # Nord Pool is asked again for a missing day
NORD_POOL_DAY = ZoneInfo("Europe/Amsterdam")  # delivery days are CET days
UNKNOWN_SOC_PCT = 50.0  # a battery whose charge is not known: planned from half full
# No cap in force: room the members can never use, so the LP has a finite bound.
UNBOUNDED_MARGIN_W = 1.0


class PriceSource(Protocol):
    """What the runtime needs of a price source (`FeedPrices` over Nord Pool; a stub in tests)."""

    async def fetch_day(self, delivery_day: date) -> DayAheadPrices: ...


@dataclass(frozen=True, slots=True)
class HouseholdCost:
    household_id: str
    cost_alone_eur: float
    cost_eur: float
    settled_cost_eur: float
    shortfall_wh: float
    limited_steps: int


@dataclass(frozen=True, slots=True)
class PlanSeries:
    """The plan per quarter hour from `PlanStatus.start`, for the dashboard's chart (W)."""

    members_w: tuple[float, ...]  # members' planned net power
    members_alone_w: tuple[float, ...]  # the same had every household planned alone
    cap_w: tuple[float | None, ...]  # the import cap planned to (less the margin); None: none
    non_member_w: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """The dashboard's view of one transformer's plan (the fairness report)."""

    transformer_id: str
    status: str  # planned, no_prices, no_households, invalid, failed
    detail: str = ""
    planned_at: datetime | None = None
    start: datetime | None = None
    steps: int = 0
    plan_status: str | None = None  # the engine's: optimal, coordinated, cap_infeasible
    binding_steps: int = 0
    cost_eur: float | None = None
    cost_alone_eur: float | None = None
    households: tuple[HouseholdCost, ...] = ()
    unplanned: tuple[str, ...] = ()  # members without a baseline
    excluded: tuple[Exclusion, ...] = ()  # members whose data the planner refused
    series: PlanSeries | None = None  # not in `document()`: the history endpoint's

    def document(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "detail": self.detail,
            "planned_at": None if self.planned_at is None else self.planned_at.isoformat(),
            "start": None if self.start is None else self.start.isoformat(),
            "steps": self.steps,
            "plan_status": self.plan_status,
            "binding_steps": self.binding_steps,
            "cost_eur": self.cost_eur,
            "cost_alone_eur": self.cost_alone_eur,
            "households": [
                {
                    "household_id": h.household_id,
                    "cost_alone_eur": round(h.cost_alone_eur, 4),
                    "cost_eur": round(h.cost_eur, 4),
                    "settled_cost_eur": round(h.settled_cost_eur, 4),
                    "shortfall_wh": round(h.shortfall_wh, 1),
                    "limited_steps": h.limited_steps,
                }
                for h in self.households
            ],
            "unplanned": list(self.unplanned),
            "excluded": [
                {"household": e.household_id, "reason": e.reason, "detail": e.detail}
                for e in self.excluded
            ],
        }


class CollectiveRuntime:
    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        controls: Sequence[CapControl],
        *,
        caps: CapProvider,
        prices: PriceSource,
        config: CollectiveConfig,
        rule: SharingRule,
        plan: Callable[[CollectiveProblem], CollectiveResult] = plan_collective,
    ) -> None:
        self._server = server
        self._store = store
        self._controls = controls  # may grow while serving (new transformers)
        self._caps = caps
        self._prices = prices
        self._config = config
        self._rule = rule
        self._plan = plan
        self._tariff = TariffRules(
            energy_tax_eur_per_kwh=config.energy_tax_eur_per_kwh,
            supplier_markup_eur_per_kwh=config.supplier_markup_eur_per_kwh,
            vat_pct=config.vat_pct,
            export_rule=ExportRule(config.export_rule),
            export_fee_eur_per_kwh=config.export_fee_eur_per_kwh,
            export_fixed_eur_per_kwh=config.export_fixed_eur_per_kwh,
        )
        self._days: dict[date, tuple[PricePoint, ...]] = {}
        self._asked: dict[date, datetime] = {}
        self._unpublished: dict[date, str] = {}  # why the last fetch of a day gave no prices
        self._planned: dict[str, tuple[CollectiveProblem, datetime]] = {}
        self.exclusions: Counter[str] = Counter()  # members left out, by reason, ever
        self._log = LimitedLog(_LOGGER, first=1, period_s=EXCLUSION_LOG_PERIOD_S)
        self._published: dict[str, ExternalLimit] = {}
        self.status: dict[str, PlanStatus] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A DSO signal: check the inputs after `debounce_s`."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.check(self._server.now())
            except Exception:  # one bad round must not end the loop
                _LOGGER.exception("collective planning round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.check_s)
                await asyncio.sleep(self._config.debounce_s)  # let a burst of signals settle
            self._wake.clear()

    async def check(self, now: datetime) -> None:
        """Plan every transformer whose inputs changed or whose plan is getting old."""
        start = floor_to_quarter_hour(now)
        spot = await self._spot(start, now)
        for control in list(self._controls):
            transformer_id = control.transformer_id
            try:
                await self._check_transformer(control, spot, start, now)
            except Exception as err:
                _LOGGER.exception("collective plan for %s failed", transformer_id)
                self.status[transformer_id] = PlanStatus(transformer_id, "failed", repr(err))

    async def _check_transformer(
        self,
        control: CapControl,
        spot: tuple[float, ...] | str,
        start: datetime,
        now: datetime,
    ) -> None:
        transformer_id = control.transformer_id
        if isinstance(spot, str):
            self.status[transformer_id] = PlanStatus(transformer_id, "no_prices", spot)
            return
        members = [
            h
            for h in await self._server.run_in_db(self._store.households)
            if h.transformer_id == transformer_id
        ]
        households, unplanned, excluded = self._households(members, start, len(spot), now)
        if not households:
            self.status[transformer_id] = PlanStatus(
                transformer_id,
                "no_households",
                "no member sent a usable baseline",
                unplanned=unplanned,
                excluded=excluded,
            )
            return
        import_price, export_price = self._tariff.all_in(spot)
        cap_import, cap_export, non_member, planned_cap = await self._caps_series(
            transformer_id, households, start, len(spot)
        )
        try:
            problem = CollectiveProblem(
                start=start,
                import_price_eur_per_kwh=import_price,
                export_price_eur_per_kwh=export_price,
                transformer_import_cap_w=cap_import,
                transformer_export_cap_w=cap_export,
                non_member_load_w=non_member,
                households=households,
                sharing_rule=self._rule,
            )
        except CollectiveError as err:
            self.status[transformer_id] = PlanStatus(transformer_id, "invalid", str(err))
            return
        previous = self._planned.get(transformer_id)
        replan_after = timedelta(minutes=self._config.replan_minutes)
        if (
            previous is not None
            and _without_charge(previous[0]) == _without_charge(problem)
            and now - previous[1] < replan_after
        ):
            return
        # Issued now, so the limits' expiry moves on with every plan.
        issued = dataclasses.replace(problem, issued_at=now)
        result = await asyncio.to_thread(self._plan, issued)
        self._planned[transformer_id] = (problem, now)
        await self._apply(control, result, now)
        self.status[transformer_id] = dataclasses.replace(
            _status(transformer_id, result, issued, now, unplanned, cap_w=planned_cap),
            excluded=excluded,
        )

    async def _apply(self, control: CapControl, result: CollectiveResult, now: datetime) -> None:
        planned = {outcome.household_id: outcome.limit for outcome in result.households}
        # Publish what changed, and every limit halfway to its expiry (renewal).
        outgoing = {
            hid: limit
            for hid, limit in planned.items()
            if (old := self._published.get(hid)) is None
            or old.intervals != limit.intervals
            or old.expires_at - now < (limit.expires_at - now) / 2
        }
        published: list[str] = []
        if outgoing:
            try:
                messages = await self._server.send_limits(outgoing)
            except Exception:
                _LOGGER.exception("could not publish %d planned limits", len(outgoing))
                messages = []
            published = [message.household for message in messages]
            self._published.update({hid: outgoing[hid] for hid in published})
        control.use_plan(planned, published)

    async def _spot(self, start: datetime, now: datetime) -> tuple[float, ...] | str:
        """Spot prices from `start` for up to a day, or why there are none."""
        end = start + HORIZON_STEPS * QUARTER_HOUR - QUARTER_HOUR
        days = sorted(
            {start.astimezone(NORD_POOL_DAY).date(), end.astimezone(NORD_POOL_DAY).date()}
        )
        details = []
        for day in days:
            if day in self._days:
                continue
            asked = self._asked.get(day)
            if asked is not None and now - asked < PRICE_RETRY:
                # Until the next attempt the dashboard still says why the last one failed.
                why = self._unpublished.get(day)
                details.append(f"{day}: {why + ', ' if why else ''}asked at {asked.isoformat()}")
                continue
            self._asked[day] = now
            fetched = await self._prices.fetch_day(day)
            if fetched.status is FetchStatus.PUBLISHED:
                self._days[day] = fetched.points
                self._unpublished.pop(day, None)
            else:
                self._unpublished[day] = f"{fetched.status} {fetched.detail}".strip()
                details.append(f"{day}: {self._unpublished[day]}")
        for old in [day for day in self._days if day < days[0]]:
            del self._days[old]
        for old in [day for day in self._unpublished if day < days[0]]:
            del self._unpublished[old]
        points = [point for day in days for point in self._days.get(day, ())]
        try:
            series = quarter_hour_series(points, start) if points else None
        except PriceError as err:
            return f"prices unusable: {err}"
        values = () if series is None else series.values[:HORIZON_STEPS]
        if len(values) < MIN_HORIZON_STEPS:
            return "no day-ahead prices from now: " + "; ".join(details or ["none published"])
        return values

    def _households(
        self, members: list[Household], start: datetime, steps: int, now: datetime
    ) -> tuple[tuple[CollectiveHousehold, ...], tuple[str, ...], tuple[Exclusion, ...]]:
        """The members as the planner sees them, those without a baseline, and those
        whose data it refuses (each left out alone)."""
        planned: list[CollectiveHousehold] = []
        unplanned: list[str] = []
        excluded: list[Exclusion] = []
        for member in members:
            try:
                if member.capabilities_error is not None:
                    raise ValueError(member.capabilities_error)
                household = _household(
                    member,
                    self._server.latest_baseline.get(member.household_id),
                    self._fresh_soc_pct(member.household_id, now),
                    start,
                    steps,
                    headroom_fraction=self._config.limit_headroom_pct / 100,
                )
            except Exception as err:  # whatever it is, it is this member's alone
                exclusion = Exclusion(member.household_id, EXCLUDED, why_excluded(err))
                excluded.append(exclusion)
                self.exclusions[exclusion.reason] += 1
                self._log.log(
                    logging.WARNING,
                    f"{exclusion.reason} {member.household_id}",
                    "%s left out of the collective plan: %s",
                    member.household_id,
                    exclusion.detail,
                )
                continue
            if household is None:
                unplanned.append(member.household_id)
            else:
                planned.append(household)
        self._log.flush()
        return tuple(planned), tuple(unplanned), tuple(excluded)

    def _fresh_soc_pct(self, household_id: str, now: datetime) -> float | None:
        """The battery charge the member reported last, if that report is fresh."""
        telemetry = self._server.latest_telemetry.get(household_id)
        return telemetry.battery_soc_pct if telemetry and is_fresh(telemetry, now) else None

    async def _caps_series(
        self,
        transformer_id: str,
        households: tuple[CollectiveHousehold, ...],
        start: datetime,
        steps: int,
    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], tuple[float | None, ...]]:
        """The caps in force and the non-member load at every step's start, and the import
        cap as planned to (None where none is in force: the LP's bound is no cap)."""
        transformer = await self._server.run_in_db(self._store.transformer, transformer_id)
        capacity = None if transformer is None else transformer.capacity_w
        unbounded_import = sum(h.import_limit_w for h in households) + UNBOUNDED_MARGIN_W
        unbounded_export = sum(h.export_limit_w for h in households) + UNBOUNDED_MARGIN_W
        kept = 1 - self._config.planning_margin_pct / 100
        imports, exports, non_member = [], [], []
        shown: list[float | None] = []
        for step in range(steps):
            cap = await self._caps(transformer_id, start + step * QUARTER_HOUR)
            load = max(0.0, cap.non_member_load_w or 0.0)
            cap_import = cap.import_w if cap.import_w is not None else capacity
            imports.append(unbounded_import + load if cap_import is None else cap_import * kept)
            exports.append(unbounded_export if cap.export_w is None else cap.export_w * kept)
            non_member.append(load)
            shown.append(None if cap_import is None else cap_import * kept)
        return tuple(imports), tuple(exports), tuple(non_member), tuple(shown)


def _household(
    member: Household,
    baseline: BaselineForecast | None,
    soc_pct: float | None,
    start: datetime,
    steps: int,
    *,
    headroom_fraction: float,
) -> CollectiveHousehold | None:
    """The member as the planner sees it; None without a baseline covering `start`.
    Raises `CollectiveError` or `PlanningError` (both ValueErrors) for data it refuses.

    Its limits get `headroom_fraction` of its highest forecast load on top, for the
    error of that forecast (`CollectiveHousehold.limit_headroom_w`)."""
    if baseline is None or not baseline.start <= start < baseline.end:
        return None
    capabilities = member.capabilities
    phases, fuse_a = member_connection(capabilities)
    connection_w = connection_power_w(phases, fuse_a)
    offset = int((start - baseline.start) / QUARTER_HOUR)
    known = baseline.power_w[offset : offset + steps]
    mean = float(np.mean(known))
    values = np.clip([*known, *([mean] * (steps - len(known)))], -connection_w, connection_w)
    return CollectiveHousehold(
        household_id=member.household_id,
        baseline_w=tuple(float(v) for v in values),
        import_limit_w=connection_w,
        export_limit_w=connection_w,
        envelopes=_envelopes(capabilities, phases, start, steps),
        batteries=_batteries(member.household_id, capabilities, soc_pct),
        limit_headroom_w=headroom_fraction * max(0.0, float(values.max())),
    )


def _envelopes(
    capabilities: Capabilities | None, phases: int, start: datetime, steps: int
) -> tuple[ShiftableEnergy, ...]:
    if capabilities is None:
        return ()
    shiftable = []
    for number, envelope in enumerate(capabilities.envelopes):
        window = _window(envelope, start, steps)
        if window is None:
            continue
        first, end = window
        # Energy that still fits the part of the window left; a guard never asks more.
        fits_wh = envelope.max_power_w * (end - first) * HOURS_PER_QUARTER
        shiftable.append(
            ShiftableEnergy(
                name=f"{envelope.asset}-{number}",
                energy_wh=min(envelope.energy_wh, fits_wh),
                max_power_w=envelope.max_power_w,
                start_step=first,
                end_step=end,
                min_power_w=envelope_min_power_w(envelope, phases),
            )
        )
    return tuple(shiftable)


def _window(envelope: FlexEnvelope, start: datetime, steps: int) -> tuple[int, int] | None:
    """Whole steps of the plan inside the envelope's window; None when none are."""
    first = max(0, math.ceil((envelope.earliest_start - start) / QUARTER_HOUR))
    end = min(steps, math.floor((envelope.deadline - start) / QUARTER_HOUR))
    return (first, end) if first < end else None


def _batteries(
    household_id: str, capabilities: Capabilities | None, soc_pct: float | None
) -> tuple[PlanBattery, ...]:
    battery = None if capabilities is None else capabilities.battery
    if battery is None or battery.energy_wh <= 0:
        return ()
    initial = UNKNOWN_SOC_PCT if soc_pct is None else soc_pct
    # A full battery may give some back; an emptier one is not planned emptier still.
    return (
        PlanBattery(
            device_id=f"{household_id}-battery",
            capacity_wh=battery.energy_wh,
            max_charge_w=battery.max_charge_w,
            max_discharge_w=battery.max_discharge_w,
            soc_initial_pct=initial,
            soc_final_min_pct=min(initial, UNKNOWN_SOC_PCT),
        ),
    )


def _without_charge(problem: CollectiveProblem) -> CollectiveProblem:
    """The problem as far as a change re-plans it: every battery's charge left out."""
    return dataclasses.replace(
        problem,
        households=tuple(
            dataclasses.replace(
                household,
                batteries=tuple(
                    dataclasses.replace(
                        battery, soc_initial_pct=UNKNOWN_SOC_PCT, soc_final_min_pct=None
                    )
                    for battery in household.batteries
                ),
            )
            for household in problem.households
        ),
    )


def _status(
    transformer_id: str,
    result: CollectiveResult,
    problem: CollectiveProblem,
    now: datetime,
    unplanned: tuple[str, ...],
    *,
    cap_w: tuple[float | None, ...],
) -> PlanStatus:
    return PlanStatus(
        transformer_id,
        "planned",
        result.reason,
        planned_at=now,
        start=problem.start,
        steps=problem.n_steps,
        plan_status=str(result.status),
        binding_steps=len(result.binding_steps),
        cost_eur=round(result.cost_eur, 4),
        cost_alone_eur=round(result.cost_alone_eur, 4),
        households=tuple(
            HouseholdCost(
                outcome.household_id,
                outcome.cost_alone_eur,
                outcome.cost_eur,
                outcome.settled_cost_eur,
                outcome.shortfall_wh,
                len(outcome.limit.intervals),
            )
            for outcome in result.households
        ),
        unplanned=unplanned,
        series=PlanSeries(
            members_w=tuple(round(w, 1) for w in result.members_w),
            members_alone_w=tuple(round(w, 1) for w in result.members_alone_w),
            cap_w=tuple(None if w is None else round(w, 1) for w in cap_w),
            non_member_w=tuple(round(w, 1) for w in problem.non_member_load_w),
        ),
    )
