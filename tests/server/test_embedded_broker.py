"""The embedded broker's reading of the generated dynamic-security document."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from community_server.credentials import hash_password
from community_server.embedded_broker import EmbeddedBroker, parse_accounts, pattern_covers
from community_server.mosquitto import ServerAccount, dynsec_document
from community_server.store import BrokerAccount

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
        ("netbewust/v1/+", "netbewust/v1/#", False),  # paho alone would allow it
        ("netbewust/v1/#", "netbewust/v1/w/#", True),
        ("netbewust/v1/w/#", "netbewust/v1/+/#", False),
    ],
)
def test_pattern_coverage(pattern: str, requested: str, allowed: bool) -> None:
    assert pattern_covers(pattern, requested) is allowed


def _document(clients: list[object], roles: list[object]) -> str:
    return json.dumps({"clients": clients, "roles": roles})


def test_accounts_take_their_roles_topics_and_bound_client_id() -> None:
    document = dynsec_document(
        [BrokerAccount("huis-1", hash_password("secret"), "wijk-1", "huis-1")],
        ServerAccount("server", "server-secret"),
    )
    accounts = parse_accounts(json.dumps(document))
    household, server = accounts["huis-1"], accounts["server"]
    assert household.verify("secret")
    assert not household.verify("Secret")
    assert household.client_id == "huis-1"
    assert server.client_id is None
    assert "netbewust/v1/wijk-1/huis-1/telemetry" in household.publish
    assert household.subscribe == household.receive
    assert household.subscribe == (
        "netbewust/v1/wijk-1/huis-1/limits",
        "netbewust/v1/wijk-1/huis-1/command",
        "netbewust/v1/wijk-1/huis-1/receipts",
    )
    assert "netbewust/v1/#" in server.publish


@pytest.mark.parametrize(
    "client",
    [
        {"username": "huis-1"},  # no hash: cannot log in
        {"username": "huis-1", "password": "!!", "salt": "c2FsdA==", "iterations": 1},
        {"username": "huis-1", "password": "aGFzaA==", "salt": "c2FsdA==", "iterations": 10**9},
        {"username": "huis-1", "password": "aGFzaA==", "salt": "c2FsdA==", "iterations": "1"},
        {"username": "huis-1", "password": "aGFzaA==", "salt": "c2FsdA==", "iterations": 0},
        {"username": "huis-1", "password": 5, "salt": "c2FsdA==", "iterations": 1},
    ],
)
def test_an_unreadable_client_is_left_out(
    client: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    assert parse_accounts(_document([client, "junk", {"username": 7}], [])) == {}
    assert "unreadable" in caplog.text


def test_only_allowing_entries_of_known_kinds_count() -> None:
    hashed = hash_password("x").split("$")
    client = {
        "username": "a",
        "salt": hashed[3],
        "password": hashed[4],
        "iterations": int(hashed[2]),
        "roles": [{"rolename": "r"}, {"rolename": "absent"}],
    }
    role = {
        "rolename": "r",
        "acls": [
            {"acltype": "publishClientSend", "topic": "t/1", "allow": True},
            {"acltype": "publishClientSend", "topic": "t/2", "allow": False},
            {"acltype": "unsubscribePattern", "topic": "t/3", "allow": True},
            {"acltype": "publishClientSend", "topic": ["t/4"], "allow": True},
            "junk",
        ],
    }
    account = parse_accounts(_document([client], [role, {"rolename": "broken", "acls": 3}]))["a"]
    assert account.publish == ("t/1",)
    assert account.subscribe == account.receive == ()


@pytest.mark.parametrize("text", ["[]", "{not json", '"x"'])
def test_a_document_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a dynamic-security document"):
        parse_accounts(text)


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
