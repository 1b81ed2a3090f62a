"""Counters the server keeps about its traffic; read by tests, logs and (later) HTTP."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Metrics:
    """Updated on the event loop only, so plain counters suffice."""

    received: Counter[str] = field(default_factory=Counter)  # by message type
    stored: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)  # by reason code
    published: Counter[str] = field(default_factory=Counter)
    store_failures: int = 0

    def snapshot(self) -> dict[str, object]:
        return {
            "received": dict(self.received),
            "stored": dict(self.stored),
            "rejected": dict(self.rejected),
            "published": dict(self.published),
            "store_failures": self.store_failures,
        }
