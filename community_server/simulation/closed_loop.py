"""Run the guard against a plant, one meter update a second, with dropped and late samples."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .plant import Plant, at

if TYPE_CHECKING:
    from netbewust_core.guard.engine import Guard
    from netbewust_core.model import GuardDecision, MeterReading


@dataclass(frozen=True, slots=True)
class MeterFaults:
    """How the meter link misbehaves: each sample may be dropped, or arrive late."""

    drop_probability: float = 0.0
    late_probability: float = 0.0
    max_late_s: int = 0
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Second:
    """The home at one simulated second, and the guard's answer to what arrived then."""

    t: float
    current_a: tuple[float, ...]  # true current per phase at t
    inflexible_a: tuple[float, ...]
    decision: GuardDecision | None  # the guard's latest decision, made at or before t


@dataclass
class Run:
    seconds: list[Second] = field(default_factory=list)
    decisions: list[tuple[float, GuardDecision]] = field(default_factory=list)
    longest_meter_gap_s: int = 0


def run(
    guard: Guard,
    plant: Plant,
    duration_s: int,
    faults: MeterFaults | None = None,
    *,
    start_s: int = 0,
) -> Run:
    """Simulate `duration_s` seconds from `start_s`; the plant follows every decision."""
    faults = faults or MeterFaults()
    rng = random.Random(faults.seed)
    pending: list[tuple[int, MeterReading]] = []
    result = Run()
    latest: GuardDecision | None = None
    last_delivery = start_s
    for t in range(start_s, start_s + duration_s):
        if rng.random() >= faults.drop_probability:
            delay = 0
            if faults.max_late_s > 0 and rng.random() < faults.late_probability:
                delay = rng.randint(1, faults.max_late_s)
            pending.append((t + delay, plant.reading(t)))
        due = sorted((r for r in pending if r[0] <= t), key=lambda r: r[1].timestamp)
        pending = [r for r in pending if r[0] > t]
        for _, reading in due:
            decision = guard.on_meter(reading, plant.device_states(t))
            plant.apply(decision.setpoints, t)
            result.decisions.append((t, decision))
            latest = decision
        if due:
            result.longest_meter_gap_s = max(result.longest_meter_gap_s, t - last_delivery)
            last_delivery = t
        ticked = guard.on_tick(at(t + 0.5))
        if ticked is not None:
            plant.apply(ticked.setpoints, t)
            result.decisions.append((t, ticked))
            latest = ticked
        result.seconds.append(
            Second(
                t=t,
                current_a=plant.phase_currents_a(t),
                inflexible_a=plant.inflexible_a(t),
                decision=latest,
            )
        )
    return result
