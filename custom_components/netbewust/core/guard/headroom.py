"""Room left on each phase, each (nested) circuit and the total, as devices are served.

A device is described by the real phases it draws on (L1..L3, 1-based) and its circuit;
it always draws the same current on each of its phases. On a total-only 3-phase meter
all phases map onto one enforced (virtual) phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model import Circuit, LimitReason

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..limits import LimitSource


@dataclass(frozen=True, slots=True)
class Binding:
    """The constraint that stopped a device from getting more."""

    reason: LimitReason
    phase: int | None = None  # 1-based real phase, when one phase binds


def circuit_chains(circuits: Sequence[Circuit]) -> dict[str, tuple[str, ...]]:
    """Each circuit with its ancestors, innermost first; rejects unknown parents and cycles."""
    by_id = {c.circuit_id: c for c in circuits}
    if len(by_id) != len(circuits):
        raise ValueError("circuit ids must be unique")
    chains: dict[str, tuple[str, ...]] = {}
    for circuit in circuits:
        chain = [circuit.circuit_id]
        parent = circuit.parent_id
        while parent is not None:
            if parent not in by_id:
                raise ValueError(f"circuit {chain[-1]!r} has unknown parent {parent!r}")
            if parent in chain:
                raise ValueError(f"circuits form a cycle through {parent!r}")
            chain.append(parent)
            parent = by_id[parent].parent_id
        chains[circuit.circuit_id] = tuple(chain)
    return chains


class Headroom:
    """Mutable bookkeeping for one decision."""

    def __init__(
        self,
        *,
        phase_room_a: Sequence[float],
        phase_source: Sequence[LimitSource],
        voltage_v: Sequence[float],
        per_phase: bool,
        total_room_w: float | None,
        total_source: LimitSource | None,
        circuits: Sequence[Circuit],
        chains: Mapping[str, tuple[str, ...]],
        connection_phases: int,
    ) -> None:
        self.phase_room_a = list(phase_room_a)
        self._phase_source = tuple(phase_source)
        self._voltage = tuple(voltage_v)
        self._per_phase = per_phase
        self.total_room_w = math.inf if total_room_w is None else total_room_w
        self._total_source = total_source
        self.circuit_room_a = {
            c.circuit_id: [c.max_current_a] * connection_phases for c in circuits
        }
        self._chains = chains

    def enforced_index(self, phase: int) -> int:
        return phase - 1 if self._per_phase else 0

    def available_a(
        self, phases: Sequence[int], circuit_id: str | None
    ) -> tuple[float, Binding | None]:
        """Current per phase the device could add (negative: it must shed that much)."""
        best = math.inf
        binding: Binding | None = None
        weights: dict[int, int] = {}
        for phase in phases:
            index = self.enforced_index(phase)
            weights[index] = weights.get(index, 0) + 1
        for index, weight in weights.items():
            room = self.phase_room_a[index] / weight
            if room < best:
                best = room
                reason = LimitReason(self._phase_source[index].value)
                binding = Binding(reason, index + 1 if self._per_phase else None)
        for circuit in self._chains.get(circuit_id, ()) if circuit_id else ():
            rooms = self.circuit_room_a[circuit]
            for phase in phases:
                if rooms[phase - 1] < best:
                    best = rooms[phase - 1]
                    binding = Binding(LimitReason.CIRCUIT, phase)
        if math.isfinite(self.total_room_w) and self._total_source is not None:
            watts_per_amp = sum(self._voltage[self.enforced_index(p)] for p in phases)
            room = self.total_room_w / watts_per_amp
            if room < best:
                best = room
                binding = Binding(LimitReason(self._total_source.value))
        return best, binding

    def take(self, phases: Sequence[int], circuit_id: str | None, current_a: float) -> None:
        """Reserve `current_a` on each of `phases` (negative gives room back)."""
        if current_a == 0:
            return
        for phase in phases:
            index = self.enforced_index(phase)
            self.phase_room_a[index] -= current_a
            self.total_room_w -= current_a * self._voltage[index]
            for circuit in self._chains.get(circuit_id, ()) if circuit_id else ():
                self.circuit_room_a[circuit][phase - 1] -= current_a
