"""The server's SQLite database: communities, households, secrets, and every message.

It also keeps the server's identity: a random `server_id` made once, when the database
is created (or first opened by a server that knows it), and kept for the database's
life. Households recognise their server by it when it turns up at another address.

WAL with `synchronous=FULL`: once a write method returns, its rows survive a crash or
power cut, so the MQTT side may acknowledge what it has saved. One connection, guarded
by a lock, so the event loop and the database worker thread may both use it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netbewust_core.allocation.heat_pumps import PumpFairness
from netbewust_core.collective.temperature_forecast import DailyLoad, TemperatureForecastError
from netbewust_core.protocol.messages import (
    MAX_SERIES_INTERVALS,
    QUARTER_HOUR,
    Ack,
    AckStatus,
    BaselineForecast,
    Capabilities,
    EmergencyCommand,
    LimitUpdate,
    Message,
    Presence,
    ProtocolError,
    ReleaseCommand,
    Telemetry,
    check_id,
    decode,
    encode,
)
from netbewust_core.timegrid import local_day_bounds

from .credentials import (
    hash_join_code,
    hash_password,
    new_join_code,
    new_password,
)
from .private_files import create_private
from .schema import MIGRATIONS
from .settlement_store import FIELDS as SETTLEMENT_FIELDS
from .settlement_store import SETTLEMENT_ZONE, SettlementLedger

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence


_LOGGER = logging.getLogger(__name__)
OPERATOR_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# One starting longer ago than the longest baseline has ended.
_LONGEST_BASELINE = QUARTER_HOUR * MAX_SERIES_INTERVALS


def new_server_id() -> str:
    """32 lowercase hex digits (128 random bits)."""
    return secrets.token_hex(16)


class StoreError(Exception):
    """An administrative request the database cannot honour; the message says why."""


class JoinCodeError(StoreError):
    """A join code that is unknown, used, revoked or expired."""


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Community:
    community_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Transformer:
    transformer_id: str
    community_id: str
    name: str
    capacity_w: float | None


@dataclass(frozen=True, slots=True)
class Household:
    household_id: str
    community_id: str
    transformer_id: str | None
    joined_at: datetime
    online: bool
    last_seen_at: datetime | None
    capabilities: Capabilities | None
    # Why the stored capabilities no longer decode (stored under older rules); the
    # allocation leaves such a member out with this reason instead of failing the round.
    capabilities_error: str | None = None
    heat_pump: HeatPumpState | None = None  # None: no heat-pump fact ever reported


@dataclass(frozen=True, slots=True)
class HeatPumpState:
    """What the household's telemetry said of its heat pumps: the latest comfort margin
    (minutes to the bottom of its band with the pumps off) and when it was measured, the
    end of the latest pause (None: never paused) and how many pauses it made."""

    comfort_margin_min: float | None
    comfort_margin_at: datetime | None
    paused_until: datetime | None
    pauses: int

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until


def starts_pause(held_until: datetime | None, telemetry: Telemetry) -> bool:
    """Whether this report begins a new pause: it reports one while none held at its
    moment (a pause reported again, or renewed while it lasts, is the same pause)."""
    until = telemetry.paused_until
    if until is None or until <= telemetry.measured_at:
        return False
    return held_until is None or held_until <= telemetry.measured_at


@dataclass(frozen=True, slots=True)
class IssuedJoinCode:
    code: str  # shown once; only its hash is stored
    community_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class HouseholdCredentials:
    household_id: str
    community_id: str
    username: str
    password: str  # returned once to the joining household; only its hash is stored

    def __repr__(self) -> str:
        return f"HouseholdCredentials({self.community_id}/{self.household_id}, password=***)"


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    username: str
    password_hash: str
    community_id: str
    household_id: str


@dataclass(frozen=True, slots=True)
class HttpLogin:
    """What a household's HTTP Basic password is checked against."""

    household_id: str
    http_password_hash: str | None  # argon2id; None until its first HTTP login
    broker_password_hash: str  # mosquitto's `$7$`, the fallback until then


@dataclass(frozen=True, slots=True)
class Operator:
    username: str
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True, slots=True)
class OperatorSession:
    username: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StoredTelemetry:
    household_id: str
    message_id: str
    telemetry: Telemetry
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StoredAck:
    household_id: str
    ref_id: str
    ack: Ack
    received_at: datetime


