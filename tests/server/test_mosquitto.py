"""Generated broker documents and files (the live broker tests prove they work; these pin
their shape, their file modes and the refusal of hostile names)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from typing import TYPE_CHECKING

import pytest

from community_server.credentials import hash_password
from community_server.mosquitto import (
    HOUSEHOLD_ROLE_PREFIX,
    SERVER_ROLE,
    ServerAccount,
    TlsFiles,
    broker_config,
    dynsec_document,
    write_dynsec_file,
)
from community_server.private_files import create_private, write_private
from community_server.store import BrokerAccount

if TYPE_CHECKING:
    from pathlib import Path

SERVER = ServerAccount("netbewust_server", "s3cret")
HOUSEHOLD = BrokerAccount("huis-1", hash_password("household-secret"), "wijk-1", "huis-1")


def _client(document: dict[str, object], username: str) -> dict[str, object]:
    clients = document["clients"]
    assert isinstance(clients, list)
    return next(client for client in clients if client["username"] == username)


def test_a_household_may_publish_its_channels_and_read_its_limits_only() -> None:
    document = dynsec_document([HOUSEHOLD], SERVER)
    roles = {role["rolename"]: role for role in document["roles"]}
    household = roles[f"{HOUSEHOLD_ROLE_PREFIX}huis-1"]
    prefix = "netbewust/v1/wijk-1/huis-1"
    assert {(acl["acltype"], acl["topic"]) for acl in household["acls"]} == {
        ("publishClientSend", f"{prefix}/capabilities"),
        ("publishClientSend", f"{prefix}/telemetry"),
        ("publishClientSend", f"{prefix}/baseline"),
        ("publishClientSend", f"{prefix}/ack"),
        ("publishClientSend", f"{prefix}/status"),
        ("subscribeLiteral", f"{prefix}/limits"),
        ("publishClientReceive", f"{prefix}/limits"),
        ("subscribeLiteral", f"{prefix}/command"),
        ("publishClientReceive", f"{prefix}/command"),
        ("subscribeLiteral", f"{prefix}/receipts"),
        ("publishClientReceive", f"{prefix}/receipts"),
    }
    assert all(acl["allow"] is True for acl in household["acls"])
    assert document["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    server_topics = {acl["topic"] for acl in roles[SERVER_ROLE]["acls"]}
    assert server_topics == {"netbewust/v1/#", "$CONTROL/dynamic-security/#"}


def test_households_are_bound_to_their_client_id_and_the_server_is_not() -> None:
    document = dynsec_document([HOUSEHOLD], SERVER)
    assert _client(document, "huis-1")["clientid"] == "huis-1"
    # The server's control connections use other client ids than its session's.
    assert "clientid" not in _client(document, SERVER.username)


def test_the_document_holds_pbkdf2_hashes_only() -> None:
    document = dynsec_document([HOUSEHOLD], SERVER)
    text = json.dumps(document)
    assert "s3cret" not in text
    assert "s3cret" not in repr(SERVER)
    assert "household-secret" not in text
    for username, password in ((SERVER.username, "s3cret"), ("huis-1", "household-secret")):
        client = _client(document, username)
        salt = base64.b64decode(str(client["salt"]))
        iterations = client["iterations"]
        assert isinstance(iterations, int)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
        assert base64.b64encode(digest).decode() == client["password"]


@pytest.mark.parametrize(
    "username", ["", "a:b", "a\nb", "a#", "a+", "a/b", "a b", "a\x00", "x" * 129]
)
def test_usernames_that_could_widen_an_acl_are_refused(username: str) -> None:
    with pytest.raises(ValueError, match="unusable"):
        dynsec_document([BrokerAccount(username, HOUSEHOLD.password_hash, "wijk-1", "h")], SERVER)


@pytest.mark.parametrize("stored", ["plain", "$6$abc$def", "$7$x$c2FsdA==$aGFzaA==", "$7$1$!!$??"])
def test_a_hash_in_another_format_is_refused(stored: str) -> None:
    with pytest.raises(ValueError, match="hash"):
        dynsec_document([BrokerAccount("huis-1", stored, "wijk-1", "huis-1")], SERVER)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_the_file_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        path = write_dynsec_file(tmp_path / "dynsec.json", [HOUSEHOLD], SERVER)
        write_dynsec_file(path, [], SERVER)  # replaced, not rewritten in place
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["clients"][0]["username"] == SERVER.username
    assert [p.name for p in tmp_path.iterdir()] == ["dynsec.json"]  # no temporary left


def test_a_private_file_is_never_seen_half_written_or_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    write_private(target, b"old", mode=0o640)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    inode = target.stat().st_ino
    write_private(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != inode  # a new file renamed over the old one
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "link").symlink_to(elsewhere)
    assert not create_private(tmp_path / "link")  # exists (dangling): never followed
    assert not elsewhere.exists()
    assert create_private(tmp_path / "fresh", 0o640)
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o640
    assert not create_private(tmp_path / "fresh")


def test_broker_config_uses_the_plugin_refuses_anonymous_and_supports_tls(tmp_path: Path) -> None:
    tls = TlsFiles(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    text = broker_config(
        dynsec_file=tmp_path / "dynsec.json", data_dir=tmp_path, port=8883, tls=tls, plugin="/p.so"
    ).splitlines()
    assert "allow_anonymous false" in text
    assert "plugin /p.so" in text
    assert f"plugin_opt_config_file {tmp_path / 'dynsec.json'}" in text
    assert not any(line.startswith(("password_file", "acl_file", "pid_file")) for line in text)
    assert "listener 8883 127.0.0.1" in text
    assert f"certfile {tmp_path / 'cert.pem'}" in text
    assert {"persistence true", "autosave_on_changes true"} <= set(text)
