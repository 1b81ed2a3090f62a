"""The guard's state as a household reads it: steadied, so a charger at the edge of its
room does not flood the logbook with "limiting" and "normal" every second.

Only the report waits; the guard's decisions (and so every protective action) never do.
Between normal and limiting a new state is reported once it has held for `REPORT_DWELL`
without a break. Every other change shows at once: entering safe mode (devices were just
put in their safe state), leaving it (they were just released) and leaving "starting".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import GuardDecision, GuardState

REPORT_DWELL = timedelta(seconds=30)
_STEADIED = frozenset({GuardState.NORMAL, GuardState.LIMITING})


@dataclass(slots=True)
class ReportedState:
    """Follows the guard's decisions; `decision` is the latest one in the reported state,
    so the reasons shown always belong to the state shown."""

    dwell: timedelta = REPORT_DWELL
    decision: GuardDecision | None = None
    _pending: GuardState | None = None
    _pending_since: datetime | None = None

    @property
    def state(self) -> GuardState | None:
        return self.decision.state if self.decision is not None else None

    def update(self, decision: GuardDecision, now: datetime) -> bool:
        """Take the guard's latest decision at `now` (also again on a tick without a new
        one, so a state that held long enough is reported); True when the state shown
        changed."""
        shown = self.decision
        if shown is None or decision.state is shown.state:
            self._pending = self._pending_since = None
            self.decision = decision
            return shown is None
        if decision.state is not self._pending or self._pending_since is None:
            self._pending, self._pending_since = decision.state, now
        steadied = {decision.state, shown.state} <= _STEADIED
        if not steadied or now - self._pending_since >= self.dwell:
            self._pending = self._pending_since = None
            self.decision = decision
            return True
        return False
