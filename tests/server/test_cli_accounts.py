"""`netbewust-server operator …` and `household export`, in-process on a real SQLite file."""

from __future__ import annotations

import io
import json
import stat
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.accounts import token_sha256
from community_server.cli import main
from community_server.passwords import OPERATOR_HASHER, verify
from community_server.store import Store
from netbewust_core.protocol.messages import Message, Telemetry
from tests.clock import NOW

if TYPE_CHECKING:
    from pathlib import Path

PASSWORD = "a long operator password"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(f'[database]\npath = "{tmp_path / "cli.db"}"\n')
    return path


def _run(
    config: Path, monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = f"{PASSWORD}\n"
) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["--config", str(config), *argv], environ={})


def test_operators_are_added_listed_changed_and_removed(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = config_file.parent / "cli.db"
    assert _run(config_file, monkeypatch, "operator", "add", "beheer", "--password-stdin") == 0
    store = Store.open(database)
    try:
        stored = store.operator_password_hash("beheer")
        assert stored is not None
        assert stored.startswith("$argon2id$")
        assert PASSWORD not in stored
        assert verify(OPERATOR_HASHER, PASSWORD, stored).ok
        store.start_session(token_sha256("token"), "beheer", NOW, NOW + timedelta(hours=1))
    finally:
        store.close()
    add = ("operator", "add", "beheer", "--password-stdin")
    assert _run(config_file, monkeypatch, *add) == 1  # exists
    assert "already exists" in capsys.readouterr().err
    for name in ("Beheer", "", "_x", "a" * 65, "naam met spatie"):
        assert _run(config_file, monkeypatch, "operator", "add", name, "--password-stdin") == 1
        assert "operator name" in capsys.readouterr().err
    for password in ("short\n", "x" * 1025 + "\n", "\n"):
        assert _run(config_file, monkeypatch, *add[:2], "other", add[3], stdin=password) == 2
        assert "characters" in capsys.readouterr().err
    assert _run(config_file, monkeypatch, "operator", "list") == 0
    assert capsys.readouterr().out.split()[0] == "beheer"

    new_password = "another long operator password"
    passwd = ("operator", "passwd", "beheer", "--password-stdin")
    assert _run(config_file, monkeypatch, *passwd, stdin=f"{new_password}\n") == 0
    store = Store.open(database)
    try:
        changed = store.operator_password_hash("beheer")
        assert changed is not None
        assert verify(OPERATOR_HASHER, new_password, changed).ok
        assert not verify(OPERATOR_HASHER, PASSWORD, changed).ok
        assert store.session(token_sha256("token"), NOW) is None  # a new password ends sessions
    finally:
        store.close()
    assert _run(config_file, monkeypatch, "operator", "passwd", "nobody", "--password-stdin") == 1
    assert _run(config_file, monkeypatch, "operator", "remove", "beheer") == 0
    assert _run(config_file, monkeypatch, "operator", "remove", "beheer") == 1
    capsys.readouterr()
    assert _run(config_file, monkeypatch, "operator", "list") == 0
    assert capsys.readouterr().out == ""


def test_the_operator_exports_a_household_to_a_private_file(
    config_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = Store.open(tmp_path / "cli.db")
    try:
        store.create_community("wijk-1", "Wijk", NOW)
        for household in ("huis-1", "huis-2"):
            code = store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
            store.redeem_join_code(code, NOW, household)
        telemetry = Telemetry(measured_at=NOW, interval_s=10, power_w=(800.0,), participating=True)
        store.save_received(
            [Message(community="wijk-1", household="huis-1", sent_at=NOW, body=telemetry)], NOW
        )
    finally:
        store.close()
    target = tmp_path / "huis-1.json"
    assert (
        _run(config_file, monkeypatch, "household", "export", "huis-1", "--output", str(target))
        == 0
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    document = json.loads(target.read_text())
    assert document["household"] == "huis-1"
    assert [row["power_w"] for row in document["telemetry"]] == [[800.0]]
    assert "huis-2" not in target.read_text()
    capsys.readouterr()
    assert _run(config_file, monkeypatch, "household", "export", "huis-2") == 0
    assert json.loads(capsys.readouterr().out)["telemetry"] == []
    assert _run(config_file, monkeypatch, "household", "export", "huis-9") == 1
    assert "no household huis-9" in capsys.readouterr().err
