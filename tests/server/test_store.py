"""The server's SQLite store, on real database files."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from community_server.credentials import hash_join_code, verify_password
from community_server.schema import MIGRATIONS
from community_server.store import JoinCodeError, Store, StoreError
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import (
    Ack,
    AckStatus,
    BaselineForecast,
    Capabilities,
    LimitUpdate,
    Message,
    Presence,
    Telemetry,
    encode,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REPO = Path(__file__).parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "server.db")
    opened.create_community("wijk-1", "Wijk Eén", NOW)
    return opened


def _join(store: Store, household_id: str = "huis-1") -> str:
    code = store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
    return store.redeem_join_code(code, NOW, household_id).household_id


def _telemetry(household: str, index: int, community: str = "wijk-1") -> Message:
    return Message(
        community=community,
        household=household,
        sent_at=NOW + timedelta(seconds=10 * index),
        message_id=f"t{index}",
        body=Telemetry(
            measured_at=NOW + timedelta(seconds=10 * index),
            interval_s=10,
            power_w=(float(index), -50.0, 3.5),
            participating=True,
        ),
    )


def test_open_sets_wal_full_sync_and_records_migrations(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    Store.open(path).close()
    reopened = Store.open(path)  # migrating twice is a no-op
    assert reopened.schema_version() == MIGRATIONS[-1][0]
    reopened.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    raw.execute("INSERT INTO schema_migrations VALUES (99, 0)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store.open(path)


def test_the_server_id_is_made_once_and_survives_restarts(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    first = Store.open(path)
    server_id = first.server_id
    assert re.fullmatch(r"[0-9a-f]{32}", server_id)
    first.close()
    for _ in range(2):
        reopened = Store.open(path)
        assert reopened.server_id == server_id
        reopened.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT server_id FROM server_identity").fetchall() == [(server_id,)]
    raw.close()
    # Another database is another server.
    other = Store.open(tmp_path / "other.db")
    assert other.server_id != server_id
    other.close()


def test_a_database_from_before_the_server_id_gets_one(tmp_path: Path) -> None:
    """A database with only the first migration (an older server's) is migrated, data kept."""
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    version, script = MIGRATIONS[0]
    assert version == 1
    raw.executescript(script)
    raw.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    raw.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    raw.execute("INSERT INTO communities VALUES ('wijk-1', 'Wijk Eén', 0)")
    raw.commit()
    assert raw.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'server_identity'"
    ).fetchone() == (0,)
    raw.close()
    store = Store.open(path)
    server_id = store.server_id
    assert re.fullmatch(r"[0-9a-f]{32}", server_id)
    assert store.schema_version() == MIGRATIONS[-1][0]
    assert [c.community_id for c in store.communities()] == ["wijk-1"]
    store.close()
    reopened = Store.open(path)
    assert reopened.server_id == server_id
    reopened.close()


def test_store_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        Store.open(path)


def test_communities_and_transformers(store: Store) -> None:
    store.create_transformer("trafo-a", "wijk-1", "Trafo A", 400_000.0)
    assert [c.community_id for c in store.communities()] == ["wijk-1"]
    with pytest.raises(StoreError, match="already exists"):
        store.create_community("wijk-1", "again", NOW)
    with pytest.raises(StoreError, match="no community"):
        store.create_transformer("trafo-b", "nowhere", "B", None)
    with pytest.raises(StoreError):
        store.create_community("Wijk/#", "bad id", NOW)
    with pytest.raises(StoreError, match="positive"):
        store.create_transformer("trafo-c", "wijk-1", "C", -1.0)


def test_join_code_is_single_use_hashed_and_gives_credentials(store: Store) -> None:
    issued = store.issue_join_code("wijk-1", NOW, timedelta(hours=1))
    credentials = store.redeem_join_code(issued.code.lower(), NOW + timedelta(minutes=5))
    assert credentials.community_id == "wijk-1"
    assert credentials.password not in repr(credentials)
    with pytest.raises(JoinCodeError, match="already used"):
        store.redeem_join_code(issued.code, NOW + timedelta(minutes=6))
    [account] = store.broker_accounts()
    assert account.username == credentials.household_id
    assert verify_password(credentials.password, account.password_hash)
    assert not verify_password("wrong", account.password_hash)
    dump = "\n".join(store._db.iterdump())
    assert issued.code not in dump
    assert issued.code.replace("-", "") not in dump
    assert credentials.password not in dump
    assert hash_join_code(issued.code) in dump