class Store:
    """All persistent state of one community server."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self._server_id = ""
        self.settlement = SettlementLedger(connection, self._lock, self._transaction)

    @property
    def server_id(self) -> str:
        """This server's identity, as stored; it never changes (read once on open)."""
        return self._server_id

    @classmethod
    def open(cls, path: Path | str) -> Store:
        if str(path) != ":memory:":
            create_private(Path(path))  # member data: 0600 from the start, -wal/-shm alike
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{path}: the database cannot use WAL (got {mode})")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout=5000")
            store = cls(connection)
            store._migrate()
        except BaseException:
            connection.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
            newest = max(version for version, _ in MIGRATIONS)
            if applied and max(applied) > newest:
                raise StoreError(
                    f"the database has schema version {max(applied)}; this server knows "
                    f"up to {newest}: upgrade the server"
                )
            for version, script in MIGRATIONS:
                if version in applied:
                    continue
                # executescript would commit our transaction, so run statement by statement.
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)",
                    (version, to_ms(datetime.now(UTC))),
                )
            db.execute(
                "INSERT OR IGNORE INTO server_identity VALUES (1, ?, ?)",
                (new_server_id(), to_ms(datetime.now(UTC))),
            )
            self._server_id = str(db.execute("SELECT server_id FROM server_identity").fetchone()[0])

    def schema_version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0])

    # --- communities and transformers ------------------------------------------------

    def create_community(self, community_id: str, name: str, now: datetime) -> Community:
        _check_admin_id(community_id, "community")
        with self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO communities VALUES (?, ?, ?)", (community_id, name, to_ms(now))
                )
            except sqlite3.IntegrityError:
                raise StoreError(f"community {community_id} already exists") from None
        return Community(community_id, name, now)

    def communities(self) -> list[Community]:
        with self._lock:
            rows = self._db.execute(
                "SELECT community_id, name, created_at FROM communities ORDER BY community_id"
            ).fetchall()
        return [Community(row[0], row[1], from_ms(row[2])) for row in rows]

    def create_transformer(
        self, transformer_id: str, community_id: str, name: str, capacity_w: float | None
    ) -> None:
        _check_admin_id(transformer_id, "transformer")
        if capacity_w is not None and not capacity_w > 0:
            raise StoreError("a transformer's capacity must be positive")
        with self._transaction() as db:
            self._require_community(db, community_id)
            try:
                db.execute(
                    "INSERT INTO transformers VALUES (?, ?, ?, ?)",
                    (transformer_id, community_id, name, capacity_w),
                )
            except sqlite3.IntegrityError:
                raise StoreError(f"transformer {transformer_id} already exists") from None

    def transformers(self) -> list[Transformer]:
        with self._lock:
            rows = self._db.execute(
                "SELECT transformer_id, community_id, name, capacity_w FROM transformers"
                " ORDER BY transformer_id"
            ).fetchall()
        return [Transformer(*row) for row in rows]

    def transformer(self, transformer_id: str) -> Transformer | None:
        with self._lock:
            row = self._db.execute(
                "SELECT transformer_id, community_id, name, capacity_w FROM transformers"
                " WHERE transformer_id = ?",
                (transformer_id,),
            ).fetchone()
        return None if row is None else Transformer(*row)

    def backup(self, target: Path) -> None:
        """A consistent copy of the live database (SQLite's online backup), written atomically."""
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        try:
            create_private(partial)
            copy = sqlite3.connect(partial)
            try:
                with self._lock:
                    self._db.backup(copy)
            finally:
                copy.close()
        except sqlite3.Error as err:
            partial.unlink(missing_ok=True)
            raise StoreError(f"cannot back up to {target}: {err}") from None
        os.replace(partial, target)

    @staticmethod
    def _require_community(db: sqlite3.Connection, community_id: str) -> None:
        found = db.execute(
            "SELECT 1 FROM communities WHERE community_id = ?", (community_id,)
        ).fetchone()
        if found is None:
            raise StoreError(f"no community {community_id}")

    # --- join codes and households ---------------------------------------------------

    def issue_join_code(
        self,
        community_id: str,
        now: datetime,
        valid_for: timedelta,
        transformer_id: str | None = None,
    ) -> IssuedJoinCode:
        if valid_for <= timedelta(0):
            raise StoreError("a join code must be valid for some time")
        code = new_join_code()
        expires_at = now + valid_for
        with self._transaction() as db:
            self._require_community(db, community_id)
            db.execute(
                "INSERT INTO join_codes (code_hash, community_id, transformer_id, issued_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?)",
                (hash_join_code(code), community_id, transformer_id, to_ms(now), to_ms(expires_at)),
            )
        return IssuedJoinCode(code, community_id, expires_at)

    def revoke_join_code(self, code: str, now: datetime) -> bool:
        """Revoke an unused code; False when it is unknown or already used or revoked."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE join_codes SET revoked_at = ?"
                " WHERE code_hash = ? AND used_at IS NULL AND revoked_at IS NULL",
                (to_ms(now), hash_join_code(code)),
            )
        return cursor.rowcount == 1

    def redeem_join_code(
        self, code: str, now: datetime, household_id: str | None = None
    ) -> HouseholdCredentials:
        """Exchange a join code, once, for a new household and its broker credentials."""
        household_id = household_id or f"hh-{secrets.token_hex(5)}"
        _check_admin_id(household_id, "household")
        password = new_password()
        with self._transaction() as db:
            row = db.execute(
                "SELECT community_id, transformer_id, expires_at, used_at, revoked_at"
                " FROM join_codes WHERE code_hash = ?",
                (hash_join_code(code),),
            ).fetchone()
            if row is None:
                raise JoinCodeError("unknown join code")
            community_id, transformer_id, expires_at, used_at, revoked_at = row
            if used_at is not None:
                raise JoinCodeError("join code already used")
            if revoked_at is not None:
                raise JoinCodeError("join code revoked")
            if to_ms(now) >= expires_at:
                raise JoinCodeError("join code expired")
            try:
                db.execute(
                    "INSERT INTO households (household_id, community_id, transformer_id,"
                    " joined_at) VALUES (?, ?, ?, ?)",
                    (household_id, community_id, transformer_id, to_ms(now)),
                )
            except sqlite3.IntegrityError:
                raise StoreError(f"household {household_id} already exists") from None
            db.execute(
                "INSERT INTO credentials (household_id, username, password_hash, created_at)"
                " VALUES (?, ?, ?, ?)",
                (household_id, household_id, hash_password(password), to_ms(now)),
            )
            db.execute(
                "UPDATE join_codes SET used_at = ?, household_id = ? WHERE code_hash = ?",
                (to_ms(now), household_id, hash_join_code(code)),
            )
        return HouseholdCredentials(household_id, community_id, household_id, password)

    def households(self, community_id: str | None = None) -> list[Household]:
        with self._lock:
            rows = self._db.execute(
                f"{_HOUSEHOLD_QUERY} WHERE ?1 IS NULL OR community_id = ?1 ORDER BY household_id",
                (community_id,),
            ).fetchall()
        return [_household(row) for row in rows]

    def household(self, household_id: str) -> Household | None:
        with self._lock:
            row = self._db.execute(
                f"{_HOUSEHOLD_QUERY} WHERE household_id = ?", (household_id,)
            ).fetchone()
        return None if row is None else _household(row)

    def remove_household(self, household_id: str) -> bool:
        """Delete a household with its credentials, telemetry, limits and acks."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM households WHERE household_id = ?", (household_id,))
        return cursor.rowcount == 1

    def http_login(self, username: str) -> HttpLogin | None:
        """The household with this user name and its password hashes (checked elsewhere)."""
        with self._lock:
            row = self._db.execute(
                "SELECT household_id, http_password_hash, password_hash FROM credentials"
                " WHERE username = ?",
                (username,),
            ).fetchone()
        return None if row is None else HttpLogin(*row)

    def replace_http_password_hash(self, household_id: str, new: str, old: str | None) -> None:
        """Store a household's better HTTP hash, unless its password changed meanwhile."""
        with self._transaction() as db:
            db.execute(
                "UPDATE credentials SET http_password_hash = ?"
                " WHERE household_id = ? AND http_password_hash IS ?",
                (new, household_id, old),
            )

    def broker_accounts(self) -> list[BrokerAccount]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.username, c.password_hash, h.community_id, h.household_id"
                " FROM credentials c JOIN households h USING (household_id)"
                " ORDER BY c.username"
            ).fetchall()
        return [BrokerAccount(*row) for row in rows]

    # --- messages --------------------------------------------------------------------

    def save_received(self, messages: Sequence[Message], received_at: datetime) -> list[Message]:
        """Store messages from households in one durable transaction.

        Duplicates (QoS 1 redelivery) are ignored. Returns the messages refused because
        their household is not (or no longer) a member.
        """
        refused: list[Message] = []
        received_ms = to_ms(received_at)
        with self._transaction() as db:
            for message in messages:
                member = db.execute(
                    "SELECT 1 FROM households WHERE household_id = ? AND community_id = ?",
                    (message.household, message.community),
                ).fetchone()
                if member is None:
                    refused.append(message)
                    continue
                if _save_one(db, message, received_ms):  # a redelivery is not rolled up twice
                    self.settlement.ingest(db, message, received_ms)
        return refused

    def record_sent(self, message: Message, payload: bytes, sent_at: datetime) -> None:
        """Store a limit or command before it is published."""
        self.record_sent_many([(message, payload)], sent_at)

    def record_sent_many(self, sent: Sequence[tuple[Message, bytes]], sent_at: datetime) -> None:
        """Store limits or commands in one transaction (an emergency burst is one fsync)."""
        rows = [
            (
                message.message_id,
                message.household,
                message.type_name,
                payload.decode(),
                _expiry_ms(message),
                to_ms(sent_at),
            )
            for message, payload in sent
        ]
        with self._transaction() as db:
            try:
                db.executemany("INSERT INTO sent VALUES (?, ?, ?, ?, ?, ?)", rows)
                self.settlement.sent(db, [message for message, _ in sent])
            except sqlite3.IntegrityError:
                households = ", ".join(sorted({message.household for message, _ in sent}))
                raise StoreError(f"unknown household among {households[:200]}") from None

    def latest_sent(self, household_id: str, kind: str) -> Message | None:
        with self._lock:
            row = self._db.execute(
                "SELECT payload FROM sent WHERE household_id = ? AND kind = ?"
                " ORDER BY sent_at DESC, rowid DESC LIMIT 1",
                (household_id, kind),
            ).fetchone()
        return None if row is None else decode(row[0])

    def acks_for(self, ref_id: str) -> list[StoredAck]:
        with self._lock:
            rows = self._db.execute(
                "SELECT household_id, ref_id, status, reason, received_at FROM acks"
                " WHERE ref_id = ? ORDER BY received_at",
                (ref_id,),
            ).fetchall()
        return [
            StoredAck(
                household_id=row[0],
                ref_id=row[1],
                ack=Ack(ref_id=row[1], status=AckStatus(row[2]), reason=row[3]),
                received_at=from_ms(row[4]),
            )
            for row in rows
        ]

    def telemetry(self, household_id: str, since: datetime | None = None) -> list[StoredTelemetry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id, measured_at, interval_s, power_l1_w, power_l2_w,"
                " power_l3_w, participating, received_at, outdoor_c FROM telemetry"
                " WHERE household_id = ? AND measured_at >= ? ORDER BY measured_at",
                (household_id, 0 if since is None else to_ms(since)),
            ).fetchall()
        return [_telemetry(household_id, row) for row in rows]

    def latest_baseline(self, household_id: str) -> BaselineForecast | None:
        with self._lock:
            row = self._db.execute(
                "SELECT start_at, power_w FROM baselines WHERE household_id = ?"
                " ORDER BY start_at DESC, received_at DESC LIMIT 1",
                (household_id,),
            ).fetchone()
        if row is None:
            return None
        return BaselineForecast(start=from_ms(row[0]), power_w=tuple(json.loads(row[1])))

    def outdoor_means(self, since: datetime, until: datetime, min_covered_s: float) -> list[float]:
        """Each household's mean reported outdoor temperature over the reports whose
        interval ends in (since, until], weighted by their intervals, when those carrying
        one cover `min_covered_s`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT SUM(outdoor_c * interval_s) / SUM(interval_s) FROM telemetry"
                " WHERE measured_at > ? AND measured_at <= ? AND outdoor_c IS NOT NULL"
                " GROUP BY household_id HAVING SUM(interval_s) >= ?",
                (to_ms(since), to_ms(until), min_covered_s),
            ).fetchall()
        return [row[0] for row in rows]

    def quarter_hour_load(
        self, transformer_id: str, since: datetime, until: datetime
    ) -> list[tuple[str, datetime, float]]:
        """Each member's mean measured grid power (W) per quarter hour starting in
        [since, until), as (household, quarter start, W), for quarters its reports cover:
        the settlement roll-up's energy over the time covered (`settlement_store.py`; it
        keeps a day in one row, where the raw telemetry would be thousands)."""
        first = since.astimezone(SETTLEMENT_ZONE).date()
        last = until.astimezone(SETTLEMENT_ZONE).date()
        with self._lock:
            rows = self._db.execute(
                "SELECT d.household_id, d.day, d.figures FROM settlement_days d"
                " JOIN households h ON h.household_id = d.household_id"
                " WHERE h.transformer_id = ? AND d.day >= ? AND d.day <= ?",
                (transformer_id, first.isoformat(), last.isoformat()),
            ).fetchall()
        sums: dict[tuple[str, datetime], list[float]] = {}  # net Wh, covered s
        for household, day, blob in rows:  # a day may have rows of several epochs
            start, _ = local_day_bounds(date.fromisoformat(day), SETTLEMENT_ZONE)
            figures = np.frombuffer(blob, dtype=np.float32).reshape(SETTLEMENT_FIELDS, -1)
            covered = np.flatnonzero(figures[2] > 0)
            net_wh = figures[0, covered].astype(float) - figures[1, covered]
            for index, wh, seconds in zip(
                covered.tolist(), net_wh.tolist(), figures[2, covered].tolist(), strict=True
            ):
                quarter = start + index * QUARTER_HOUR
                if since <= quarter < until:
                    part = sums.setdefault((household, quarter), [0.0, 0.0])
                    part[0] += wh
                    part[1] += seconds
        return [(h, q, wh * 3600 / covered_s) for (h, q), (wh, covered_s) in sums.items()]

    def baselines_for(
        self, transformer_id: str, since: datetime, until: datetime
    ) -> list[tuple[str, datetime, list[float]]]:
        """The members' baselines (household, start, W per quarter hour; as stored, so
        not validated again) that may be the latest covering a quarter in [since,
        until): each member's last starting by `since` and those starting after it, oldest
        start first (of two with one start, the later received last)."""
        with self._lock:
            rows = self._db.execute(
                "WITH latest AS (SELECT household_id, MAX(start_at) AS start_at FROM baselines"
                " WHERE start_at >= ? AND start_at <= ? GROUP BY household_id)"
                " SELECT b.household_id, b.start_at, b.power_w FROM baselines b"
                " JOIN households h ON h.household_id = b.household_id"
                " LEFT JOIN latest l ON l.household_id = b.household_id"
                " WHERE h.transformer_id = ? AND b.start_at >= COALESCE(l.start_at, ?)"
                " AND b.start_at < ? ORDER BY b.start_at, b.received_at",
                (
                    to_ms(since - _LONGEST_BASELINE),
                    to_ms(since),
                    transformer_id,
                    to_ms(since),
                    to_ms(until),
                ),
            ).fetchall()
        return [(row[0], from_ms(row[1]), json.loads(row[2])) for row in rows]

    # --- operators and their dashboard sessions --------------------------------------

    def add_operator(self, username: str, password_hash: str, now: datetime) -> None:
        _check_operator_name(username)
        with self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO operators VALUES (?, ?, ?, ?)",
                    (username, password_hash, to_ms(now), to_ms(now)),
                )
            except sqlite3.IntegrityError:
                raise StoreError(f"operator {username} already exists") from None

    def remove_operator(self, username: str) -> bool:
        """Delete an operator; their sessions end with them."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM operators WHERE username = ?", (username,))
        return cursor.rowcount == 1

    def set_operator_password(self, username: str, password_hash: str, now: datetime) -> bool:
        """A new password ends every session of that operator; False: no such operator."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE operators SET password_hash = ?, password_changed_at = ?"
                " WHERE username = ?",
                (password_hash, to_ms(now), username),
            )
            db.execute("DELETE FROM operator_sessions WHERE username = ?", (username,))
        return cursor.rowcount == 1

    def operator_password_hash(self, username: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash FROM operators WHERE username = ?", (username,)
            ).fetchone()
        return None if row is None else str(row[0])

    def replace_operator_password_hash(self, username: str, new: str, old: str) -> None:
        """Store a better hash of the same password, unless it changed meanwhile."""
        with self._transaction() as db:
            db.execute(
                "UPDATE operators SET password_hash = ? WHERE username = ? AND password_hash = ?",
                (new, username, old),
            )

    def operators(self) -> list[Operator]:
        with self._lock:
            rows = self._db.execute(
                "SELECT username, created_at, password_changed_at FROM operators ORDER BY username"
            ).fetchall()
        return [Operator(row[0], from_ms(row[1]), from_ms(row[2])) for row in rows]

    def start_session(
        self, token_sha256: str, username: str, now: datetime, expires_at: datetime
    ) -> None:
        """Record a new session (and forget expired ones)."""
        with self._transaction() as db:
            db.execute("DELETE FROM operator_sessions WHERE expires_at <= ?", (to_ms(now),))
            db.execute(
                "INSERT INTO operator_sessions VALUES (?, ?, ?, ?)",
                (token_sha256, username, to_ms(now), to_ms(expires_at)),
            )

    def session(self, token_sha256: str, now: datetime) -> OperatorSession | None:
        """The operator session with this token hash, unless it has expired."""
        with self._lock:
            row = self._db.execute(
                "SELECT username, created_at, expires_at FROM operator_sessions"
                " WHERE token_sha256 = ? AND expires_at > ?",
                (token_sha256, to_ms(now)),
            ).fetchone()
        return None if row is None else OperatorSession(row[0], from_ms(row[1]), from_ms(row[2]))

    def end_session(self, token_sha256: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM operator_sessions WHERE token_sha256 = ?", (token_sha256,))

    # --- a household's own data --------------------------------------------------------

    def export_household(self, household_id: str) -> dict[str, Any] | None:
        """Everything stored about a household (no secrets), as one JSON-ready document."""
        household = self.household(household_id)
        if household is None:
            return None
        with self._lock:
            baselines = self._db.execute(
                "SELECT message_id, start_at, power_w, received_at FROM baselines"
                " WHERE household_id = ? ORDER BY start_at",
                (household_id,),
            ).fetchall()
            sent = self._db.execute(
                "SELECT message_id, kind, payload, expires_at, sent_at FROM sent"
                " WHERE household_id = ? ORDER BY sent_at, rowid",
                (household_id,),
            ).fetchall()
            acks = self._db.execute(
                "SELECT message_id, ref_id, status, reason, received_at FROM acks"
                " WHERE household_id = ? ORDER BY received_at",
                (household_id,),
            ).fetchall()
            capabilities = self._db.execute(
                "SELECT capabilities FROM households WHERE household_id = ?", (household_id,)
            ).fetchone()[0]
        fairness = self.pump_fairness([household_id])
        return {
            "household": household.household_id,
            "community": household.community_id,
            "transformer": household.transformer_id,
            "joined_at": _iso(household.joined_at),
            "online": household.online,
            "last_seen_at": _iso(household.last_seen_at),
            "settlement": self.settlement.export(household_id),  # kept after removal
            "capabilities": None if capabilities is None else json.loads(capabilities),
            "heat_pump": _heat_pump_document(household.heat_pump),
            "heat_pump_curtailments": {
                "times_curtailed": fairness.times_curtailed.get(household_id, 0),
                "curtailed_since": _iso(fairness.curtailed_since.get(household_id)),
                "released_at": _iso(fairness.released_at.get(household_id)),
            },
            "telemetry": [
                {
                    "message_id": stored.message_id,
                    "measured_at": _iso(stored.telemetry.measured_at),
                    "interval_s": stored.telemetry.interval_s,
                    "power_w": list(stored.telemetry.power_w),
                    "participating": stored.telemetry.participating,
                    "outdoor_temperature_c": stored.telemetry.outdoor_temperature_c,
                    "received_at": _iso(stored.received_at),
                }
                for stored in self.telemetry(household_id)
            ],
            "baselines": [
                {
                    "message_id": row[0],
                    "start": _iso(from_ms(row[1])),
                    "power_w": json.loads(row[2]),
                    "received_at": _iso(from_ms(row[3])),
                }
                for row in baselines
            ],
            "sent": [
                {
                    "message_id": row[0],
                    "kind": row[1],
                    "message": json.loads(row[2]),
                    "expires_at": _iso(None if row[3] is None else from_ms(row[3])),
                    "sent_at": _iso(from_ms(row[4])),
                }
                for row in sent
            ],
            "acks": [
                {
                    "message_id": row[0],
                    "ref_id": row[1],
                    "status": row[2],
                    "reason": row[3],
                    "received_at": _iso(from_ms(row[4])),
                }
                for row in acks
            ],
        }

    def prune(self, now: datetime, retention: timedelta) -> int:
        """Delete telemetry and baselines older than `retention`; returns rows deleted."""
        cutoff = to_ms(now - retention)
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM telemetry WHERE measured_at < ?", (cutoff,)).rowcount
            deleted += db.execute("DELETE FROM baselines WHERE start_at < ?", (cutoff,)).rowcount
        return deleted

    # --- daily load per transformer (the temperature relation's history) ---------------

    def save_daily_load(self, transformer_id: str, load: DailyLoad) -> None:
        """Store (or replace) one transformer's day."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO daily_load VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    transformer_id,
                    load.day.isoformat(),
                    load.members,
                    load.heat_pumps,
                    load.energy_kwh,
                    load.evening_peak_w,
                    load.mean_outdoor_c,
                ),
            )

    def daily_loads(self, transformer_id: str) -> list[DailyLoad]:
        """A transformer's stored days, oldest first; a row that no longer validates is
        left out (logged)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT day, members, heat_pumps, energy_kwh, evening_peak_w, mean_outdoor_c"
                " FROM daily_load WHERE transformer_id = ? ORDER BY day",
                (transformer_id,),
            ).fetchall()
        loads = []
        for day, members, pumps, energy, peak, outdoor in rows:
            try:
                loads.append(
                    DailyLoad(
                        day=date.fromisoformat(day),
                        members=members,
                        heat_pumps=pumps,
                        energy_kwh=energy,
                        evening_peak_w=peak,
                        mean_outdoor_c=outdoor,
                    )
                )
            except (TemperatureForecastError, TypeError, ValueError) as err:
                _LOGGER.warning("daily load %s %s unreadable: %s", transformer_id, day, err)
        return loads

    def prune_daily_loads(self, before: date) -> int:
        """Delete the days before `before`; returns rows deleted."""
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM daily_load WHERE day < ?", (before.isoformat(),)
            ).rowcount

    # --- heat-pump fairness (the live allocation's, kept across restarts) ---------------

    def pump_fairness(self, household_ids: Sequence[str]) -> PumpFairness:
        """The stored fairness of these households' pumps (none stored: never curtailed)."""
        wanted = set(household_ids)
        with self._lock:
            rows = self._db.execute(
                "SELECT household_id, times_curtailed, curtailed_since, released_at"
                " FROM heat_pump_curtailments"
            ).fetchall()
        rows = [row for row in rows if row[0] in wanted]
        return PumpFairness(
            times_curtailed={hid: times for hid, times, _, _ in rows if times},
            curtailed_now=frozenset(hid for hid, _, since, _ in rows if since is not None),
            curtailed_since={hid: from_ms(since) for hid, _, since, _ in rows if since is not None},
            released_at={hid: from_ms(at) for hid, _, _, at in rows if at is not None},
        )

    def save_pump_fairness(self, fairness: PumpFairness, household_ids: Iterable[str]) -> None:
        """Store the fairness of these households (those whose pumps changed); a household
        removed meanwhile is skipped."""
        rows = [
            (
                hid,
                fairness.times_curtailed.get(hid, 0),
                _ms_or_none(fairness.curtailed_since.get(hid))
                if hid in fairness.curtailed_now
                else None,
                _ms_or_none(fairness.released_at.get(hid)),
            )
            for hid in household_ids
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO heat_pump_curtailments SELECT ?1, ?2, ?3, ?4"
                " WHERE EXISTS (SELECT 1 FROM households WHERE household_id = ?1)"
                " ON CONFLICT (household_id) DO UPDATE SET"
                " times_curtailed = excluded.times_curtailed,"
                " curtailed_since = excluded.curtailed_since, released_at = excluded.released_at",
                rows,
            )


