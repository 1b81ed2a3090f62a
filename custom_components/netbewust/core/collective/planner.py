"""Collective day-ahead planning: the community's cheapest day within the transformer cap.

`plan_collective(problem)` minimises the members' summed energy cost (a hybrid's gas
included) subject to every household's envelopes, batteries, heat pumps (thermal stores
kept within their comfort band) and connection limits and, per step, the transformer's
import/export cap less the non-member load. Households are coupled only through that
cap, so they are solved in groups (`chunk_size` households per HiGHS LP):

1. Every group without the cap: each household's plan alone, its cost alone (the sum is
   a lower bound on the collective optimum) and the "secondary peak" it makes.
2. If those plans fit under the cap they are optimal and nothing is limited.
3. Otherwise the cap is split between groups (`collective_split`) and each group is
   solved under its share; shares always add up to the cap, so the plan respects it.
   Re-splits hand unused room to the groups whose duals say they value it.
4. With `certify=True`, prices on the cap (the groups' median duals) give a Lagrangian
   lower bound, so `gap_bound` bounds the distance from the optimum of the full LP; a
   small community whose bound exceeds 0.5 % is then solved as one LP.

With one group (`chunk_size` >= households) step 3 is the exact full LP, which is also
how the benchmark and the tests compute the reference optimum.

Output per household: an `ExternalLimit` (source COMMUNITY) that holds it to its part
of the plan wherever the members could otherwise make a new peak (`collective_limits`),
its suggested schedule, its cost alone and its settled cost under the sharing rule.
Integer decisions (6 A minimum, heat-pump starts) stay with the households' planners.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from ..limits import ExternalLimit  # noqa: TC001 - a field type, resolved at runtime by users
from .limits import deviation_room, household_limits
from .lp import CAP_PENALTY_EUR_PER_KWH, build_group, priced_objective, solve_group
from .minimums import round_plan_to_minimums
from .problem import CollectiveError, CollectiveProblem, SharingRule
from .split import initial_shares, reshare

if TYPE_CHECKING:
    from datetime import datetime

    from numpy.typing import NDArray

    from .lp import GroupModel, GroupSolution, StorePlan
    from .problem import CollectiveHousehold

    FloatArray = NDArray[np.float64]

MAX_RESPLITS = 2
# Re-splits stop when they can save less than this fraction of the cost (the target is
# 0.5 %; groups of a similar mix are usually within 0.001 % after the first split).
RESPLIT_MIN_GAIN = 1e-4
# With `certify`, a split plan whose certified gap exceeds this is solved whole when the
# community is small enough for one LP (about a second at 250 households).
GAP_TARGET = 0.005
DIRECT_FALLBACK_HOUSEHOLDS = 250
# kW: a step binds when the members' plan is this close to their cap.
BINDING_TOLERANCE_KW = 0.01
# kW and kWh: slack below this is solver noise, not an impossible cap or need.
SLACK_TOLERANCE = 1e-3


class CollectiveStatus(StrEnum):
    OPTIMAL = "optimal"  # exact: the plans alone fit, or one LP held every household
    COORDINATED = "coordinated"  # split between groups; `gap_bound` bounds the distance
    CAP_INFEASIBLE = "cap_infeasible"  # the cap cannot be met; see `cap_excess_w`


@dataclass(frozen=True, slots=True, kw_only=True)
class HouseholdOutcome:
    """One household's part of the plan. Powers in W per step (+ import / + charge)."""

    household_id: str
    limit: ExternalLimit
    grid_w: tuple[float, ...]
    envelope_w: tuple[tuple[float, ...], ...]  # per envelope, in the input order
    battery_w: tuple[tuple[float, ...], ...]  # per battery, + charge
    shortfall_wh: float  # envelope energy that could not be delivered
    cost_alone_eur: float  # its own optimum without the community cap
    cost_eur: float  # its energy cost under the collective plan
    settled_cost_eur: float  # cost alone + its share of the cost of meeting the cap
    # Per thermal store, in the input order: the pump's W, a hybrid's boiler heat W, the
    # stored heat (kWh, at each step's end) and the heat below the band (kWh).
    heat_pump_w: tuple[tuple[float, ...], ...] = ()
    boiler_heat_w: tuple[tuple[float, ...], ...] = ()
    stored_heat_kwh: tuple[tuple[float, ...], ...] = ()
    heat_below_band_kwh: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectiveResult:
    status: CollectiveStatus
    sharing_rule: SharingRule
    households: tuple[HouseholdOutcome, ...]
    members_w: tuple[float, ...]  # members' planned net power per step
    members_alone_w: tuple[float, ...]  # the same if every household planned alone
    members_import_cap_w: tuple[float, ...]  # transformer cap less non-member load
    members_export_cap_w: tuple[float, ...]
    cap_excess_w: tuple[float, ...]  # + above the import cap, - beyond the export cap
    binding_steps: tuple[int, ...]
    cost_eur: float
    cost_alone_eur: float  # every household's own optimum, summed
    # Energy cost plus 100 EUR/kWh not delivered and 1,000 EUR/kWh over the cap: what the
    # optimiser minimises; equal to `cost_eur` when every need is met within the cap.
    objective_eur: float
    # No plan has a lower objective (the plans alone, or a Lagrangian bound if certified).
    lower_bound_eur: float
    groups: int
    solves: int
    reason: str = ""

    @property
    def cost_of_cap_eur(self) -> float:
        return self.cost_eur - self.cost_alone_eur

    @property
    def gap_bound(self) -> float:
        """Upper bound on the relative distance from the collective optimum."""
        return (self.objective_eur - self.lower_bound_eur) / max(abs(self.lower_bound_eur), 1e-9)


