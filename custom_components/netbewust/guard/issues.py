"""Repair issues the runtime raises and clears as conditions come and go."""

from __future__ import annotations

from enum import StrEnum

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from ..const import DOMAIN, LOGGER


class Issue(StrEnum):
    """Translation keys; the issue id also names the entry so connections don't collide."""

    SLOW_METER = "slow_meter"
    STALE_METER = "stale_meter"
    INFLEXIBLE_OVERLOAD = "inflexible_overload"
    GUARD_ERROR = "guard_error"
    NO_PRICES = "no_prices"
    NO_FORECAST = "no_forecast"
    PLANNER_BAD_INPUT = "planner_bad_input"
    PLANNER_ERROR = "planner_error"
    PLANNER_INFEASIBLE = "planner_infeasible"
    CLOCK_AHEAD = "clock_ahead"  # a membership's: the server refuses its reports
    CLOCK_BEHIND = "clock_behind"  # a membership's: it refuses the server's limits


SEVERITY: dict[Issue, ir.IssueSeverity] = {
    Issue.SLOW_METER: ir.IssueSeverity.WARNING,
    Issue.STALE_METER: ir.IssueSeverity.ERROR,
    Issue.INFLEXIBLE_OVERLOAD: ir.IssueSeverity.ERROR,
    Issue.GUARD_ERROR: ir.IssueSeverity.ERROR,
    Issue.NO_PRICES: ir.IssueSeverity.WARNING,
    Issue.NO_FORECAST: ir.IssueSeverity.WARNING,
    Issue.PLANNER_BAD_INPUT: ir.IssueSeverity.WARNING,
    Issue.PLANNER_ERROR: ir.IssueSeverity.WARNING,
    Issue.PLANNER_INFEASIBLE: ir.IssueSeverity.WARNING,
    Issue.CLOCK_AHEAD: ir.IssueSeverity.ERROR,
    Issue.CLOCK_BEHIND: ir.IssueSeverity.ERROR,
}


def issue_id(issue: Issue, entry_id: str) -> str:
    return f"{issue}_{entry_id}"


class IssueTracker:
    """Creates an issue once when it appears and deletes it when it is gone."""

    def __init__(self, hass: HomeAssistant, entry_id: str, title: str) -> None:
        self._hass = hass
        self._entry_id = entry_id
        self._title = title
        self.active: set[Issue] = set()

    @callback
    def update(
        self, issue: Issue, present: bool, placeholders: dict[str, str] | None = None
    ) -> None:
        if present and issue not in self.active:
            LOGGER.warning("%s: raising repair issue %s %s", self._title, issue, placeholders or "")
            ir.async_create_issue(
                self._hass,
                DOMAIN,
                issue_id(issue, self._entry_id),
                is_fixable=False,
                severity=SEVERITY[issue],
                translation_key=issue,
                translation_placeholders={"title": self._title, **(placeholders or {})},
            )
            self.active.add(issue)
        elif not present and issue in self.active:
            LOGGER.info("%s: %s resolved", self._title, issue)
            ir.async_delete_issue(self._hass, DOMAIN, issue_id(issue, self._entry_id))
            self.active.discard(issue)

    @callback
    def clear_all(self) -> None:
        for issue in tuple(self.active):
            self.update(issue, present=False)