_HOUSEHOLD_QUERY = (
    "SELECT household_id, community_id, transformer_id, joined_at, online, last_seen_at,"
    " capabilities, comfort_margin_min, comfort_margin_at, paused_until, pauses FROM households"
)


def _expiry_ms(message: Message) -> int | None:
    match message.body:
        case LimitUpdate():
            return to_ms(message.body.limit.expires_at)
        case EmergencyCommand():
            return to_ms(message.body.expires_at)
        case ReleaseCommand():
            return None
        case _:
            raise StoreError(f"a server does not send {message.type_name} messages")


def _heat_pump_document(state: HeatPumpState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "comfort_margin_min": state.comfort_margin_min,
        "comfort_margin_at": _iso(state.comfort_margin_at),
        "paused_until": _iso(state.paused_until),
        "pauses": state.pauses,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def _ms_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


def _check_operator_name(username: str) -> None:
    if OPERATOR_NAME.fullmatch(username) is None:
        raise StoreError(
            "an operator name is 1-64 characters: a-z, 0-9, '.', '_' or '-', starting with a"
            " letter or digit"
        )


def _check_admin_id(value: str, name: str) -> None:
    try:
        check_id(value, name)
    except ProtocolError as err:
        raise StoreError(err.reason) from None


def _save_one(db: sqlite3.Connection, message: Message, received_ms: int) -> bool:
    """Store one message; False when it is a redelivered report or baseline already stored."""
    household = message.household
    sent_ms = to_ms(message.sent_at)
    db.execute(
        "UPDATE households SET last_seen_at = max(coalesce(last_seen_at, 0), ?)"
        " WHERE household_id = ?",
        (received_ms, household),
    )
    match message.body:
        case Telemetry() as body:
            phases = (*body.power_w, None, None)[:3]
            inserted = db.execute(
                "INSERT OR IGNORE INTO telemetry VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    household,
                    message.message_id,
                    to_ms(body.measured_at),
                    body.interval_s,
                    *phases,
                    body.participating,
                    received_ms,
                    body.outdoor_temperature_c,
                ),
            ).rowcount
            if inserted:  # a redelivery is not a second pause
                _save_heat_pump(db, household, body)
            return bool(inserted)
        case BaselineForecast() as body:
            return bool(
                db.execute(
                    "INSERT OR IGNORE INTO baselines VALUES (?, ?, ?, ?, ?)",
                    (
                        household,
                        message.message_id,
                        to_ms(body.start),
                        json.dumps(body.power_w),
                        received_ms,
                    ),
                ).rowcount
            )
        case Ack() as body:
            db.execute(
                "INSERT OR IGNORE INTO acks VALUES (?, ?, ?, ?, ?, ?)",
                (household, message.message_id, body.ref_id, body.status, body.reason, received_ms),
            )
        case Capabilities():
            # Only a newer declaration replaces the stored one (redelivery can reorder).
            db.execute(
                "UPDATE households SET capabilities = ?, capabilities_sent_at = ?"
                " WHERE household_id = ? AND coalesce(capabilities_sent_at, 0) <= ?",
                (encode(message).decode(), sent_ms, household, sent_ms),
            )
        case Presence() as body:
            db.execute(
                "UPDATE households SET online = ? WHERE household_id = ?", (body.online, household)
            )
        case LimitUpdate() | EmergencyCommand() | ReleaseCommand():
            raise StoreError(f"a household cannot send {message.type_name} messages")
    return True


