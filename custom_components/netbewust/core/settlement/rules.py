"""A community's settlement rules and the settlement of one period under them.

Per household and quarter where a limit was in force (and the quarter counts: measured,
not paused): delivered flexibility = baseline - measured import, clipped to [0, asked],
asked = baseline - the limit's energy; shortfall = measured import above the limit's energy.
A household's credit = delivered kWh x the flexibility price + its share of the community's
saving - the participation fee - shortfall kWh x the penalty. Amounts are whole cents; the
saving pool is split by largest remainders, so the shares add up to the pool exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from ..timegrid import HOURS_PER_QUARTER
from .baseline import BaselineCommitment, BaselineDays, BaselineRule, Timeline, baselines
from .quarters import COVERAGE_MIN, QUARTER_S, Period
from .shapley import CostModel, coalition_saving, shapley_saving

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from zoneinfo import ZoneInfo

    from numpy.typing import NDArray


class SavingSplit(StrEnum):
    NONE = "none"  # the cooperative keeps the saving
    PRO_RATA = "pro_rata"  # in proportion to delivered flexibility
    SHAPLEY = "shapley"  # each household's Shapley value in the saving game


class FlexPriceSource(StrEnum):
    FIXED = "fixed"
    DSO_CONTRACT = "dso_contract"  # the price the DSO pays the community, passed on


@dataclass(frozen=True, slots=True)
class SettlementRules:
    """One version of a community's rules; every statement names the version it used."""

    version: int
    flex_eur_per_kwh: float = 0.10
    flex_price_source: FlexPriceSource = FlexPriceSource.FIXED
    saving_split: SavingSplit = SavingSplit.SHAPLEY
    saving_fraction: float = 0.5  # of the coalition's saving; the rest stays with the cooperative
    participation_fee_eur: float = 0.0
    shortfall_eur_per_kwh: float = 0.0
    costs: CostModel = field(default_factory=lambda: CostModel(0.25, 0.05, 4.0))
    baseline: BaselineRule = field(default_factory=BaselineRule)
    seed: int = 0  # of the Shapley sampling: a recomputation gives the same figures

    def __post_init__(self) -> None:
        if not 1 <= self.version <= 1_000_000:
            raise ValueError("a rules version is 1-1000000")
        for name in ("flex_eur_per_kwh", "participation_fee_eur", "shortfall_eur_per_kwh"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1000):
                raise ValueError(f"{name} must be 0-1000")
        if not 0 <= self.saving_fraction <= 1:
            raise ValueError("saving_fraction must be 0-1")
        if not 0 <= self.seed < 2**32:
            raise ValueError("seed must be 0-4294967295")

    def to_document(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_document(cls, document: object) -> SettlementRules:
        """Rules from JSON; anything unknown, missing or out of range is a ValueError."""
        if not isinstance(document, dict):
            raise ValueError("rules must be a JSON object")
        known = {
            "version", "flex_eur_per_kwh", "flex_price_source", "saving_split",
            "saving_fraction", "participation_fee_eur", "shortfall_eur_per_kwh", "costs",
            "baseline", "seed",
        }  # fmt: skip
        unknown = set(document) - known
        if unknown:
            raise ValueError(f"unknown rule fields: {', '.join(sorted(unknown))[:200]}")
        values = dict(document)
        try:
            if "costs" in values:
                values["costs"] = CostModel(**_numbers(values["costs"], "costs"))
            if "baseline" in values:
                values["baseline"] = BaselineRule(**_numbers(values["baseline"], "baseline"))
            if "flex_price_source" in values:
                values["flex_price_source"] = FlexPriceSource(values["flex_price_source"])
            if "saving_split" in values:
                values["saving_split"] = SavingSplit(values["saving_split"])
            for name, value in values.items():
                if name in {"version", "seed"} and (
                    isinstance(value, bool) or not isinstance(value, int)
                ):
                    raise ValueError(f"{name} must be an integer")
                if name.endswith(("_eur", "_kwh", "_fraction")) and (
                    isinstance(value, bool) or not isinstance(value, int | float)
                ):
                    raise ValueError(f"{name} must be a number")
            return cls(**values)
        except TypeError as err:
            raise ValueError(f"malformed rules: {err}"[:300]) from None


def _numbers(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise ValueError(f"{name} must be an object of numbers")
    return value


@dataclass(frozen=True, slots=True)
class PeriodInput:
    """Measured quarter hours of a community's households, on a timeline that starts the
    baseline's look-back before the period (rows: households; NaN limit: none in force)."""

    period: Period
    timeline: Timeline
    households: tuple[str, ...]
    import_kwh: NDArray[np.floating[Any]]
    export_kwh: NDArray[np.floating[Any]]
    limit_kwh: NDArray[np.floating[Any]]
    covered: NDArray[np.floating[Any]]
    paused: NDArray[np.bool_]
    commitments: Mapping[str, Sequence[BaselineCommitment]]


def settlement_timeline(period: Period, zone: ZoneInfo, rule: BaselineRule) -> Timeline:
    """The period plus the baseline rule's look-back, as whole local days."""
    first = period.start.astimezone(zone).date()
    last = period.end.astimezone(zone).date()
    return Timeline(
        first - timedelta(days=rule.lookback_days), (last - first).days + rule.lookback_days, zone
    )


@dataclass(frozen=True, slots=True)
class HouseholdStatement:
    household: str
    import_kwh: float
    export_kwh: float
    delivered_kwh: float
    asked_kwh: float
    shortfall_kwh: float
    limited_quarters: int
    paused_quarters: int
    uncovered_quarters: int  # below the coverage threshold: no credit, no shortfall
    uncovered_limited_quarters: int
    baseline_days: BaselineDays
    saving_weight: float  # the Shapley value (EUR) or delivered kWh the share follows
    flex_cents: int
    saving_cents: int
    fee_cents: int
    penalty_cents: int

    @property
    def credit_cents(self) -> int:
        return self.flex_cents + self.saving_cents - self.fee_cents - self.penalty_cents

    def to_document(self) -> dict[str, Any]:
        document = asdict(self)
        document["credit_cents"] = self.credit_cents
        return document


@dataclass(frozen=True, slots=True)
class PeriodSettlement:
    period: str
    rules_version: int
    coverage_min: float
    saving_eur: float  # v(N): the households' costs alone minus their cost together
    pool_cents: int  # the part of the saving to distribute
    statements: tuple[HouseholdStatement, ...]

    @property
    def distributed_cents(self) -> int:
        return sum(statement.saving_cents for statement in self.statements)

    @property
    def credit_cents(self) -> int:
        return sum(statement.credit_cents for statement in self.statements)

    def to_document(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "rules_version": self.rules_version,
            "coverage_min": self.coverage_min,
            "saving_eur": self.saving_eur,
            "pool_cents": self.pool_cents,
            "distributed_cents": self.distributed_cents,
            "retained_cents": self.pool_cents - self.distributed_cents,
            "credit_cents": self.credit_cents,
            "households": [statement.to_document() for statement in self.statements],
        }


def apportion(total_cents: int, weights: Sequence[float]) -> list[int]:
    """`total_cents` split in proportion to `weights` (>= 0) by largest remainders: the
    parts add up to the total exactly; ties go to the earlier weight. Nothing when all are 0."""
    cleaned = [max(0.0, weight) if math.isfinite(weight) else 0.0 for weight in weights]
    whole = sum(cleaned)
    if total_cents <= 0 or whole <= 0:
        return [0] * len(cleaned)
    exact = [total_cents * weight / whole for weight in cleaned]
    parts = [math.floor(value) for value in exact]
    left = total_cents - sum(parts)
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for index in by_remainder[:left]:
        parts[index] += 1
    return parts


CHUNK_HOUSEHOLDS = 256  # baselines and flexibility per chunk: bounded memory at any size


def from_sums(
    period: Period,
    timeline: Timeline,
    households: Sequence[str],
    *,
    import_wh: NDArray[np.floating[Any]],
    export_wh: NDArray[np.floating[Any]],
    covered_s: NDArray[np.floating[Any]],
    paused_s: NDArray[np.floating[Any]],
    limit_w: NDArray[np.floating[Any]],
    commitments: Mapping[str, Sequence[BaselineCommitment]],
) -> PeriodInput:
    """The input from summed quarter parts (households x quarters, as stored): overlapping
    reports scaled to one quarter's worth (quarters.figures_from_sums, for whole arrays).
    The arrays are converted in place and become the input's: a month of a large community
    is then held once."""
    scale = np.maximum(covered_s, QUARTER_S)  # one temporary: exactly 1 up to a full quarter
    np.divide(QUARTER_S, scale, out=scale)
    import_wh *= scale
    export_wh *= scale
    del scale
    import_wh /= 1000  # divided, not times 0.001: 500 Wh is 0.5 kWh in float32 too
    export_wh /= 1000
    limit_w *= HOURS_PER_QUARTER / 1000
    covered_s /= QUARTER_S
    np.minimum(covered_s, 1.0, out=covered_s)
    return PeriodInput(
        period=period,
        timeline=timeline,
        households=tuple(households),
        import_kwh=import_wh,
        export_kwh=export_wh,
        limit_kwh=limit_w,
        covered=covered_s,
        paused=paused_s > 0,
        commitments=commitments,
    )


def settle(data: PeriodInput, rules: SettlementRules) -> PeriodSettlement:
    """Every household's statement for the period under `rules`."""
    timeline, period = data.timeline, data.period
    first = timeline.index_of(period.start)
    last = timeline.index_of(period.end)
    window = slice(first, last)
    households = len(data.households)
    first_day = int(timeline.day_index[first])
    days = range(first_day, int(timeline.day_index[last - 1]) + 1)
    profiles = np.zeros((households, last - first))
    sums: dict[str, NDArray[np.float64]] = {}
    counters: dict[str, NDArray[np.int64]] = {}
    baseline_days: list[BaselineDays] = []
    for chunk_start in range(0, households, CHUNK_HOUSEHOLDS):
        rows = slice(chunk_start, min(households, chunk_start + CHUNK_HOUSEHOLDS))
        chunk = _settle_chunk(data, rules, rows, days, window)
        profiles[rows] = chunk.profile
        for name, values in chunk.sums.items():
            sums.setdefault(name, np.zeros(households))[rows] = values
        for name, numbers in chunk.counters.items():
            counters.setdefault(name, np.zeros(households, dtype=np.int64))[rows] = numbers
        baseline_days.extend(chunk.baseline_days)
    saving = coalition_saving(profiles, rules.costs)
    pool = math.floor(max(0.0, saving) * rules.saving_fraction * 100 + 1e-9)
    delivered_kwh = sums["delivered"] if households else np.zeros(0)
    match rules.saving_split:
        case SavingSplit.NONE:
            pool, weights = 0, [0.0] * households
        case SavingSplit.PRO_RATA:
            weights = [float(value) for value in delivered_kwh]
        case SavingSplit.SHAPLEY:
            weights = [float(v) for v in shapley_saving(profiles, rules.costs, seed=rules.seed)]
    shares = apportion(pool, weights)
    statements = tuple(
        HouseholdStatement(
            household=household,
            import_kwh=float(sums["import"][row]),
            export_kwh=float(sums["export"][row]),
            delivered_kwh=float(delivered_kwh[row]),
            asked_kwh=float(sums["asked"][row]),
            shortfall_kwh=float(sums["shortfall"][row]),
            limited_quarters=int(counters["limited"][row]),
            paused_quarters=int(counters["paused"][row]),
            uncovered_quarters=int(counters["uncovered"][row]),
            uncovered_limited_quarters=int(counters["uncovered_limited"][row]),
            baseline_days=baseline_days[row],
            saving_weight=weights[row],
            flex_cents=_cents(delivered_kwh[row] * rules.flex_eur_per_kwh),
            saving_cents=shares[row],
            fee_cents=_cents(rules.participation_fee_eur),
            penalty_cents=_cents(sums["shortfall"][row] * rules.shortfall_eur_per_kwh),
        )
        for row, household in enumerate(data.households)
    )
    return PeriodSettlement(
        period=period.key,
        rules_version=rules.version,
        coverage_min=COVERAGE_MIN,
        saving_eur=saving,
        pool_cents=pool,
        statements=statements,
    )


@dataclass(frozen=True, slots=True)
class _Chunk:
    profile: NDArray[np.float64]  # net import in counted quarters of the period
    sums: dict[str, NDArray[np.float64]]
    counters: dict[str, NDArray[np.int64]]
    baseline_days: list[BaselineDays]


def _settle_chunk(
    data: PeriodInput, rules: SettlementRules, rows: slice, days: range, window: slice
) -> _Chunk:
    imported_all = np.asarray(data.import_kwh[rows], dtype=np.float64)
    limit_all = np.asarray(data.limit_kwh[rows], dtype=np.float64)
    paused_all = data.paused[rows]
    counts = data.covered[rows] >= COVERAGE_MIN
    limited_all = ~np.isnan(limit_all)
    history = np.where(counts & ~limited_all & ~paused_all, imported_all, np.nan)
    index = {household: row for row, household in enumerate(data.households[rows])}
    first_day = data.timeline.first_day
    commitments = {
        index[household]: {(c.day - first_day).days: c for c in committed}
        for household, committed in data.commitments.items()
        if household in index
    }
    baseline, baseline_days = baselines(data.timeline, history, days, commitments, rules.baseline)
    del history
    imported = imported_all[:, window]
    exported = np.asarray(data.export_kwh[rows, window], dtype=np.float64)
    limit, base = limit_all[:, window], baseline[:, window]
    counted, paused, limited = counts[:, window], paused_all[:, window], limited_all[:, window]
    ok = counted & ~paused & limited
    asked = np.where(ok & ~np.isnan(base), np.maximum(np.nan_to_num(base - limit), 0.0), 0.0)
    delivered = np.where(asked > 0, np.clip(np.nan_to_num(base - imported), 0.0, asked), 0.0)
    shortfall = np.where(ok, np.maximum(np.nan_to_num(imported - limit), 0.0), 0.0)
    return _Chunk(
        profile=np.where(counted, imported - exported, 0.0),
        sums={
            "import": imported.sum(axis=1),
            "export": exported.sum(axis=1),
            "asked": asked.sum(axis=1),
            "delivered": delivered.sum(axis=1),
            "shortfall": shortfall.sum(axis=1),
        },
        counters={
            "limited": limited.sum(axis=1),
            "paused": paused.sum(axis=1),
            "uncovered": (~counted).sum(axis=1),
            "uncovered_limited": (~counted & limited).sum(axis=1),
        },
        baseline_days=baseline_days,
    )


def _cents(eur: float) -> int:
    return round(float(eur) * 100)
