"""Settlement in the server's store: roll-up at ingest, baselines, closes and corrections,
on a real SQLite file."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pytest

from community_server.settlement_store import SettlementError
from community_server.store import Store
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import (
    BaselineForecast,
    EmergencyCommand,
    EmergencyLevel,
    EmergencyReason,
    LimitUpdate,
    Message,
    Telemetry,
    encode,
)
from netbewust_core.settlement.rules import SavingSplit, SettlementRules

if TYPE_CHECKING:
    from pathlib import Path

COMMUNITY = "wijk-1"
HISTORY_START = datetime(2026, 10, 26, 23, 0, tzinfo=UTC)  # Tuesday 27 Oct, local midnight
LIMIT_DAY = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)  # Tuesday 3 Nov, local midnight
EVENING = LIMIT_DAY + timedelta(hours=17)  # 18:00 local
DECEMBER = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "server.db")
    opened.create_community(COMMUNITY, "Wijk", HISTORY_START)
    for household in ("huis-a", "huis-b"):
        code = opened.issue_join_code(COMMUNITY, HISTORY_START, timedelta(days=1)).code
        opened.redeem_join_code(code, HISTORY_START, household)
    return opened


def _report(household: str, end: datetime, power_w: float, *, interval_s: int = 900) -> Message:
    return Message(
        community=COMMUNITY,
        household=household,
        sent_at=end,
        message_id=f"{household}-{end.timestamp():.0f}",
        body=Telemetry(
            measured_at=end, interval_s=interval_s, power_w=(power_w,), participating=True
        ),
    )


def _days(store: Store, household: str, first: datetime, days: int, power_w: float) -> None:
    """A report per quarter hour, stored a day at a time."""
    for day in range(days):
        messages = [
            _report(household, first + timedelta(days=day, minutes=15 * (q + 1)), power_w)
            for q in range(96)
        ]
        assert store.save_received(messages, first + timedelta(days=day + 1)) == []


def _limit(store: Store, household: str, start: datetime, hours: int, max_w: float) -> None:
    message = Message(
        community=COMMUNITY,
        household=household,
        sent_at=start,
        body=LimitUpdate(
            limit=ExternalLimit(
                source=LimitSource.COMMUNITY,
                issued_at=start,
                expires_at=start + timedelta(hours=hours),
                intervals=(
                    LimitInterval(
                        start=start, end=start + timedelta(hours=hours), max_import_w=max_w
                    ),
                ),
            )
        ),
    )
    store.record_sent(message, encode(message), start)


def _month(store: Store) -> None:
    """Seven days at 2 kW (A) and 1 kW (B), then 3 November with a 1 kW limit from 18:00
    to 19:00 local: A holds 0.4 kW, B takes 1.5 kW."""
    for household, power in (("huis-a", 2000.0), ("huis-b", 1000.0)):
        _days(store, household, HISTORY_START, 7, power)
        _limit(store, household, EVENING, 1, 1000.0)
    for q in range(96):
        end = LIMIT_DAY + timedelta(minutes=15 * (q + 1))
        evening = EVENING < end <= EVENING + timedelta(hours=1)
        for household, power in (
            ("huis-a", 400.0 if evening else 2000.0),
            ("huis-b", 1500.0 if evening else 1000.0),
        ):
            store.save_received([_report(household, end, power)], end)


def test_a_month_is_rolled_up_at_ingest_and_settled(store: Store) -> None:
    _month(store)
    [statement] = store.settlement.close(COMMUNITY, "2026-11", DECEMBER)
    assert not statement.is_correction
    document = statement.document
    assert document["rules_version"] == 1
    a, b = document["households"]
    assert (a["household"], b["household"]) == ("huis-a", "huis-b")
    assert a["limited_quarters"] == 4
    # A's baseline: its history, 0.5 kWh a quarter; the 1 kW limit asks 0.25 kWh.
    assert a["asked_kwh"] == pytest.approx(1.0)
    assert a["delivered_kwh"] == pytest.approx(1.0, rel=1e-4)
    assert b["delivered_kwh"] == 0.0  # its baseline (0.25 kWh) is at its limit already
    assert b["shortfall_kwh"] == pytest.approx(4 * 0.125)
    assert a["shortfall_kwh"] == 0.0
    # November holds three of the eight days.
    assert a["import_kwh"] == pytest.approx(3 * 24 * 2 - 4 * 0.4, rel=1e-6)
    assert a["baseline_days"]["history"] == 30  # no commitments: every day from history
    assert a["uncovered_quarters"] == 30 * 96 - 3 * 96
    assert sum(h["credit_cents"] for h in document["households"]) == document["credit_cents"]
    assert store.settlement.recompute(COMMUNITY, "2026-11").to_document() == document


def test_a_redelivered_report_counts_once(store: Store) -> None:
    message = _report("huis-a", LIMIT_DAY + timedelta(minutes=15), 4000.0)
    for _ in range(3):
        store.save_received([message], LIMIT_DAY + timedelta(minutes=15))
    preview = store.settlement.preview(COMMUNITY, "2026-11")
    (only,) = preview.statements
    assert only.import_kwh == pytest.approx(1.0)


def test_hostile_timestamps_are_counted_not_settled(store: Store) -> None:
    future = _report("huis-a", LIMIT_DAY + timedelta(days=3), 1000.0)
    ancient = _report("huis-a", LIMIT_DAY - timedelta(days=60), 1000.0)
    store.save_received([future, ancient], LIMIT_DAY)
    assert store.settlement.telemetry_out_of_range == 2
    assert store.settlement.preview(COMMUNITY, "2026-11").statements == ()


def test_a_report_in_the_doubled_dst_hour_lands_in_a_100_quarter_day(store: Store) -> None:
    first = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)  # 02:30-02:45 summer time
    second = datetime(2026, 10, 25, 1, 45, tzinfo=UTC)  # 02:30-02:45 winter time
    store.save_received([_report("huis-a", first, 400.0), _report("huis-a", second, 800.0)], second)
    preview = store.settlement.preview(COMMUNITY, "2026-10")
    assert preview.statements[0].import_kwh == pytest.approx(0.3)
    raw = sqlite3.connect(store_path(store))
    (blob,) = raw.execute("SELECT figures FROM settlement_days").fetchone()
    figures = np.frombuffer(blob, dtype=np.float32).reshape(5, -1)
    assert figures.shape[1] == 100
    assert (figures[0, 10], figures[0, 14]) == (pytest.approx(100.0), pytest.approx(200.0))


def store_path(store: Store) -> str:
    return str(store._db.execute("PRAGMA database_list").fetchone()[2])


def _baseline(household: str, start: datetime, quarters: int, power_w: float) -> Message:
    return Message(
        community=COMMUNITY,
        household=household,
        sent_at=start,
        body=BaselineForecast(start=start, power_w=(power_w,) * quarters),
    )


def test_baselines_commit_once_per_day_and_on_time(store: Store) -> None:
    _month(store)
    noon_before = LIMIT_DAY - timedelta(hours=12)  # 12:00 local on 2 November
    # A whole day ahead, before gate closure: committed (2.8 kW is capped at 2.2+0.2 kW).
    store.save_received([_baseline("huis-a", LIMIT_DAY, 96, 2800.0)], noon_before)
    # A second commitment of the same day is refused and counted; a late one for B stands
    # as late; one that covers no whole coming day commits nothing.
    store.save_received([_baseline("huis-a", LIMIT_DAY, 96, 9000.0)], noon_before)
    store.save_received([_baseline("huis-b", LIMIT_DAY, 96, 1000.0)], LIMIT_DAY)
    store.save_received([_baseline("huis-b", LIMIT_DAY, 96, 1000.0)], LIMIT_DAY)
    store.save_received([_baseline("huis-a", EVENING, 96, 1000.0)], EVENING)
    # Nor does one for a day more than two days ahead.
    later = LIMIT_DAY + timedelta(days=20)
    store.save_received([_baseline("huis-b", later, 96, 1000.0)], noon_before)
    assert store.settlement.export("huis-b")["committed_baselines"] == []
    assert store.settlement.baseline_refusals == 1
    a, b = store.settlement.preview(COMMUNITY, "2026-11").statements
    assert a.baseline_days.committed == 1
    assert b.baseline_days.committed == 0  # LIMIT_DAY had begun when it arrived
    assert a.baseline_days.capped_quarters == 96
    assert a.asked_kwh == pytest.approx(4 * (0.5 * 1.1 + 0.05 - 0.25), rel=1e-5)


def test_closing_follows_the_calendar_and_the_order_of_periods(store: Store) -> None:
    with pytest.raises(SettlementError, match="has not ended"):
        store.settlement.close(COMMUNITY, "2026-11", DECEMBER - timedelta(hours=2))
    with pytest.raises(SettlementError, match="no community"):
        store.settlement.close("elders", "2026-11", DECEMBER)
    with pytest.raises(ValueError, match="YYYY-MM"):
        store.settlement.close(COMMUNITY, "2026-11'; DROP TABLE x", DECEMBER)
    store.settlement.close(COMMUNITY, "2026-11", DECEMBER)
    for key in ("2026-11", "2026-10"):
        with pytest.raises(SettlementError, match="not after the last closed period"):
            store.settlement.close(COMMUNITY, key, DECEMBER)
    with pytest.raises(SettlementError, match="is not closed"):
        store.settlement.recompute(COMMUNITY, "2026-12")


def test_late_data_becomes_a_correction_and_the_closed_statement_never_changes(
    store: Store,
) -> None:
    _month(store)
    (closed,) = store.settlement.close(COMMUNITY, "2026-11", DECEMBER)
    # A report for 3 November turns up in December, with a new id.
    late = _report("huis-b", LIMIT_DAY + timedelta(days=7, minutes=15), 3600.0)
    store.save_received([late], DECEMBER + timedelta(days=2))
    store.prune(DECEMBER + timedelta(days=90), timedelta(days=30))  # telemetry retention
    assert store.settlement.recompute(COMMUNITY, "2026-11").to_document() == closed.document
    statement, correction = store.settlement.close(
        COMMUNITY, "2026-12", datetime(2027, 1, 1, tzinfo=UTC)
    )
    assert (statement.for_period, correction.for_period) == ("2026-12", "2026-11")
    assert correction.is_correction
    changes = {row["household"]: row for row in correction.document["households"]}
    assert changes["huis-b"]["import_kwh"] == pytest.approx(0.9, rel=1e-6)
    assert changes["huis-a"]["import_kwh"] == 0
    assert store.settlement.closed(COMMUNITY, "2026-11")[0].document == closed.document
    # Nothing new arrived since: the next close corrects nothing.
    (only,) = store.settlement.close(COMMUNITY, "2027-01", datetime(2027, 2, 1, tzinfo=UTC))
    assert not only.is_correction


def test_statements_outlive_the_household_and_rules_only_go_up(store: Store) -> None:
    _month(store)
    store.settlement.set_rules(
        COMMUNITY, SettlementRules(version=2, saving_split=SavingSplit.PRO_RATA), DECEMBER
    )
    with pytest.raises(SettlementError, match="must exceed 2"):
        store.settlement.set_rules(COMMUNITY, SettlementRules(version=2), DECEMBER)
    store.settlement.close(COMMUNITY, "2026-11", DECEMBER)
    assert store.remove_household("huis-a")
    (kept,) = store.settlement.closed(COMMUNITY, "2026-11")
    assert kept.rules.version == 2
    assert [h["household"] for h in kept.document["households"]] == ["huis-a", "huis-b"]
    assert store.settlement.community_of("huis-a") == COMMUNITY


def test_emergency_caps_count_as_limits(store: Store) -> None:
    _days(store, "huis-a", LIMIT_DAY, 1, 2000.0)
    message = Message(
        community=COMMUNITY,
        household="huis-a",
        sent_at=EVENING,
        body=EmergencyCommand(
            level=EmergencyLevel(2),
            reason=EmergencyReason("congestion"),
            starts_at=EVENING,
            expires_at=EVENING + timedelta(minutes=30),
            max_import_w=500.0,
        ),
    )
    store.record_sent(message, encode(message), EVENING)
    (statement,) = store.settlement.preview(COMMUNITY, "2026-11").statements
    assert statement.limited_quarters == 2
    assert statement.shortfall_kwh == pytest.approx(2 * (0.5 - 0.125))


def test_overlapping_reports_count_as_one_quarter(store: Store) -> None:
    end = LIMIT_DAY + timedelta(minutes=15)
    first = _report("huis-a", end, 4000.0)
    second = Message(
        community=COMMUNITY,
        household="huis-a",
        sent_at=end,
        message_id="other-id",
        body=Telemetry(measured_at=end, interval_s=900, power_w=(2000.0,), participating=True),
    )
    store.save_received([first, second], end)
    (only,) = store.settlement.preview(COMMUNITY, "2026-11").statements
    assert only.import_kwh == pytest.approx(0.75)  # the mean of 1.0 and 0.5 kWh
    assert only.uncovered_quarters == 30 * 96 - 1


def test_the_household_export_holds_its_settlement_records_only(store: Store) -> None:
    _month(store)
    noon_before = LIMIT_DAY - timedelta(hours=12)
    store.save_received([_baseline("huis-a", LIMIT_DAY, 96, 2800.0)], noon_before)
    store.settlement.close(COMMUNITY, "2026-11", DECEMBER)
    exported = store.export_household("huis-a")
    assert exported is not None
    settlement = exported["settlement"]
    assert len(settlement["quarter_figures"]) == 8  # one row per local day
    first = settlement["quarter_figures"][0]
    assert first["import_wh"][0] == pytest.approx(500.0)
    assert first["limit_w"][0] is None
    assert [b["day"] for b in settlement["committed_baselines"]] == ["2026-11-03"]
    (statement,) = settlement["statements"]
    assert statement["figures"]["household"] == "huis-a"
    assert "huis-b" not in str(exported)
