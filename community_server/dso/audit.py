"""SQLite storage of every DSO signal and what happened to it (the audit trail).

The package applies its own migrations (table `dso_schema_migrations`) to the server's
database file, so it needs nothing from the main schema. Timestamps are integer
milliseconds UTC, as in the rest of the server. One connection guarded by a lock.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .signals import CapInterval, CapMode, CapSignal, SignalError, SignalSource

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

_LOGGER = logging.getLogger(__name__)

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE dso_signals (
            signal_id TEXT PRIMARY KEY,
            transformer_id TEXT NOT NULL,
            source TEXT NOT NULL,
            mode TEXT NOT NULL,
            issuer TEXT NOT NULL,
            request_id TEXT,
            body_sha256 TEXT,
            received_at INTEGER NOT NULL,
            start_at INTEGER NOT NULL,
            end_at INTEGER NOT NULL,
            intervals TEXT NOT NULL,
            cancelled_at INTEGER,
            UNIQUE (issuer, request_id)
        );
        CREATE INDEX dso_signals_by_transformer ON dso_signals (transformer_id, end_at);
        CREATE TABLE dso_audit (
            entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
            at INTEGER NOT NULL,
            action TEXT NOT NULL,
            source TEXT NOT NULL,
            issuer TEXT,
            transformer_id TEXT,
            signal_id TEXT,
            detail TEXT NOT NULL
        );
        CREATE INDEX dso_audit_by_time ON dso_audit (at);
        """,
    ),
)