def plan_collective(problem: CollectiveProblem, *, certify: bool = False) -> CollectiveResult:
    """The community's plan; `certify` adds a Lagrangian lower bound (one more LP per
    group) so `gap_bound` says how far from optimal a split plan can be, and solves a
    community of up to `DIRECT_FALLBACK_HOUSEHOLDS` whole when that is above 0.5 %."""
    issued_at = problem.issued_at or problem.start
    expires_at = min(problem.end, issued_at + problem.limit_validity)
    if expires_at <= issued_at:
        raise CollectiveError("issued_at is at or after the end of the horizon")
    dt = problem.step_hours
    import_price = np.asarray(problem.import_price_eur_per_kwh, dtype=float)
    export_price = np.asarray(problem.export_price_eur_per_kwh, dtype=float)
    non_member = np.asarray(problem.non_member_load_w, dtype=float) / 1000
    import_cap = np.asarray(problem.transformer_import_cap_w, dtype=float) / 1000 - non_member
    export_cap = np.asarray(problem.transformer_export_cap_w, dtype=float) / 1000 + non_member

    groups = _groups(problem)
    models = [
        build_group(tuple(problem.households[i] for i in members), import_price, export_price, dt)
        for members in groups
    ]
    unlimited = np.full(problem.n_steps, np.inf)
    alone = [solve_group(model, unlimited, unlimited) for model in models]
    solves = len(models)
    alone_total = sum(solution.grid_kw.sum(axis=0) for solution in alone)
    fits = bool(
        (alone_total <= import_cap + SLACK_TOLERANCE).all()
        and (alone_total >= -export_cap - SLACK_TOLERANCE).all()
    )
    cost_alone = np.zeros(len(problem.households))
    for members, solution in zip(groups, alone, strict=True):
        cost_alone[members] = solution.cost_eur
    # Bounds and gaps are on the LP objective: energy cost plus the penalties for energy
    # not delivered and power over the cap (equal to the cost when every need is met).
    lower_bound = sum(solution.objective_eur for solution in alone)
    final_groups = groups
    if fits:
        final, exact = alone, True
    else:
        final, extra = _coordinate(models, alone, import_cap, export_cap)
        solves += extra
        exact = len(models) == 1
        if certify and not exact:
            bound = _lagrangian_bound(models, final, import_cap, export_cap, dt)
            lower_bound = max(lower_bound, bound)
            solves += len(models)
            objective = sum(solution.objective_eur for solution in final)
            small = len(problem.households) <= DIRECT_FALLBACK_HOUSEHOLDS
            if small and objective - lower_bound > GAP_TARGET * abs(lower_bound):
                # A split this far off is rare (tiny groups of unlike homes); solve it whole.
                everyone = build_group(problem.households, import_price, export_price, dt)
                final = [solve_group(everyone, import_cap, export_cap)]
                final_groups = [np.arange(len(problem.households))]
                exact = True
                solves += 1
    return _result(
        problem,
        groups=final_groups,
        alone=(cost_alone, alone_total),
        final=final,
        exact=exact,
        caps=(import_cap, export_cap),
        solves=solves,
        validity=(issued_at, expires_at),
        lower_bound=lower_bound,
    )


def _groups(problem: CollectiveProblem) -> list[NDArray[np.int64]]:
    """Groups of similar mix: households dealt round-robin by flexible energy."""
    count = len(problem.households)
    n_groups = math.ceil(count / problem.chunk_size)
    flexible = np.array([h.flexible_energy_wh for h in problem.households])
    order = np.argsort(-flexible, kind="stable")
    return [np.sort(order[k::n_groups]) for k in range(n_groups)]