def _save_heat_pump(db: sqlite3.Connection, household: str, body: Telemetry) -> None:
    """The comfort margin and the pause of the newest report (an older one, redelivered
    late, changes neither): a pause is counted when it begins, and a report with the
    margin and no pause ends it early (the household reads both or neither)."""
    measured_ms = to_ms(body.measured_at)
    held, newest_ms = db.execute(
        "SELECT paused_until, comfort_margin_at FROM households WHERE household_id = ?",
        (household,),
    ).fetchone()
    if newest_ms is not None and measured_ms < newest_ms:
        return
    if body.comfort_margin_min is not None or body.paused_until is not None:
        db.execute(
            "UPDATE households SET comfort_margin_min = ?, comfort_margin_at = ?"
            " WHERE household_id = ?",
            (body.comfort_margin_min, measured_ms, household),
        )
    if body.paused_until is not None:
        begins = starts_pause(None if held is None else from_ms(held), body)
        db.execute(
            "UPDATE households SET paused_until = ?, pauses = pauses + ? WHERE household_id = ?",
            (to_ms(body.paused_until), begins, household),
        )
    elif body.comfort_margin_min is not None and held is not None and held > measured_ms:
        db.execute(
            "UPDATE households SET paused_until = ? WHERE household_id = ?",
            (measured_ms, household),
        )


