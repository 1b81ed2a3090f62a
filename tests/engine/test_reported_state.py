"""The reported guard state: steady between normal and limiting, at once for safe mode and
start-up, and always the reasons of the state it shows."""

from __future__ import annotations

from datetime import timedelta

from netbewust_core.guard.reported import REPORT_DWELL, ReportedState
from netbewust_core.limits import LimitSource
from netbewust_core.model import GuardDecision, GuardState, Limitation, LimitReason

from .builders import at

DWELL_S = REPORT_DWELL.total_seconds()


def decision(seconds: float, state: GuardState, *reasons: LimitReason) -> GuardDecision:
    return GuardDecision(
        timestamp=at(seconds),
        state=state,
        setpoints={},
        changed=frozenset(),
        phase_current_a=(20.0,),
        phase_limit_a=(25.0,),
        limit_source=LimitSource.FUSE,
        limitations=tuple(Limitation(reason, "car") for reason in reasons),
    )


def feed(reported: ReportedState, *decisions: GuardDecision) -> list[GuardState | None]:
    """The reported state after each decision."""
    shown = []
    for item in decisions:
        reported.update(item, item.timestamp)
        shown.append(reported.state)
    return shown


def test_a_charger_at_the_edge_flipping_every_second_reports_no_change() -> None:
    """Issue 15: 43 flips in 90 s flooded the logbook; the report stays where it was."""
    reported = ReportedState()
    flips = [
        decision(s, GuardState.LIMITING, LimitReason.FUSE)
        if s % 2
        else decision(s, GuardState.NORMAL)
        for s in range(90)
    ]
    shown = feed(reported, *flips)
    assert set(shown) == {GuardState.NORMAL}
    # The reasons shown are those of the state shown: the latest normal decision's.
    assert reported.decision == flips[88]
    assert reported.decision.limitations == flips[88].limitations


def test_limiting_is_reported_once_it_held_for_the_dwell_and_normal_likewise() -> None:
    reported = ReportedState()
    feed(reported, decision(0, GuardState.NORMAL))
    limiting = [decision(s, GuardState.LIMITING, LimitReason.FUSE) for s in range(1, 40)]
    shown = feed(reported, *limiting)
    held = int(DWELL_S)  # the first limiting decision came at 1 s
    assert shown[: held - 1] == [GuardState.NORMAL] * (held - 1)
    assert shown[held:] == [GuardState.LIMITING] * (len(shown) - held)
    assert reported.decision == limiting[-1]
    # Back to normal also waits: a short dip does not count, a lasting one does.
    feed(reported, decision(40, GuardState.NORMAL), decision(41, GuardState.LIMITING))
    assert reported.state is GuardState.LIMITING
    shown = feed(reported, *(decision(s, GuardState.NORMAL) for s in range(42, 42 + held + 1)))
    assert shown[0] is GuardState.LIMITING
    assert shown[-1] is GuardState.NORMAL


def test_a_tick_without_a_new_decision_reports_a_state_that_held() -> None:
    reported = ReportedState()
    feed(reported, decision(0, GuardState.NORMAL))
    limiting = decision(1, GuardState.LIMITING, LimitReason.HOUSEHOLD_PEAK)
    assert reported.update(limiting, limiting.timestamp) is False
    assert reported.update(limiting, at(1) + REPORT_DWELL - timedelta(seconds=1)) is False
    assert reported.update(limiting, at(1) + REPORT_DWELL) is True
    assert reported.state is GuardState.LIMITING


def test_safe_mode_and_start_up_are_reported_at_once() -> None:
    reported = ReportedState()
    assert feed(reported, decision(0, GuardState.STARTING)) == [GuardState.STARTING]
    assert feed(reported, decision(1, GuardState.LIMITING)) == [GuardState.LIMITING]
    stale = decision(2, GuardState.SAFE_MODE, LimitReason.STALE_METER)
    assert feed(reported, stale) == [GuardState.SAFE_MODE]
    assert reported.decision == stale
    # Released from safe mode: shown at once, devices are running again.
    assert feed(reported, decision(3, GuardState.NORMAL)) == [GuardState.NORMAL]
