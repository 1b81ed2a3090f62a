"""The embedded broker's reading of mosquitto's generated password file and ACL."""

from __future__ import annotations

import pytest

from community_server.credentials import hash_password
from community_server.embedded_broker import parse_acl_file, parse_password_file, pattern_covers


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