def _coordinate(
    models: list[GroupModel],
    alone: list[GroupSolution],
    import_cap: FloatArray,
    export_cap: FloatArray,
) -> tuple[list[GroupSolution], int]:
    usage = np.array([solution.grid_kw.sum(axis=0) for solution in alone])
    import_floor = np.array([_least_import(model.households) for model in models])
    export_floor = np.array([-_most_import(model.households) for model in models])
    weight = np.array([sum(h.flexible_energy_wh for h in m.households) for m in models]) + 1.0
    import_shares = initial_shares(usage, import_floor, import_cap, weight)
    export_shares = initial_shares(-usage, export_floor, export_cap, weight)
    solutions = [
        solve_group(model, import_shares[k], export_shares[k]) for k, model in enumerate(models)
    ]
    solves = len(models)
    for _ in range(MAX_RESPLITS if len(models) > 1 else 0):
        within = np.array([s.grid_kw.sum(axis=0) - s.cap_excess_kw for s in solutions])
        import_values = np.array([s.import_value for s in solutions])
        export_values = np.array([s.export_value for s in solutions])
        new_import, import_gains = reshare(import_shares, within, import_values, import_cap)
        new_export, export_gains = reshare(export_shares, -within, export_values, export_cap)
        # At most this is saved: each group's extra room times its marginal value.
        most_saved = float(
            np.sum(np.clip(new_import - import_shares, 0, None) * import_values)
            + np.sum(np.clip(new_export - export_shares, 0, None) * export_values)
        )
        cost = sum(float(s.cost_eur.sum()) for s in solutions)
        again = np.flatnonzero(import_gains | export_gains)
        if len(again) == 0 or most_saved <= RESPLIT_MIN_GAIN * max(abs(cost), 1.0):
            break
        import_shares, export_shares = new_import, new_export
        for k in again:
            solutions[k] = solve_group(models[k], import_shares[k], export_shares[k])
        solves += len(again)
    return solutions, solves


def _lagrangian_bound(
    models: list[GroupModel],
    solutions: list[GroupSolution],
    import_cap: FloatArray,
    export_cap: FloatArray,
    dt: float,
) -> float:
    """A lower bound on the full LP from prices on the cap: any prices give one, and the
    groups' duals (their median where positive, per step) are close to the best."""
    ceiling = CAP_PENALTY_EUR_PER_KWH * dt  # above this the cap's slack is cheaper
    import_price = np.clip(_positive_median([s.import_value for s in solutions]), 0, ceiling)
    export_price = np.clip(_positive_median([s.export_value for s in solutions]), 0, ceiling)
    net_price = import_price - export_price
    relaxed = sum(priced_objective(model, net_price) for model in models)
    return float(relaxed - import_price @ import_cap - export_price @ export_cap)


def _positive_median(values: list[FloatArray]) -> FloatArray:
    stacked = np.array(values)
    positive = np.where(stacked > 0, stacked, np.nan)
    has_any = (stacked > 0).any(axis=0)
    median = np.zeros(stacked.shape[1])
    median[has_any] = np.nanmedian(positive[:, has_any], axis=0)
    return median


def _least_import(households: tuple[CollectiveHousehold, ...]) -> FloatArray:
    """The group's lowest possible net power per step (kW): batteries fully discharging."""
    total = np.zeros(len(households[0].baseline_w))
    for household in households:
        discharge = sum(battery.max_discharge_w for battery in household.batteries)
        lowest = np.asarray(household.baseline_w) - discharge
        total += np.maximum(lowest, -household.export_limit_w) / 1000
    return total


def _most_import(households: tuple[CollectiveHousehold, ...]) -> FloatArray:
    """The group's highest possible net power per step (kW): every flexibility drawing."""
    total = np.zeros(len(households[0].baseline_w))
    for household in households:
        highest = np.asarray(household.baseline_w, dtype=float)
        highest = highest + sum(battery.max_charge_w for battery in household.batteries)
        for envelope in household.envelopes:
            highest[envelope.start_step : envelope.end_step] += envelope.max_power_w
        highest += sum(store.max_power_w for store in household.thermal_stores)
        total += np.minimum(highest, household.import_limit_w) / 1000
    return total


