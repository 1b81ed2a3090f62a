"""Settlement records in the server's database: quarter-hour figures rolled up at ingest,
committed baselines, rules versions and closed statements (docs/settlement.md).

Figures are kept per household and local day, one row per day and *epoch*, as five
float32 arrays of the day's quarter hours (import Wh, export Wh, covered s, paused s, import
cap W, NaN: none). The epoch is the number of periods closed when the data arrived: close
number k settles everything that arrived before it (epoch < k), so a closed statement can
be recomputed exactly as of its close, and data that arrives later (a higher epoch) becomes
a correction at the next close. These tables outlive telemetry retention (`Store.prune`
never touches them) and a household's removal: they are the cooperative's accounts, kept
seven years (`SETTLEMENT_RETENTION`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import numpy as np

from netbewust_core.protocol.messages import (
    BaselineForecast,
    EmergencyCommand,
    LimitUpdate,
    Message,
    Telemetry,
)
from netbewust_core.settlement.baseline import BaselineCommitment
from netbewust_core.settlement.quarters import (
    Period,
    local_slot,
    month_period,
    telemetry_parts,
)
from netbewust_core.settlement.rules import (
    PeriodInput,
    PeriodSettlement,
    SettlementRules,
    from_sums,
    settle,
    settlement_timeline,
)
from netbewust_core.timegrid import QUARTER, floor_to_quarter_hour, local_day_bounds

if TYPE_CHECKING:
    import sqlite3
    import threading
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from netbewust_core.limits import ExternalLimit

SETTLEMENT_ZONE: Final = ZoneInfo("Europe/Amsterdam")  # periods are Dutch calendar months
SETTLEMENT_RETENTION: Final = timedelta(days=7 * 366)
FIELDS: Final = 5  # import_wh, export_wh, covered_s, paused_s, limit_w
DEFAULT_RULES: Final = SettlementRules(version=1)
MAX_LIMIT_SPAN: Final = timedelta(days=2)
# Telemetry settles only when measured at most this long before it arrived (a household's
# outbox holds hours, not weeks) and not after it arrived (beyond clock skew): a hostile
# timestamp cannot open rows for arbitrary days.
MAX_LATE: Final = timedelta(days=35)
MAX_EARLY: Final = timedelta(minutes=1)
MAX_COMMIT_AHEAD: Final = timedelta(days=2)  # a baseline commits tomorrow, not next year


class SettlementError(Exception):
    """A settlement request that cannot be honoured; the message says why."""


def _to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


# --- writes inside the store's ingest transaction --------------------------------------


def _load_day(
    db: sqlite3.Connection, household: str, day: date, epoch: int, quarters: int
) -> np.ndarray[Any, np.dtype[np.float32]]:
    row = db.execute(
        "SELECT figures FROM settlement_days WHERE household_id = ? AND day = ? AND epoch = ?",
        (household, day.isoformat(), epoch),
    ).fetchone()
    if row is None:
        figures = np.zeros((FIELDS, quarters), dtype=np.float32)
        figures[4] = np.nan
        return figures
    return np.frombuffer(row[0], dtype=np.float32).reshape(FIELDS, quarters).copy()


def _save_day(
    db: sqlite3.Connection,
    household: str,
    day: date,
    epoch: int,
    figures: np.ndarray[Any, np.dtype[np.float32]],
) -> None:
    db.execute(
        "INSERT INTO settlement_days VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE"
        " SET figures = excluded.figures",
        (household, day.isoformat(), epoch, figures.tobytes()),
    )


def _member(db: sqlite3.Connection, community: str, household: str) -> None:
    db.execute("INSERT OR IGNORE INTO settlement_members VALUES (?, ?)", (household, community))


def current_epoch(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT coalesce(max(close_number), 0) FROM settlement_statements")
    return int(row.fetchone()[0])


def roll_up_telemetry(
    db: sqlite3.Connection, community: str, household: str, telemetry: Telemetry
) -> None:
    """Add a (new, not redelivered) report's energy to its quarter hours."""
    parts = telemetry_parts(
        telemetry.measured_at,
        telemetry.interval_s,
        sum(telemetry.power_w),
        telemetry.participating,
    )
    epoch = current_epoch(db)
    _member(db, community, household)
    for (day, quarters), slots in _by_day([part.start for part in parts]).items():
        figures = _load_day(db, household, day, epoch, quarters)
        for index, position in slots:
            part = parts[position]
            figures[:4, index] += (part.import_wh, part.export_wh, part.covered_s, part.paused_s)
        _save_day(db, household, day, epoch, figures)


