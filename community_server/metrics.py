"""Counters the server keeps about its traffic; read by tests, logs and `GET /metrics`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class AllocationRounds:
    """One transformer's allocation rounds: how many, how long, how many failed."""

    count: int = 0
    failures: int = 0
    seconds_total: float = 0.0
    last_seconds: float = 0.0


@dataclass(slots=True)
class Metrics:
    """Updated on the event loop only, so plain counters suffice."""

    received: Counter[str] = field(default_factory=Counter)  # by message type
    stored: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)  # by reason code
    published: Counter[str] = field(default_factory=Counter)
    store_failures: int = 0
    allocation: dict[str, AllocationRounds] = field(default_factory=dict)  # by transformer
    dso_signals: Counter[tuple[str, str]] = field(default_factory=Counter)  # (mode, source)
    # Member-rounds the allocation left out, by (transformer, reason).
    allocation_excluded: Counter[tuple[str, str]] = field(default_factory=Counter)
    dso_frames_rejected: Counter[str] = field(default_factory=Counter)  # HTTP API, by code
    # Notices to households of their refused messages, by (code, "sent" or "suppressed").
    notices: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Heat-pump steering pauses households began (seen since the server started).
    heat_pump_pauses: int = 0
    # The live allocation's heat-pump curtailments begun and pumps held now, and
    # member-rounds whose pump facts it refused; all by transformer.
    heat_pump_curtailments: Counter[str] = field(default_factory=Counter)
    heat_pumps_curtailed: dict[str, int] = field(default_factory=dict)
    heat_pump_facts_refused: Counter[str] = field(default_factory=Counter)
    # Days of members' load refused for the temperature forecast, by transformer.
    daily_load_rejected: Counter[str] = field(default_factory=Counter)

    def allocation_round(self, transformer_id: str, seconds: float, *, failed: bool) -> None:
        rounds = self.allocation.setdefault(transformer_id, AllocationRounds())
        rounds.count += 1
        rounds.failures += failed
        rounds.seconds_total += seconds
        rounds.last_seconds = seconds

    def snapshot(self) -> dict[str, object]:
        return {
            "received": dict(self.received),
            "stored": dict(self.stored),
            "rejected": dict(self.rejected),
            "published": dict(self.published),
            "store_failures": self.store_failures,
        }