def test_join_codes_expire_and_can_be_revoked(store: Store) -> None:
    expiring = store.issue_join_code("wijk-1", NOW, timedelta(minutes=10))
    with pytest.raises(JoinCodeError, match="expired"):
        store.redeem_join_code(expiring.code, NOW + timedelta(minutes=10))
    revoked = store.issue_join_code("wijk-1", NOW, timedelta(minutes=10))
    assert store.revoke_join_code(revoked.code, NOW)
    assert not store.revoke_join_code(revoked.code, NOW)
    with pytest.raises(JoinCodeError, match="revoked"):
        store.redeem_join_code(revoked.code, NOW)
    with pytest.raises(JoinCodeError, match="unknown"):
        store.redeem_join_code("AAAA-BBBB-CCCC", NOW)
    with pytest.raises(StoreError, match="no community"):
        store.issue_join_code("elsewhere", NOW, timedelta(minutes=10))
    with pytest.raises(StoreError):
        store.issue_join_code("wijk-1", NOW, timedelta(0))


def test_a_failed_redemption_leaves_the_code_unused(store: Store) -> None:
    _join(store, "huis-1")
    code = store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    with pytest.raises(StoreError, match="already exists"):
        store.redeem_join_code(code, NOW, "huis-1")
    assert store.redeem_join_code(code, NOW, "huis-2").household_id == "huis-2"


def test_received_messages_are_stored_once_and_unknown_households_refused(store: Store) -> None:
    _join(store)
    batch = [_telemetry("huis-1", i) for i in range(5)]
    stranger = _telemetry("huis-9", 1)
    other_community = _telemetry("huis-1", 7, community="wijk-2")
    refused = store.save_received([*batch, stranger, other_community], NOW)
    assert refused == [stranger, other_community]
    assert store.save_received(batch, NOW + timedelta(seconds=1)) == []  # QoS 1 redelivery
    rows = store.telemetry("huis-1")
    assert [row.message_id for row in rows] == [f"t{i}" for i in range(5)]
    assert rows[3].telemetry == batch[3].body
    assert rows[3].received_at == NOW


def test_capabilities_presence_baseline_and_acks(store: Store) -> None:
    _join(store)
    older = Capabilities(phases=1, fuse_current_a=25.0)
    newer = Capabilities(phases=3, fuse_current_a=25.0, tariff_class="3x25A")
    baseline = BaselineForecast(start=NOW, power_w=(400.0,) * 96)
    messages = [
        Message(community="wijk-1", household="huis-1", sent_at=NOW, body=newer),
        Message(community="wijk-1", household="huis-1", sent_at=NOW, body=Presence(online=True)),
        Message(community="wijk-1", household="huis-1", sent_at=NOW, body=baseline),
        Message(
            community="wijk-1",
            household="huis-1",
            sent_at=NOW,
            body=Ack(ref_id="limit-1", status=AckStatus.APPLIED),
        ),
        # redelivered late: must not replace the newer declaration
        Message(
            community="wijk-1", household="huis-1", sent_at=NOW - timedelta(hours=1), body=older
        ),
    ]
    assert store.save_received(messages, NOW) == []
    household = store.household("huis-1")
    assert household is not None
    assert household.capabilities == newer
    assert household.online
    assert household.last_seen_at == NOW
    assert store.latest_baseline("huis-1") == baseline
    [ack] = store.acks_for("limit-1")
    assert ack.ack.status is AckStatus.APPLIED
    store.save_received(
        [Message(community="wijk-1", household="huis-1", sent_at=NOW, body=Presence(online=False))],
        NOW,
    )
    household = store.household("huis-1")
    assert household is not None
    assert not household.online


def _limit_message(household: str) -> Message:
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
        intervals=(LimitInterval(start=NOW, end=NOW + timedelta(minutes=15), max_import_w=3000.0),),
    )
    return Message(
        community="wijk-1", household=household, sent_at=NOW, body=LimitUpdate(limit=limit)
    )