def record_limit(
    db: sqlite3.Connection, community: str, household: str, limit: ExternalLimit
) -> None:
    """The import cap in force per quarter hour from this limit on (the latest issued wins,
    as a limit replaces the previous one); quarters it leaves uncapped are not touched."""
    quarters: list[datetime] = []
    caps: list[float] = []
    for interval in limit.intervals:
        if interval.max_import_w is None:
            continue
        quarter = floor_to_quarter_hour(max(interval.start, limit.issued_at))
        # Limits are renewed within minutes; two days bounds a hostile far-off expiry.
        while quarter < min(interval.end, limit.expires_at, limit.issued_at + MAX_LIMIT_SPAN):
            quarters.append(quarter)
            caps.append(interval.max_import_w)
            quarter += QUARTER
    if not quarters:
        return
    epoch = current_epoch(db)
    _member(db, community, household)
    for (day, count), slots in _by_day(quarters).items():
        figures = _load_day(db, household, day, epoch, count)
        for index, position in slots:
            figures[4, index] = caps[position]
        _save_day(db, household, day, epoch, figures)


def commit_baseline(
    db: sqlite3.Connection, household: str, baseline: BaselineForecast, received_ms: int
) -> int:
    """Commit the whole local days a baseline covers that have not begun; the first
    commitment of a day stands. Returns how many days were refused as already committed."""
    received = _from_ms(received_ms)
    refused = 0
    day = baseline.start.astimezone(SETTLEMENT_ZONE).date()
    while True:
        start, end = local_day_bounds(day, SETTLEMENT_ZONE)
        if end > baseline.end:
            return refused
        if start >= baseline.start and received < start <= received + MAX_COMMIT_AHEAD:
            first = int((start - baseline.start) / QUARTER)
            values = baseline.power_w[first : first + int((end - start) / QUARTER)]
            inserted = db.execute(
                "INSERT OR IGNORE INTO settlement_baselines VALUES (?, ?, ?, ?)",
                (household, day.isoformat(), received_ms, json.dumps(values)),
            ).rowcount
            refused += 1 - inserted
        day += timedelta(days=1)


def _by_day(quarters: list[datetime]) -> dict[tuple[date, int], list[tuple[int, int]]]:
    """(local day, its quarter count) -> (index in the day, position in `quarters`)."""
    grouped: dict[tuple[date, int], list[tuple[int, int]]] = {}
    for position, quarter in enumerate(quarters):
        day, index, count = local_slot(quarter, SETTLEMENT_ZONE)
        grouped.setdefault((day, count), []).append((index, position))
    return grouped


# --- the ledger: rules, period computations and closes ---------------------------------


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    """One row of the ledger: a period's statement, or a correction of an earlier period
    made when `period` was closed."""

    close_number: int
    community_id: str
    period: str  # the period whose close made this row
    for_period: str  # == period for the statement; an earlier period for a correction
    closed_at: datetime
    rules: SettlementRules
    document: dict[str, Any]

    @property
    def is_correction(self) -> bool:
        return self.for_period != self.period


