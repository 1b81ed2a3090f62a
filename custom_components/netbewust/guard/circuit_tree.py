"""The tree of sub-circuits as the subentries describe it: parents, descendants, cycles."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


def descendants(parents: Mapping[str, str | None], circuit_id: str) -> set[str]:
    """Every circuit below `circuit_id`, however deep (the circuit itself excluded)."""
    below: set[str] = set()
    frontier = [circuit_id]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in below and child != circuit_id:
                below.add(child)
                frontier.append(child)
    return below


def creates_cycle(parents: Mapping[str, str | None], circuit_id: str, parent_id: str) -> bool:
    """Whether hanging `circuit_id` below `parent_id` would make a circuit its own ancestor."""
    return parent_id == circuit_id or parent_id in descendants(parents, circuit_id)