def test_sent_limits_are_recorded_and_a_household_cannot_send_them(store: Store) -> None:
    _join(store)
    message = _limit_message("huis-1")
    store.record_sent(message, encode(message), NOW)
    assert store.latest_sent("huis-1", "limits") == message
    with pytest.raises(StoreError, match="unknown household"):
        store.record_sent(_limit_message("huis-9"), encode(_limit_message("huis-9")), NOW)
    with pytest.raises(StoreError, match="cannot send"):
        store.save_received([message], NOW)
    telemetry = _telemetry("huis-1", 1)
    with pytest.raises(StoreError, match="does not send"):
        store.record_sent(telemetry, encode(telemetry), NOW)


def test_removing_a_household_deletes_all_its_data(store: Store) -> None:
    _join(store, "huis-1")
    _join(store, "huis-2")
    for household in ("huis-1", "huis-2"):
        store.save_received([_telemetry(household, 1)], NOW)
        limit = _limit_message(household)
        store.record_sent(limit, encode(limit), NOW)
        ack = Message(
            community="wijk-1",
            household=household,
            sent_at=NOW,
            body=Ack(ref_id=limit.message_id, status=AckStatus.APPLIED),
        )
        store.save_received([ack], NOW)
    assert store.remove_household("huis-1")
    assert not store.remove_household("huis-1")
    assert [h.household_id for h in store.households()] == ["huis-2"]
    assert [h.household_id for h in store.households("wijk-1")] == ["huis-2"]
    assert store.households("elsewhere") == []
    assert store.household("huis-1") is None
    db = store._db
    for table in ("telemetry", "sent", "acks", "credentials", "households"):
        owners = {row[0] for row in db.execute(f"SELECT household_id FROM {table}")}
        assert owners == {"huis-2"}, table
    assert store.save_received([_telemetry("huis-1", 2)], NOW) != []


def test_retention_prunes_old_telemetry_only(store: Store) -> None:
    _join(store)
    hourly = [_telemetry("huis-1", h * 360) for h in range(10)]
    store.save_received(hourly, NOW)
    baseline = BaselineForecast(start=NOW, power_w=(1.0,))
    store.save_received(
        [Message(community="wijk-1", household="huis-1", sent_at=NOW, body=baseline)], NOW
    )
    deleted = store.prune(NOW + timedelta(hours=12), retention=timedelta(hours=6))
    assert deleted == 6 + 1  # telemetry of hours 0-5 and the baseline starting at 0
    remaining = [row.telemetry.measured_at for row in store.telemetry("huis-1")]
    assert remaining == [NOW + timedelta(hours=h) for h in (6, 7, 8, 9)]
    assert store.latest_baseline("huis-1") is None
    household = store.household("huis-1")
    assert household is not None  # the household itself stays


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from community_server.store import Store
    from netbewust_core.protocol.messages import Message, Telemetry

    store = Store.open(sys.argv[1])
    start = datetime(2026, 11, 22, tzinfo=UTC)
    index = 0
    while True:
        batch = []
        for _ in range(10):
            moment = start + timedelta(seconds=index)
            batch.append(Message(
                community="wijk-1", household="huis-1", sent_at=moment, message_id=f"m{index}",
                body=Telemetry(measured_at=moment, interval_s=10, power_w=(float(index),),
                               participating=True)))
            index += 1
        store.save_received(batch, moment)
        # Only now is the batch durable: this line is the acknowledgement.
        print(" ".join(m.message_id for m in batch), flush=True)
    """
)


def test_nothing_acknowledged_is_lost_when_the_writer_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    setup = Store.open(path)
    setup.create_community("wijk-1", "Wijk", NOW)
    _join(setup, "huis-1")
    setup.close()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged: set[str] = set()
    for _ in range(30):
        acknowledged.update(child.stdout.readline().split())
    child.kill()  # SIGKILL, mid-stream
    child.wait()
    acknowledged.update(child.stdout.read().split())  # lines printed before the kill
    child.stdout.close()
    reopened = Store.open(path)
    stored = {row.message_id for row in reopened.telemetry("huis-1")}
    assert len(acknowledged) >= 300
    assert acknowledged <= stored
    assert reopened._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_migrations_are_numbered_one_two_three_without_gaps() -> None:
    """A database records the numbers it applied: a gap or a duplicate would skip or
    repeat a migration on some servers."""
    assert [version for version, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