class SettlementLedger:
    """Reads and closes settlement periods over the store's connection and lock."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        lock: threading.RLock,
        transaction: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self._db = connection
        self._lock = lock
        self._transaction = transaction
        self.baseline_refusals = 0  # second commitments for a day, refused since start
        self.telemetry_out_of_range = 0  # reports too old or in the future: not settled

    def ingest(self, db: sqlite3.Connection, message: Message, received_ms: int) -> None:
        """Roll up a household's new message (the store passes no redelivery) inside the
        store's ingest transaction."""
        match message.body:
            case Telemetry() as body:
                received = _from_ms(received_ms)
                if not received - MAX_LATE <= body.measured_at <= received + MAX_EARLY:
                    self.telemetry_out_of_range += 1
                    return
                roll_up_telemetry(db, message.community, message.household, body)
            case BaselineForecast() as body:
                self.baseline_refusals += commit_baseline(db, message.household, body, received_ms)
            case _:
                pass

    def sent(self, db: sqlite3.Connection, messages: Sequence[Message]) -> None:
        """Record the import caps of limits and emergencies as they are sent."""
        for message in messages:
            match message.body:
                case LimitUpdate() as body:
                    limit = body.limit
                case EmergencyCommand() as body:
                    limit = body.as_limit(message.sent_at)
                case _:
                    continue
            record_limit(db, message.community, message.household, limit)

    def rules(self, community: str) -> SettlementRules:
        """The community's latest rules version (version 1, the defaults, until one is set)."""
        with self._lock:
            row = self._db.execute(
                "SELECT rules FROM settlement_rules WHERE community_id = ?"
                " ORDER BY version DESC LIMIT 1",
                (community,),
            ).fetchone()
        return DEFAULT_RULES if row is None else SettlementRules.from_document(json.loads(row[0]))

    def set_rules(self, community: str, rules: SettlementRules, now: datetime) -> None:
        """Add a rules version; versions only go up, so a statement's version stays meaningful."""
        with self._transaction() as db:
            self._require_community(db, community)
            latest = db.execute(
                "SELECT coalesce(max(version), ?) FROM settlement_rules WHERE community_id = ?",
                (DEFAULT_RULES.version, community),
            ).fetchone()[0]
            if rules.version <= latest:
                raise SettlementError(f"rules version must exceed {latest}")
            db.execute(
                "INSERT INTO settlement_rules VALUES (?, ?, ?, ?)",
                (community, rules.version, json.dumps(rules.to_document()), _to_ms(now)),
            )

    def preview(self, community: str, key: str) -> PeriodSettlement:
        """A period computed on everything received so far, under the current rules."""
        return settle(*self.preview_input(community, key))

    def preview_input(self, community: str, key: str) -> tuple[PeriodInput, SettlementRules]:
        """What `preview` settles: read under the lock; settling it needs no database (a
        host may do that off the database thread, as the Shapley split takes seconds)."""
        period = month_period(key, SETTLEMENT_ZONE)
        with self._lock:
            self._require_community(self._db, community)
            rules = self.rules(community)
            return self._read(community, period, rules, current_epoch(self._db) + 1), rules

    def recompute(self, community: str, key: str) -> PeriodSettlement:
        """A closed period computed again from the stored figures as of its close."""
        with self._lock:
            row = self._db.execute(
                "SELECT close_number, rules FROM settlement_statements"
                " WHERE community_id = ? AND for_period = ? AND period = for_period",
                (community, key),
            ).fetchone()
            if row is None:
                raise SettlementError(f"{key[:20]} is not closed")
            rules = SettlementRules.from_document(json.loads(row[1]))
            return self._compute(community, month_period(key, SETTLEMENT_ZONE), rules, row[0])

    def close(self, community: str, key: str, now: datetime) -> list[ClosedPeriod]:
        """Close a period that has ended: its statement, and corrections of earlier closed
        periods for data that arrived after they closed. Periods close in order."""
        period = month_period(key, SETTLEMENT_ZONE)
        if now < period.end:
            raise SettlementError(f"{key} has not ended")
        with self._transaction() as db:
            self._require_community(db, community)
            last = db.execute(
                "SELECT max(for_period) FROM settlement_statements WHERE community_id = ?",
                (community,),
            ).fetchone()[0]
            if last is not None and key <= last:
                raise SettlementError(f"{key} is not after the last closed period {last}")
            number = current_epoch(db) + 1
            rules = self.rules(community)
            rows = [
                ClosedPeriod(
                    number,
                    community,
                    key,
                    key,
                    now,
                    rules,
                    self._compute(community, period, rules, number).to_document(),
                )
            ]
            for earlier, through, earlier_rules in self._stale(db, community, number):
                before = self._compute(community, earlier, earlier_rules, through)
                after = self._compute(community, earlier, earlier_rules, number)
                rows.append(
                    ClosedPeriod(
                        number,
                        community,
                        key,
                        earlier.key,
                        now,
                        earlier_rules,
                        _difference(before, after),
                    )
                )
            db.executemany(
                "INSERT INTO settlement_statements VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        row.close_number,
                        row.community_id,
                        row.period,
                        row.for_period,
                        _to_ms(row.closed_at),
                        json.dumps(row.rules.to_document()),
                        json.dumps(row.document),
                    )
                    for row in rows
                ],
            )
        return rows

    def closed(self, community: str, key: str | None = None) -> list[ClosedPeriod]:
        """The community's ledger rows (those made when `key` closed), oldest first."""
        query = (
            "SELECT close_number, community_id, period, for_period, closed_at, rules, document"
            " FROM settlement_statements WHERE community_id = ?"
        )
        arguments: tuple[str, ...] = (community,)
        if key is not None:
            query += " AND period = ?"
            arguments = (community, key)
        with self._lock:
            rows = self._db.execute(
                query + " ORDER BY close_number, for_period", arguments
            ).fetchall()
        return [
            ClosedPeriod(
                close_number=row[0],
                community_id=row[1],
                period=row[2],
                for_period=row[3],
                closed_at=_from_ms(row[4]),
                rules=SettlementRules.from_document(json.loads(row[5])),
                document=json.loads(row[6]),
            )
            for row in rows
        ]

    def export(self, household: str) -> dict[str, Any]:
        """Everything settlement keeps about a household, for its data export."""
        with self._lock:
            days = self._db.execute(
                "SELECT day, epoch, figures FROM settlement_days WHERE household_id = ?"
                " ORDER BY day, epoch",
                (household,),
            ).fetchall()
            baselines = self._db.execute(
                "SELECT day, committed_at, power_w FROM settlement_baselines"
                " WHERE household_id = ? ORDER BY day",
                (household,),
            ).fetchall()
            community = self.community_of(household)
        statements = []
        for row in [] if community is None else self.closed(community):
            mine = [h for h in row.document["households"] if h["household"] == household]
            if mine:
                statements.append(
                    {
                        "period": row.period,
                        "for_period": row.for_period,
                        "closed_at": row.closed_at.isoformat(),
                        "rules_version": row.rules.version,
                        "figures": mine[0],
                    }
                )
        return {
            "quarter_figures": [
                {
                    "day": day,
                    "epoch": epoch,
                    **{
                        name: [None if np.isnan(v) else round(float(v), 3) for v in values]
                        for name, values in zip(
                            ("import_wh", "export_wh", "covered_s", "paused_s", "limit_w"),
                            np.frombuffer(blob, dtype=np.float32).reshape(FIELDS, -1),
                            strict=True,
                        )
                    },
                }
                for day, epoch, blob in days
            ],
            "committed_baselines": [
                {"day": day, "committed_at": _from_ms(at).isoformat(), "power_w": json.loads(p)}
                for day, at, p in baselines
            ],
            "statements": statements,
        }

    def community_of(self, household: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT community_id FROM settlement_members WHERE household_id = ?", (household,)
            ).fetchone()
        return None if row is None else str(row[0])

    # --- internals ----------------------------------------------------------------------

    @staticmethod
    def _require_community(db: sqlite3.Connection, community: str) -> None:
        if (
            db.execute("SELECT 1 FROM communities WHERE community_id = ?", (community,)).fetchone()
            is None
        ):
            raise SettlementError(f"no community {community[:64]!r}")

    def _stale(
        self, db: sqlite3.Connection, community: str, number: int
    ) -> list[tuple[Period, int, SettlementRules]]:
        """Closed periods with figures that arrived after their last computation."""
        stale = []
        for key, through, rules in db.execute(
            "SELECT for_period, max(close_number), rules FROM settlement_statements"
            " WHERE community_id = ? GROUP BY for_period ORDER BY for_period",
            (community,),
        ).fetchall():
            period = month_period(key, SETTLEMENT_ZONE)
            first, after = _day_range(period)
            late = db.execute(
                "SELECT 1 FROM settlement_days d JOIN settlement_members m USING (household_id)"
                " WHERE m.community_id = ? AND d.day >= ? AND d.day < ? AND d.epoch >= ?"
                " AND d.epoch < ? LIMIT 1",
                (community, first.isoformat(), after.isoformat(), through, number),
            ).fetchone()
            if late is not None:
                stale.append((period, through, SettlementRules.from_document(json.loads(rules))))
        return stale

    def _compute(
        self, community: str, period: Period, rules: SettlementRules, through: int
    ) -> PeriodSettlement:
        """Settle `period` on the figures that arrived before close number `through`."""
        return settle(self._read(community, period, rules, through), rules)

    def _read(
        self, community: str, period: Period, rules: SettlementRules, through: int
    ) -> PeriodInput:
        """The figures of `period` (and its look-back) that arrived before close `through`."""
        first, after = _day_range(period)
        lookback = first - timedelta(days=rules.baseline.lookback_days)
        db = self._db
        households = [
            row[0]
            for row in db.execute(
                "SELECT DISTINCT d.household_id FROM settlement_days d"
                " JOIN settlement_members m USING (household_id) WHERE m.community_id = ?"
                " AND d.day >= ? AND d.day < ? AND d.epoch < ? ORDER BY 1",
                (community, first.isoformat(), after.isoformat(), through),
            )
        ]
        timeline = settlement_timeline(period, SETTLEMENT_ZONE, rules.baseline)
        rows = {household: row for row, household in enumerate(households)}
        shape = (len(households), timeline.quarters)
        sums = np.zeros((4, *shape), dtype=np.float32)
        limit = np.full(shape, np.nan, dtype=np.float32)
        day_positions: dict[str, int] = {}
        for household, day, blob in db.execute(
            "SELECT d.household_id, d.day, d.figures FROM settlement_days d"
            " JOIN settlement_members m USING (household_id) WHERE m.community_id = ?"
            " AND d.day >= ? AND d.day < ? AND d.epoch < ?",
            (community, lookback.isoformat(), after.isoformat(), through),
        ):
            row = rows.get(household)
            if row is None:  # figures before the period only: no statement to make
                continue
            position = day_positions.get(day)
            if position is None:
                start, _ = local_day_bounds(date.fromisoformat(day), SETTLEMENT_ZONE)
                position = day_positions[day] = timeline.index_of(start)
            figures = np.frombuffer(blob, dtype=np.float32).reshape(FIELDS, -1)
            span = slice(position, position + figures.shape[1])
            sums[:, row, span] += figures[:4]
            limit[row, span] = np.fmin(limit[row, span], figures[4])
        commitments: dict[str, list[BaselineCommitment]] = {}
        for household, day, committed_at, power_w in db.execute(
            "SELECT b.household_id, b.day, b.committed_at, b.power_w FROM settlement_baselines b"
            " JOIN settlement_members m USING (household_id) WHERE m.community_id = ?"
            " AND b.day >= ? AND b.day < ?",
            (community, first.isoformat(), after.isoformat()),
        ):
            commitments.setdefault(household, []).append(
                BaselineCommitment(
                    day=date.fromisoformat(day),
                    committed_at=_from_ms(committed_at),
                    power_w=tuple(json.loads(power_w)),
                )
            )
        data = from_sums(
            period,
            timeline,
            households,
            import_wh=sums[0],
            export_wh=sums[1],
            covered_s=sums[2],
            paused_s=sums[3],
            limit_w=limit,
            commitments=commitments,
        )
        del sums, limit
        return data


def _day_range(period: Period) -> tuple[date, date]:
    """The period's first local day and the day after its last."""
    return (
        period.start.astimezone(SETTLEMENT_ZONE).date(),
        period.end.astimezone(SETTLEMENT_ZONE).date(),
    )


def _difference(before: PeriodSettlement, after: PeriodSettlement) -> dict[str, Any]:
    """A correction: what changed per household (after - before) in every figure."""
    old = {s.household: s.to_document() for s in before.statements}
    new = {s.household: s.to_document() for s in after.statements}
    households = []
    for household in sorted(old.keys() | new.keys()):
        was, now = old.get(household, {}), new.get(household, {})
        change: dict[str, Any] = {"household": household}
        for name, value in now.items() if now else was.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                change[name] = value - was.get(name, 0) if now else -value
        households.append(change)
    return {
        "period": after.period,
        "rules_version": after.rules_version,
        "saving_eur": after.saving_eur - before.saving_eur,
        "pool_cents": after.pool_cents - before.pool_cents,
        "distributed_cents": after.distributed_cents - before.distributed_cents,
        "credit_cents": after.credit_cents - before.credit_cents,
        "households": households,
    }