def _result(
    problem: CollectiveProblem,
    *,
    groups: list[NDArray[np.int64]],
    alone: tuple[FloatArray, FloatArray],
    final: list[GroupSolution],
    exact: bool,
    caps: tuple[FloatArray, FloatArray],
    solves: int,
    validity: tuple[datetime, datetime],
    lower_bound: float,
) -> CollectiveResult:
    count, n = len(problem.households), problem.n_steps
    grid = np.zeros((count, n))
    cost_alone, members_alone = alone
    cost = np.zeros(count)
    shortfall = np.zeros(count)
    envelopes: list[tuple[FloatArray, ...]] = [()] * count
    batteries: list[tuple[FloatArray, ...]] = [()] * count
    stores: list[tuple[StorePlan, ...]] = [()] * count
    excess = np.zeros(n)
    for members, after in zip(groups, final, strict=True):
        grid[members] = after.grid_kw
        cost[members] = after.cost_eur
        shortfall[members] = after.shortfall_kwh
        excess += after.cap_excess_kw
        for row, index in enumerate(members):
            envelopes[index] = after.envelope_kw[row]
            batteries[index] = after.battery_kw[row]
            stores[index] = after.stores[row]

    import_cap, export_cap = caps
    members = grid.sum(axis=0)
    binding_import = members >= import_cap - BINDING_TOLERANCE_KW
    binding_export = members <= -export_cap + BINDING_TOLERANCE_KW
    rounding = round_plan_to_minimums(problem, envelopes, grid, import_cap)
    grid += rounding.change_kw
    shortfall += rounding.lost_kwh
    envelopes = rounding.envelope_kw
    planned = grid.sum(axis=0)
    limits = household_limits(
        problem,
        grid,
        rooms=[
            deviation_room(
                household,
                grid[index],
                envelopes[index],
                batteries[index],
                tuple(store.power_kw for store in stores[index]),
            )
            for index, household in enumerate(problem.households)
        ],
        spare_kw=(import_cap - planned, planned + export_cap),
        coordinated=(bool(binding_import.any()), bool(binding_export.any())),
        validity=validity,
    )
    infeasible = bool(np.abs(excess).max() > SLACK_TOLERANCE)
    settled = _settle(problem, cost_alone, cost)
    outcomes = tuple(
        HouseholdOutcome(
            household_id=household.household_id,
            limit=limits[index],
            grid_w=_watts(grid[index]),
            envelope_w=tuple(_watts(power) for power in envelopes[index]),
            battery_w=tuple(_watts(power) for power in batteries[index]),
            shortfall_wh=float(shortfall[index] * 1000),
            cost_alone_eur=float(cost_alone[index]),
            cost_eur=float(cost[index]),
            settled_cost_eur=float(settled[index]),
            heat_pump_w=tuple(_watts(store.power_kw) for store in stores[index]),
            boiler_heat_w=tuple(_watts(store.boiler_kw) for store in stores[index]),
            stored_heat_kwh=tuple(tuple(store.stored_kwh.tolist()) for store in stores[index]),
            heat_below_band_kwh=tuple(tuple(store.below_kwh.tolist()) for store in stores[index]),
        )
        for index, household in enumerate(problem.households)
    )
    if infeasible:
        status = CollectiveStatus.CAP_INFEASIBLE
        worst = int(np.argmax(np.abs(excess)))
        reason = (
            f"the cap cannot be met in {int((np.abs(excess) > SLACK_TOLERANCE).sum())} steps;"
            f" worst step {worst}: {excess[worst] * 1000:.0f} W beyond it"
        )
    else:
        status = CollectiveStatus.OPTIMAL if exact else CollectiveStatus.COORDINATED
        reason = ""
    short = shortfall > SLACK_TOLERANCE
    if short.any():
        count = int(short.sum())
        shortage = (
            f"{count} household{'s' if count > 1 else ''} short of {shortfall.sum():.1f} kWh"
            " in total (the cap or their own limits leave too little room)"
        )
        reason = f"{reason}; {shortage}" if reason else shortage
    objective = sum(solution.objective_eur for solution in final)
    return CollectiveResult(
        status=status,
        sharing_rule=problem.sharing_rule,
        households=outcomes,
        members_w=_watts(planned),
        members_alone_w=_watts(members_alone),
        members_import_cap_w=_watts(import_cap),
        members_export_cap_w=_watts(export_cap),
        cap_excess_w=_watts(excess),
        binding_steps=tuple(int(t) for t in np.flatnonzero(binding_import | binding_export)),
        cost_eur=float(cost.sum()),
        cost_alone_eur=float(cost_alone.sum()),
        objective_eur=objective,
        lower_bound_eur=lower_bound if not exact else objective,
        groups=len(groups),
        solves=solves,
        reason=reason,
    )


def _settle(problem: CollectiveProblem, cost_alone: FloatArray, cost: FloatArray) -> FloatArray:
    """Each household's cost alone plus its share of the community's cost of the cap."""
    cost_of_cap = float(cost.sum() - cost_alone.sum())
    match problem.sharing_rule:
        case SharingRule.MERIT_ORDER:
            return cost.copy()
        case SharingRule.PRO_RATA_FLEXIBLE:
            flexible = np.array([h.flexible_energy_wh for h in problem.households], dtype=float)
            if flexible.sum() > 0:
                shares: FloatArray = flexible / flexible.sum()
                return cost_alone + cost_of_cap * shares
    return cost_alone + cost_of_cap / len(cost)


def _watts(kilowatts: FloatArray) -> tuple[float, ...]:
    return tuple((kilowatts * 1000).tolist())
