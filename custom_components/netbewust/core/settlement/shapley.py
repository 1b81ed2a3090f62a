"""The coalition's saving and its split: a cooperative game on measured profiles.

The cost of a group is what its summed quarter-hour import would cost under the prices and
the capacity (peak) charge in force; nothing is re-planned. The value of a coalition S is
v(S) = sum of its members' costs alone - the cost of S together, which is never negative
(max(a+b, 0) <= max(a, 0) + max(b, 0) and a peak of a sum is at most the sum of peaks).
The Shapley value splits v(N): exactly by enumeration for small groups, otherwise by
permutation sampling with a fixed seed, stratified by position (every rotation of a random
order, so each player takes each position equally often) and antithetic (each order also
reversed). Each permutation's marginal contributions telescope to v(N), so the estimate
always adds up to v(N) exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from ..timegrid import HOURS_PER_QUARTER

if TYPE_CHECKING:
    from numpy.typing import NDArray

EXACT_MAX_PLAYERS: Final = 12  # 4,096 coalitions: enumerate; beyond, sample
# Permutations sampled: about SAMPLE_ROWS prefix costs (the work of one permutation grows
# with the players), at least MIN_PERMUTATIONS; a reversed order counts as one.
SAMPLE_ROWS: Final = 160_000
MIN_PERMUTATIONS: Final = 400


@dataclass(frozen=True, slots=True)
class CostModel:
    """Prices that make up a group's cost: energy both ways and the peak (capacity) charge."""

    import_eur_per_kwh: float
    export_eur_per_kwh: float
    peak_eur_per_kw: float  # per kW of the period's highest quarter-hour import

    def __post_init__(self) -> None:
        values = (self.import_eur_per_kwh, self.export_eur_per_kwh, self.peak_eur_per_kw)
        if not all(math.isfinite(value) and value >= 0 for value in values):
            raise ValueError("prices must be finite and not negative")
        if self.export_eur_per_kwh > self.import_eur_per_kwh:
            raise ValueError("an export price above the import price has no saving game")


def group_costs(net_kwh: NDArray[np.float64], model: CostModel) -> NDArray[np.float64]:
    """Cost of each row of summed net import (kWh per quarter; rows x quarters)."""
    imported = np.maximum(net_kwh, 0.0)
    exported = np.maximum(-net_kwh, 0.0)
    energy = model.import_eur_per_kwh * imported.sum(axis=-1)
    energy -= model.export_eur_per_kwh * exported.sum(axis=-1)
    peak_kw = imported.max(axis=-1, initial=0.0) / HOURS_PER_QUARTER
    result: NDArray[np.float64] = energy + model.peak_eur_per_kw * peak_kw
    return result


def coalition_saving(profiles: NDArray[np.float64], model: CostModel) -> float:
    """v(N): the members' costs alone minus their cost together (profiles: players x quarters)."""
    if len(profiles) == 0:
        return 0.0
    alone = float(group_costs(profiles, model).sum())
    return alone - float(group_costs(profiles.sum(axis=0), model))


def _reduced(profiles: NDArray[np.float64], model: CostModel) -> NDArray[np.float64]:
    """The quarters that matter. Where nobody exports or nobody imports, the energy part
    is linear and drops out of every v(S); those quarters still count for the peak, so
    only their total energy is lost (kept as one column each way when the peak is free)."""
    if model.peak_eur_per_kw > 0:
        return profiles
    mixed = (profiles > 0).any(axis=0) & (profiles < 0).any(axis=0)
    return profiles[:, mixed]


def exact_shapley(profiles: NDArray[np.float64], model: CostModel) -> NDArray[np.float64]:
    """The Shapley value of the saving game by enumerating all 2^n coalitions."""
    n = len(profiles)
    if n > 16:
        raise ValueError("exact enumeration is for at most 16 players")
    profiles = _reduced(profiles, model)
    masks = np.arange(1 << n)
    members = ((masks[:, None] >> np.arange(n)) & 1).astype(np.float64)
    alone = group_costs(profiles, model)
    values = members @ alone - group_costs(members @ profiles, model)
    sizes = members.sum(axis=1).astype(int)
    weights = np.array(
        [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    )
    result = np.zeros(n)
    for player in range(n):
        without = masks[(masks >> player) & 1 == 0]
        gain = values[without | (1 << player)] - values[without]
        result[player] = float(weights[sizes[without]] @ gain)
    return result


def sampled_shapley(
    profiles: NDArray[np.float64],
    model: CostModel,
    *,
    permutations: int | None = None,
    seed: int = 0,
) -> NDArray[np.float64]:
    """The Shapley value estimated from about `permutations` orders (rotations, reversed)."""
    n = len(profiles)
    if n == 0:
        return np.zeros(0)
    if permutations is None:
        permutations = max(MIN_PERMUTATIONS, SAMPLE_ROWS // n)
    profiles = _reduced(profiles, model)
    # The quarters where someone imports and someone exports first: only there is the
    # energy part not linear; the linear rest drops out of every marginal contribution.
    mixed = (profiles > 0).any(axis=0) & (profiles < 0).any(axis=0)
    profiles = np.concatenate([profiles[:, mixed], profiles[:, ~mixed]], axis=1)
    count = int(mixed.sum())
    netting = model.import_eur_per_kwh - model.export_eur_per_kwh
    peak = model.peak_eur_per_kw / HOURS_PER_QUARTER

    def costs(summed: NDArray[np.float64]) -> NDArray[np.float64]:
        """Group costs less their linear part: the same marginal contributions."""
        result: NDArray[np.float64] = netting * np.maximum(summed[:, :count], 0.0).sum(axis=1)
        if peak > 0:
            result += peak * np.maximum(summed.max(axis=1), 0.0)
        return result

    alone = costs(profiles)
    rng = np.random.default_rng(seed)
    total = np.zeros(n)
    used = 0
    while used < permutations:
        order = rng.permutation(n)
        for shift in range(n):
            rotated = np.roll(order, shift)
            for sequence in (rotated, rotated[::-1]):
                prefix_costs = costs(np.cumsum(profiles[sequence], axis=0))
                total[sequence] += alone[sequence] - np.diff(prefix_costs, prepend=0.0)
                used += 1
            if used >= permutations:
                break
    result: NDArray[np.float64] = total / used
    return result


def shapley_saving(
    profiles: NDArray[np.float64], model: CostModel, *, seed: int = 0
) -> NDArray[np.float64]:
    """Each player's Shapley share of v(N): exact for small groups, sampled beyond."""
    if len(profiles) <= EXACT_MAX_PLAYERS:
        return exact_shapley(profiles, model)
    return sampled_shapley(profiles, model, seed=seed)
