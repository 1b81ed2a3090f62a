"""Generated mosquitto files (the live broker tests prove they work; these pin their shape)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from community_server.credentials import verify_password
from community_server.mosquitto import (
    ServerAccount,
    TlsFiles,
    acl_file,
    broker_config,
    password_file,
    reload_broker,
    write_auth_files,
)
from community_server.store import BrokerAccount

if TYPE_CHECKING:
    from pathlib import Path

SERVER = ServerAccount("netbewust_server", "s3cret")
HOUSEHOLD = BrokerAccount("huis-1", "$7$1000$c2FsdA==$aGFzaA==", "wijk-1", "huis-1")


def test_acl_lets_a_household_write_its_channels_and_read_its_limits_only() -> None:
    lines = acl_file([HOUSEHOLD], SERVER).splitlines()
    start = lines.index("user huis-1")
    household_rules = set(lines[start + 1 :])
    prefix = "netbewust/v1/wijk-1/huis-1"
    assert household_rules == {
        f"topic write {prefix}/capabilities",
        f"topic write {prefix}/telemetry",
        f"topic write {prefix}/baseline",
        f"topic write {prefix}/ack",
        f"topic write {prefix}/status",
        f"topic read {prefix}/limits",
        f"topic read {prefix}/command",
    }
    assert "topic readwrite netbewust/v1/#" in lines[:start]


def test_password_file_holds_hashes_only() -> None:
    text = password_file([HOUSEHOLD], SERVER)
    server_line, household_line = text.splitlines()
    assert household_line == f"huis-1:{HOUSEHOLD.password_hash}"
    username, hashed = server_line.split(":", 1)
    assert username == SERVER.username
    assert verify_password("s3cret", hashed)
    assert "s3cret" not in text
    assert "s3cret" not in repr(SERVER)


@pytest.mark.parametrize("username", ["", "a:b", "a\nuser evil", "a#", "a b"])
def test_usernames_that_could_inject_lines_are_refused(username: str) -> None:
    with pytest.raises(ValueError, match="unusable"):
        acl_file([BrokerAccount(username, "x", "wijk-1", "huis-1")], SERVER)


def test_auth_files_are_written_atomically_and_not_world_readable(tmp_path: Path) -> None:
    passwords, acl = write_auth_files(tmp_path / "auth", [HOUSEHOLD], SERVER)
    assert passwords.stat().st_mode & 0o777 == 0o640
    assert "user huis-1" in acl.read_text()
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == ["acl", "passwords"]


def test_broker_config_refuses_anonymous_and_supports_tls(tmp_path: Path) -> None:
    tls = TlsFiles(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    text = broker_config(auth_dir=tmp_path, data_dir=tmp_path, port=8883, tls=tls)
    assert "allow_anonymous false" in text
    assert "listener 8883 127.0.0.1" in text
    assert f"certfile {tmp_path / 'cert.pem'}" in text
    assert "persistence true" in text


def test_reloading_needs_a_readable_pid_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="pid"):
        reload_broker(tmp_path / "absent.pid")
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not a pid")
    with pytest.raises(OSError, match="pid"):
        reload_broker(garbage)