class IdempotencyConflict(Exception):
    """The same request id was used before with a different body."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    action: str  # received, rejected, cancelled, link_lost, link_restored, fallback, ...
    source: str
    issuer: str | None
    transformer_id: str | None
    signal_id: str | None
    detail: str


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _intervals_json(intervals: tuple[CapInterval, ...]) -> str:
    return json.dumps(
        [
            [
                to_ms(i.start),
                to_ms(i.end),
                i.import_w,
                i.export_w,
                i.non_member_load_w,
                i.load_forecast_w,
            ]
            for i in intervals
        ]
    )


def _intervals_from_json(text: str) -> tuple[CapInterval, ...]:
    # Rows stored before the load forecast existed have five fields.
    return tuple(
        CapInterval(
            start=from_ms(start),
            end=from_ms(end),
            import_w=import_w,
            export_w=export_w,
            non_member_load_w=non_member,
            load_forecast_w=forecast[0] if forecast else None,
        )
        for start, end, import_w, export_w, non_member, *forecast in json.loads(text)
    )


_SIGNAL_COLUMNS = (
    "signal_id, transformer_id, source, mode, issuer, request_id, received_at, intervals, "
    "cancelled_at"
)


def _signal(row: tuple[Any, ...]) -> CapSignal:
    signal_id, transformer, source, mode, issuer, request_id, received, intervals, cancelled = row
    return CapSignal(
        signal_id=signal_id,
        transformer_id=transformer,
        source=SignalSource(source),
        mode=CapMode(mode),
        received_at=from_ms(received),
        intervals=_intervals_from_json(intervals),
        issuer=issuer,
        request_id=request_id,
        cancelled_at=None if cancelled is None else from_ms(cancelled),
    )


def _readable(rows: Iterable[tuple[Any, ...]]) -> list[CapSignal]:
    """The rows that still validate: one stored before today's checks (an import cap of
    1e300 W, say) is left out with a warning instead of failing every allocation round."""
    signals = []
    for row in rows:
        try:
            signals.append(_signal(row))
        except (SignalError, ValueError, OverflowError) as err:
            _LOGGER.warning("ignoring stored DSO signal %s: %s", str(row[0])[:80], err)
    return signals


class DsoStore:
    """Signals and audit entries; every write is one durable transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self._migrate()

    @classmethod
    def open(cls, path: Path | str) -> DsoStore:
        """A connection of its own to the server's database file (WAL allows both)."""
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA busy_timeout=5000")
        return cls(connection)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS dso_schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            applied = {
                row[0] for row in self._db.execute("SELECT version FROM dso_schema_migrations")
            }
            for version, script in MIGRATIONS:
                if version in applied:
                    continue
                # executescript commits first; the BEGIN inside makes the migration atomic.
                self._db.executescript(
                    f"BEGIN; {script} INSERT INTO dso_schema_migrations VALUES "
                    f"({version}, {to_ms(datetime.now(UTC))}); COMMIT;"
                )

    def schema_version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(version) FROM dso_schema_migrations").fetchone()
        return int(row[0] or 0)

    def save(self, signal: CapSignal, body_sha256: str | None = None) -> tuple[CapSignal, bool]:
        """Store a new signal; returns (the stored signal, whether it is new).

        A signal whose (issuer, request id) is already stored is not stored again: the
        earlier one is returned, unless the body differs (`IdempotencyConflict`).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                stored = self._existing(signal.issuer, signal.request_id)
                if stored is not None:
                    existing, existing_hash = stored
                    if body_sha256 is not None and existing_hash != body_sha256:
                        raise IdempotencyConflict(
                            f"request id {signal.request_id!r} was used for a different request"
                        )
                    self._db.execute("COMMIT")
                    return existing, False
                self._db.execute(
                    "INSERT INTO dso_signals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    (
                        signal.signal_id,
                        signal.transformer_id,
                        signal.source.value,
                        signal.mode.value,
                        signal.issuer,
                        signal.request_id,
                        body_sha256,
                        to_ms(signal.received_at),
                        to_ms(signal.start),
                        to_ms(signal.end),
                        _intervals_json(signal.intervals),
                    ),
                )
                self._audit_row(
                    signal.received_at,
                    "received",
                    signal.source.value,
                    signal.issuer,
                    signal.transformer_id,
                    signal.signal_id,
                    f"{signal.mode.value}: {len(signal.intervals)} intervals "
                    f"{signal.start.isoformat()} to {signal.end.isoformat()}",
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return signal, True

    def _existing(self, issuer: str, request_id: str | None) -> tuple[CapSignal, str | None] | None:
        if request_id is None:
            return None
        row = self._db.execute(
            f"SELECT {_SIGNAL_COLUMNS}, body_sha256 FROM dso_signals "
            "WHERE issuer = ? AND request_id = ?",
            (issuer, request_id),
        ).fetchone()
        return None if row is None else (_signal(row[:-1]), row[-1])

    def cancel(self, signal_id: str, issuer: str, now: datetime) -> CapSignal | None:
        """Cancel an issuer's own signal from `now` on; None if it has no such signal.

        Cancelling twice keeps the first cancel time (idempotent).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    f"SELECT {_SIGNAL_COLUMNS} FROM dso_signals WHERE signal_id = ? AND issuer = ?",
                    (signal_id, issuer),
                ).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                signal = _signal(row)
                if signal.cancelled_at is None:
                    self._db.execute(
                        "UPDATE dso_signals SET cancelled_at = ? WHERE signal_id = ?",
                        (to_ms(now), signal_id),
                    )
                    self._audit_row(
                        now,
                        "cancelled",
                        signal.source.value,
                        issuer,
                        signal.transformer_id,
                        signal_id,
                        "cancelled by the issuer",
                    )
                    signal = _signal(
                        self._db.execute(
                            f"SELECT {_SIGNAL_COLUMNS} FROM dso_signals WHERE signal_id = ?",
                            (signal_id,),
                        ).fetchone()
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return signal

    def signal(self, signal_id: str) -> CapSignal | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_SIGNAL_COLUMNS} FROM dso_signals WHERE signal_id = ?", (signal_id,)
            ).fetchone()
        return None if row is None else _signal(row)

    def signals_for(self, transformer_id: str, not_ended_by: datetime) -> list[CapSignal]:
        """Signals for a transformer that end after `not_ended_by`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_SIGNAL_COLUMNS} FROM dso_signals "
                "WHERE transformer_id = ? AND end_at > ? ORDER BY received_at, rowid",
                (transformer_id, to_ms(not_ended_by)),
            ).fetchall()
        return _readable(rows)

    def active_signals(self, source: SignalSource, now: datetime) -> list[CapSignal]:
        """Signals from one source that are neither cancelled nor over at `now`."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_SIGNAL_COLUMNS} FROM dso_signals "
                "WHERE source = ? AND end_at > ? AND cancelled_at IS NULL ORDER BY received_at",
                (source.value, to_ms(now)),
            ).fetchall()
        return _readable(rows)

    def record(
        self,
        at: datetime,
        action: str,
        source: str,
        detail: str,
        *,
        issuer: str | None = None,
        transformer_id: str | None = None,
        signal_id: str | None = None,
    ) -> None:
        """An audit entry for something that is not a stored signal (rejections, link state)."""
        with self._lock:
            self._audit_row(at, action, source, issuer, transformer_id, signal_id, detail)

    def _audit_row(  # noqa: PLR0917 - one positional per audit column
        self,
        at: datetime,
        action: str,
        source: str,
        issuer: str | None,
        transformer_id: str | None,
        signal_id: str | None,
        detail: str,
    ) -> None:
        self._db.execute(
            "INSERT INTO dso_audit (at, action, source, issuer, transformer_id, signal_id, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (to_ms(at), action, source, issuer, transformer_id, signal_id, detail[:1000]),
        )

    def audit(self, since: datetime, limit: int = 500) -> list[AuditEntry]:
        """Audit entries from `since` on, oldest first (for the dashboard)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, action, source, issuer, transformer_id, signal_id, detail "
                "FROM dso_audit WHERE at >= ? ORDER BY entry_id LIMIT ?",
                (to_ms(since), limit),
            ).fetchall()
        return [
            AuditEntry(from_ms(at), action, source, issuer, transformer, signal, detail)
            for at, action, source, issuer, transformer, signal, detail in rows
        ]