def _household(row: tuple[Any, ...]) -> Household:
    (
        household_id,
        community_id,
        transformer_id,
        joined_at,
        online,
        last_seen_at,
        caps,
        margin,
        margin_at,
        paused_until,
        pauses,
    ) = row
    try:
        body = None if caps is None else decode(caps).body
        error = None
    except (ValueError, OverflowError) as err:  # ProtocolError is a ValueError
        body, error = None, f"stored capabilities do not decode: {err}"[:300]
    return Household(
        household_id=household_id,
        community_id=community_id,
        transformer_id=transformer_id,
        joined_at=from_ms(joined_at),
        online=bool(online),
        last_seen_at=None if last_seen_at is None else from_ms(last_seen_at),
        capabilities=body if isinstance(body, Capabilities) else None,
        capabilities_error=error,
        heat_pump=None
        if margin_at is None and paused_until is None
        else HeatPumpState(
            comfort_margin_min=margin,
            comfort_margin_at=None if margin_at is None else from_ms(margin_at),
            paused_until=None if paused_until is None else from_ms(paused_until),
            pauses=pauses,
        ),
    )


def _telemetry(household_id: str, row: tuple[Any, ...]) -> StoredTelemetry:
    message_id, measured_at, interval_s, l1, l2, l3, participating, received_at, outdoor = row
    return StoredTelemetry(
        household_id=household_id,
        message_id=message_id,
        telemetry=Telemetry(
            measured_at=from_ms(measured_at),
            interval_s=interval_s,
            power_w=tuple(power for power in (l1, l2, l3) if power is not None),
            participating=bool(participating),
            outdoor_temperature_c=outdoor,
        ),
        received_at=from_ms(received_at),
    )
