"""The embedded broker's reading of mosquitto's generated password file and ACL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from community_server.credentials import hash_password
from community_server.embedded_broker import (
    EmbeddedBroker,
    parse_acl_file,
    parse_password_file,
    pattern_covers,
)

from .conftest import free_port
from .household_client import HouseholdClient

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("pattern", "requested", "allowed"),
    [
        ("netbewust/v1/#", "netbewust/v1/+/+/telemetry", True),
        ("netbewust/v1/#", "netbewust/v1", True),
        ("netbewust/v1/w/h/limits", "netbewust/v1/w/h/limits", True),
        ("netbewust/v1/w/h/limits", "netbewust/v1/w/+/limits", False),
        ("netbewust/v1/w/h/limits", "netbewust/v1/#", False),
        ("netbewust/v1/w/h/limits", "netbewust/v1/w/h/limits/x", False),
        ("netbewust/v1/w/h/limits", "netbewust/v1/w/h", False),
        ("netbewust/v1/+/h/limits", "netbewust/v1/w/h/limits", True),
        ("a/b", "a/c", False),
    ],
)
def test_pattern_coverage(pattern: str, requested: str, allowed: bool) -> None:
    assert pattern_covers(pattern, requested) is allowed


def test_acl_file_sections_and_access(caplog: pytest.LogCaptureFixture) -> None:
    acl = parse_acl_file(
        "# generated\nuser server\ntopic readwrite netbewust/v1/#\n\n"
        "user huis-1\ntopic write a/telemetry\ntopic read a/limits\n"
        "pattern read %u/x\ntopic b/default\n"
    )
    assert acl["server"].read == acl["server"].write == ("netbewust/v1/#",)
    assert acl["huis-1"].write == ("a/telemetry", "b/default")
    assert acl["huis-1"].read == ("a/limits", "b/default")
    assert "does not understand" in caplog.text  # the unsupported `pattern` line


def test_password_file_skips_comments_and_broken_lines() -> None:
    hashed = hash_password("secret")
    users = parse_password_file(f"# comment\nhuis-1:{hashed}\nno-colon\n\n")
    assert users == {"huis-1": hashed}


async def test_without_its_files_the_broker_refuses_everyone(
    tmp_path: Path, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    broker = EmbeddedBroker(tmp_path / "not-written", port=free_port())
    await broker.start()
    try:
        client = HouseholdClient("wijk-1", "huis-1", broker.port, "secret", protocol="3.1.1")
        assert (await client.connect()).is_failure
        await client.disconnect()
    finally:
        await broker.stop()
    assert "cannot read" in caplog.text
