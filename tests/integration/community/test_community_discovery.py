"""Zeroconf discovery updates a membership whose server moved (quality rule discovery-update-info).

A server is matched to a membership by its identity, never by its address: only a
membership that stored the announced `server_id` is a candidate, and it is confirmed
(the server answers for the membership's household with the household's credentials and
names the same community). No credentials go to a server with another id or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from community_server.config import HttpConfig, ServerConfig
from community_server.http_api import HttpApi, start_site
from custom_components.netbewust.community.const import (
    CONF_COMMUNITY,
    CONF_ENTRY_KIND,
    CONF_HOUSEHOLD,
    CONF_MQTT_HOST,
    CONF_MQTT_PASSWORD,
    CONF_MQTT_USERNAME,
    CONF_SERVER_ID,
    CONF_SERVER_URL,
    ENTRY_KIND_COMMUNITY,
    SERVICE_TYPE,
)
from custom_components.netbewust.community.join import JoinError, parse_server_id
from custom_components.netbewust.const import DOMAIN
from tests.server.conftest import free_port
from tests.server.household_client import wait_until

from .conftest import COMMUNITY, Community, join, membership
from .test_community_flow import community_form, submit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant

    from community_server.mosquitto import TlsFiles

API = "/api/v1"
SERVER_ID = "5e1f0c2a9b8d4e6f8a7b6c5d4e3f2a1b"
OTHER_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def announcement(
    port: int | None,
    *,
    host: str = "127.0.0.1",
    server_id: str | None = SERVER_ID,
    properties: dict[str, str] | None = None,
) -> ZeroconfServiceInfo:
    """As a server announces itself; `server_id=None` as one from before servers had ids."""
    default = {"path": API, "protocol": "1", "tls": "0"}
    if server_id is not None:
        default["server_id"] = server_id
    return ZeroconfServiceInfo(
        ip_address=ip_address(host),
        ip_addresses=[ip_address(host)],
        hostname="coop.local.",
        name=f"Wijk Eén.{SERVICE_TYPE}",
        port=port,
        type=SERVICE_TYPE,
        properties=properties if properties is not None else default,
    )


async def discover(hass: HomeAssistant, info: ZeroconfServiceInfo) -> dict[str, Any]:
    return dict(
        await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_ZEROCONF}, data=info
        )
    )


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
async def second_site(community: Community) -> AsyncIterator[str]:
    """The same community server's HTTP API on a second port: the server "moved"."""
    config = ServerConfig(http=HttpConfig(port=free_port()))
    runner = await start_site(HttpApi(community.server, community.store, config), config)
    try:
        yield f"http://127.0.0.1:{config.http.port}"
    finally:
        await runner.cleanup()


async def test_a_moved_server_updates_the_membership_and_reloads(
    hass: HomeAssistant, community: Community, connection: ConfigEntry, second_site: str
) -> None:
    entry = await join(hass, community, connection)
    # The join kept the server's identity, from its info document.
    server_id = community.store.server_id
    assert entry.data[CONF_SERVER_ID] == server_id
    before = membership(entry)
    result = await discover(hass, announcement(port_of(second_site), server_id=server_id))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert entry.data[CONF_SERVER_URL] == second_site
    assert entry.data[CONF_MQTT_HOST] == "127.0.0.1"  # same host: the broker did not move
    assert entry.data[CONF_SERVER_ID] == server_id
    # Reloaded: a new runtime, connected again.
    assert entry.state is ConfigEntryState.LOADED
    after = membership(entry)
    assert after is not before
    await wait_until(lambda: after.link_up)
    # Found again at its new address: nothing changes, nothing reloads.
    again = await discover(hass, announcement(port_of(second_site), server_id=server_id))
    assert again["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert membership(entry) is after
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_same_address_aborts_without_a_reload(
    hass: HomeAssistant, community: Community, connection: ConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    before = membership(entry)
    data = dict(entry.data)
    result = await discover(
        hass, announcement(port_of(community.url), server_id=community.store.server_id)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert membership(entry) is before
    assert dict(entry.data) == data
    assert await hass.config_entries.async_unload(entry.entry_id)


@dataclass
class FakeServer:
    """A server on loopback that answers the household lookup as told, and records every
    request it receives (method, path and Authorization header), whatever the path."""

    url: str = ""
    status: int = 401
    answer: object = None
    info: object = None  # the info document (GET /api/v1/health); None: not found
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for _method, path, _auth in self.requests]

    def credentialed(self) -> list[str]:
        return [path for _method, path, auth in self.requests if auth is not None]


@pytest.fixture
async def fake_server(socket_enabled: None) -> AsyncIterator[FakeServer]:
    fake = FakeServer()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        fake.requests.append((request.method, request.path, request.headers.get("Authorization")))
        response: web.StreamResponse = await handler(request)
        return response

    async def household(request: web.Request) -> web.Response:
        if fake.status != 200:
            return web.json_response({"error": "unauthorized"}, status=fake.status)
        return web.json_response(fake.answer)

    async def info(request: web.Request) -> web.Response:
        if fake.info is None:
            raise web.HTTPNotFound
        return web.json_response(fake.info)

    async def join_code(request: web.Request) -> web.Response:
        return web.json_response({"error": "invalid_join_code"}, status=403)

    app = web.Application(middlewares=[record])
    app.router.add_get(f"{API}/households/{{household_id}}", household)
    app.router.add_get(f"{API}/health", info)
    app.router.add_post(f"{API}/join", join_code)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def stored_membership(
    hass: HomeAssistant,
    url: str,
    *,
    household: str = "hh-1",
    mqtt_host: str = "192.0.2.10",
    server_id: str | None = SERVER_ID,
) -> MockConfigEntry:
    """A membership entry (not set up) as the join flow stores it.

    `server_id=None`: one joined before servers had an id (no id stored at all).
    """
    data: dict[str, Any] = {
        CONF_ENTRY_KIND: ENTRY_KIND_COMMUNITY,
        CONF_SERVER_URL: url,
        "connection_entry_id": "connection",
        CONF_COMMUNITY: COMMUNITY,
        CONF_HOUSEHOLD: household,
        CONF_MQTT_HOST: mqtt_host,
        "mqtt_port": 1883,
        "mqtt_tls": False,
        "mqtt_client_id": household,
        CONF_MQTT_USERNAME: household,
        CONF_MQTT_PASSWORD: "secret",
        "ca_cert": None,
        "ean": None,
        "tariff_class": None,
    }
    if server_id is not None:
        data[CONF_SERVER_ID] = server_id
    entry = MockConfigEntry(
        domain=DOMAIN, title=f"{COMMUNITY} (Home)", unique_id=f"{COMMUNITY}/{household}", data=data
    )
    entry.add_to_hass(hass)
    return entry


async def test_a_server_with_the_id_that_does_not_know_the_household_is_offered_as_new(
    hass: HomeAssistant, connection: ConfigEntry, fake_server: FakeServer
) -> None:
    entry = stored_membership(hass, "http://192.0.2.10:8480")
    result = await discover(hass, announcement(port_of(fake_server.url)))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "community"
    # Same id: it was asked about the household, and said no; the membership keeps its address.
    assert fake_server.credentialed() == [f"{API}/households/hh-1"]
    assert entry.data[CONF_SERVER_URL] == "http://192.0.2.10:8480"


@pytest.mark.parametrize("announced", [OTHER_ID, None], ids=["another_id", "no_id"])
async def test_a_server_with_another_id_or_none_gets_no_credentials(
    hass: HomeAssistant,
    connection: ConfigEntry,
    fake_server: FakeServer,
    announced: str | None,
) -> None:
    """Another cooperative's server on the LAN: offered as new, never asked anything."""
    entry = stored_membership(hass, "http://192.0.2.10:8480")
    data = dict(entry.data)
    # It would even claim the household: it is never asked.
    fake_server.status = 200
    fake_server.answer = {"household": "hh-1", "community": COMMUNITY}
    result = await discover(hass, announcement(port_of(fake_server.url), server_id=announced))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "community"
    assert fake_server.requests == []
    assert dict(entry.data) == data


async def test_a_membership_without_a_stored_id_is_left_alone(
    hass: HomeAssistant, connection: ConfigEntry, fake_server: FakeServer
) -> None:
    """Joined before servers had ids: discovery never sends its credentials anywhere."""
    entry = stored_membership(hass, "http://192.0.2.10:8480", server_id=None)
    data = dict(entry.data)
    fake_server.status = 200
    fake_server.answer = {"household": "hh-1", "community": COMMUNITY}
    result = await discover(hass, announcement(port_of(fake_server.url)))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "community"
    assert fake_server.requests == []
    assert dict(entry.data) == data
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_only_the_memberships_with_the_announced_id_are_confirmed(
    hass: HomeAssistant, fake_server: FakeServer
) -> None:
    # Ours last: the others would be asked first if they were candidates.
    old = stored_membership(hass, "http://192.0.2.12:8480", household="hh-3", server_id=None)
    other = stored_membership(hass, "http://192.0.2.11:8480", household="hh-2", server_id=OTHER_ID)
    ours = stored_membership(hass, "http://192.0.2.10:8480", household="hh-1")
    fake_server.status = 200
    fake_server.answer = {"household": "hh-1", "community": COMMUNITY}
    result = await discover(hass, announcement(port_of(fake_server.url)))
    assert result["reason"] == "already_configured"
    assert fake_server.paths() == [f"{API}/households/hh-1"]
    assert fake_server.credentialed() == [f"{API}/households/hh-1"]
    assert ours.data[CONF_SERVER_URL] == fake_server.url
    assert other.data[CONF_SERVER_URL] == "http://192.0.2.11:8480"
    assert old.data[CONF_SERVER_URL] == "http://192.0.2.12:8480"


async def test_a_server_with_another_identity_does_not_take_the_membership(
    hass: HomeAssistant, fake_server: FakeServer
) -> None:
    """It announces the membership's id and accepts the credentials, but is not its server."""
    entry = stored_membership(hass, "http://192.0.2.10:8480")
    fake_server.status = 200
    for answer in (
        {"household": "hh-1", "community": "wijk-2"},
        {"household": "hh-2", "community": COMMUNITY},
        ["not", "an", "object"],
        None,
    ):
        fake_server.answer = answer
        result = await discover(hass, announcement(port_of(fake_server.url)))
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "discovery_identity_mismatch"
        assert entry.data[CONF_SERVER_URL] == "http://192.0.2.10:8480"
        assert entry.data[CONF_MQTT_HOST] == "192.0.2.10"


@pytest.mark.parametrize(
    ("mqtt_host", "expected"),
    [("192.0.2.10", "127.0.0.1"), ("mqtt.coop.example", "mqtt.coop.example")],
)
async def test_the_broker_address_follows_only_when_it_was_the_servers(
    hass: HomeAssistant, fake_server: FakeServer, mqtt_host: str, expected: str
) -> None:
    """Not set up: the data is updated, and nothing is loaded by the discovery."""
    entry = stored_membership(hass, "http://192.0.2.10:8480", mqtt_host=mqtt_host)
    fake_server.status = 200
    fake_server.answer = {"household": "hh-1", "community": COMMUNITY}
    result = await discover(hass, announcement(port_of(fake_server.url)))
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_SERVER_URL] == fake_server.url
    assert entry.data[CONF_MQTT_HOST] == expected
    assert entry.data[CONF_SERVER_ID] == SERVER_ID
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_credentials_are_not_sent_to_an_unlikely_server(
    hass: HomeAssistant, connection: ConfigEntry, fake_server: FakeServer
) -> None:
    """Even with the announced id: an HTTPS membership is never asked over HTTP; a DNS name
    follows its server itself."""
    https = stored_membership(hass, "https://192.0.2.10:8480", household="hh-1")
    named = stored_membership(hass, "http://coop.example:8480", household="hh-2")
    fake_server.status = 200
    fake_server.answer = {"household": "hh-1", "community": COMMUNITY}
    result = await discover(hass, announcement(port_of(fake_server.url)))
    assert result["step_id"] == "community"
    assert fake_server.requests == []
    assert https.data[CONF_SERVER_URL] == "https://192.0.2.10:8480"
    assert named.data[CONF_SERVER_URL] == "http://coop.example:8480"


@pytest.mark.parametrize(
    ("port", "host", "properties"),
    [
        (8480, "127.0.0.1", {"path": API, "protocol": "1", "tls": "yes"}),
        (8480, "127.0.0.1", {"path": API, "protocol": "1"}),
        (8480, "127.0.0.1", {"path": "/api/v9", "protocol": "1", "tls": "0"}),
        (8480, "127.0.0.1", {"protocol": "1", "tls": "0"}),
        (8480, "127.0.0.1", {"path": API, "tls": "0"}),
        (None, "127.0.0.1", {"path": API, "protocol": "1", "tls": "0"}),
        (0, "127.0.0.1", {"path": API, "protocol": "1", "tls": "0"}),
        (8480, "127.0.0.1", {"path": API, "protocol": "1", "tls": "0", "server_id": ""}),
        (8480, "127.0.0.1", {"path": API, "protocol": "1", "tls": "0", "server_id": "coop"}),
        (
            8480,
            "127.0.0.1",
            {"path": API, "protocol": "1", "tls": "0", "server_id": SERVER_ID.upper()},
        ),
        (
            8480,
            "127.0.0.1",
            {"path": API, "protocol": "1", "tls": "0", "server_id": SERVER_ID[:-1]},
        ),
        (
            8480,
            "127.0.0.1",
            {"path": API, "protocol": "1", "tls": "0", "server_id": f"{SERVER_ID}0"},
        ),
    ],
)
async def test_a_malformed_announcement_is_refused(
    hass: HomeAssistant,
    port: int | None,
    host: str,
    properties: dict[str, str],
) -> None:
    entry = stored_membership(hass, "http://192.0.2.10:8480")
    result = await discover(hass, announcement(port, host=host, properties=properties))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"
    assert entry.data[CONF_SERVER_URL] == "http://192.0.2.10:8480"


async def test_a_malformed_id_sends_no_credentials(
    hass: HomeAssistant, fake_server: FakeServer
) -> None:
    entry = stored_membership(hass, "http://192.0.2.10:8480")
    fake_server.status = 200
    fake_server.answer = {"household": "hh-1", "community": COMMUNITY}
    result = await discover(hass, announcement(port_of(fake_server.url), server_id=f"{SERVER_ID}!"))
    assert result["reason"] == "invalid_discovery_info"
    assert fake_server.requests == []
    assert entry.data[CONF_SERVER_URL] == "http://192.0.2.10:8480"


async def test_another_protocol_is_still_unsupported(hass: HomeAssistant) -> None:
    result = await discover(
        hass, announcement(8480, properties={"path": API, "protocol": "2", "tls": "0"})
    )
    assert result["reason"] == "unsupported_protocol"


async def test_an_ipv6_address_is_bracketed(hass: HomeAssistant, connection: ConfigEntry) -> None:
    result = await discover(hass, announcement(8480, host="fe80::1"))
    assert result["step_id"] == "community"
    [flow] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["unique_id"] == "discovered http://[fe80::1]:8480"


async def test_an_https_server_that_moved_is_checked_with_the_cooperatives_ca(
    hass: HomeAssistant,
    tls_community: Community,
    community_tls: TlsFiles,
    connection: ConfigEntry,
) -> None:
    ca_pem = await hass.async_add_executor_job(community_tls.ca_file.read_text)
    entry = await join(hass, tls_community, connection, ca_cert=ca_pem)
    server_id = tls_community.store.server_id
    assert entry.data[CONF_SERVER_ID] == server_id
    before = membership(entry)
    config = ServerConfig(
        http=HttpConfig(
            port=free_port(),
            tls_cert_file=str(community_tls.cert_file),
            tls_key_file=str(community_tls.key_file),
        )
    )
    runner = await start_site(HttpApi(tls_community.server, tls_community.store, config), config)
    try:
        tls_properties = {"path": API, "protocol": "1", "tls": "1", "server_id": server_id}
        # Announced as plain HTTP: the HTTPS membership's credentials are not sent there.
        plain = await discover(hass, announcement(config.http.port, server_id=server_id))
        assert plain["step_id"] == "community"
        hass.config_entries.flow.async_abort(plain["flow_id"])
        result = await discover(hass, announcement(config.http.port, properties=tls_properties))
        assert result["reason"] == "already_configured"
        await hass.async_block_till_done()
        assert entry.data[CONF_SERVER_URL] == f"https://127.0.0.1:{config.http.port}"
        after = membership(entry)
        assert after is not before
        await wait_until(lambda: after.link_up)
    finally:
        await runner.cleanup()
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- the server's id when joining and reconfiguring ---------------------------------------


def test_the_info_documents_server_id_is_checked() -> None:
    assert parse_server_id({"status": "ok", "server_id": SERVER_ID}) == SERVER_ID
    assert parse_server_id({"status": "ok"}) is None  # a server from before ids
    malformed: tuple[object, ...] = (
        {"server_id": SERVER_ID.upper()},
        {"server_id": SERVER_ID[:-1]},
        {"server_id": 12},
        {"server_id": ""},
        [],
        None,
    )
    for document in malformed:
        with pytest.raises(JoinError) as caught:
            parse_server_id(document)
        assert caught.value.code == "invalid_answer"


async def test_a_malformed_server_id_refuses_the_join_before_the_code_is_spent(
    hass: HomeAssistant, connection: ConfigEntry, fake_server: FakeServer
) -> None:
    form = await community_form(hass)
    fake_server.info = {"status": "ok", "protocol_version": 1, "server_id": "not-an-id"}
    result = await submit(hass, form["flow_id"], fake_server.url, "ABCD-EFGH-JKLM", connection)
    assert result["errors"] == {"base": "invalid_answer"}
    # Only the info document was read: no join, no credentials.
    assert fake_server.requests == [("GET", f"{API}/health", None)]
    # A server whose info document cannot be read is not joined either.
    fake_server.info = None
    fake_server.requests.clear()
    result = await submit(hass, form["flow_id"], fake_server.url, "ABCD-EFGH-JKLM", connection)
    assert result["errors"] == {"base": "cannot_connect"}
    assert fake_server.paths() == [f"{API}/health"]
    # A well-formed one is followed by the join (which this server refuses).
    fake_server.info = {"status": "ok", "protocol_version": 1, "server_id": SERVER_ID}
    fake_server.requests.clear()
    result = await submit(hass, form["flow_id"], fake_server.url, "ABCD-EFGH-JKLM", connection)
    assert result["errors"] == {"base": "invalid_join_code"}
    assert fake_server.paths() == [f"{API}/health", f"{API}/join"]


async def test_reconfiguring_an_old_membership_records_its_servers_id(
    hass: HomeAssistant, community: Community, connection: ConfigEntry, second_site: str
) -> None:
    """Joined before servers had ids: not moved by discovery until a reconfigure records it."""
    entry = await join(hass, community, connection)
    data = {key: value for key, value in entry.data.items() if key != CONF_SERVER_ID}
    hass.config_entries.async_update_entry(entry, data=data)
    found = await discover(
        hass, announcement(port_of(second_site), server_id=community.store.server_id)
    )
    assert found["step_id"] == "community"  # offered as new: the membership is left alone
    hass.config_entries.flow.async_abort(found["flow_id"])
    assert entry.data[CONF_SERVER_URL] == community.url

    form = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    done = await hass.config_entries.flow.async_configure(
        form["flow_id"], {"server_url": community.url}
    )
    assert done["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_SERVER_ID] == community.store.server_id
    await wait_until(lambda: membership(entry).link_up)

    # Now the moved server is recognised.
    moved = await discover(
        hass, announcement(port_of(second_site), server_id=community.store.server_id)
    )
    assert moved["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert entry.data[CONF_SERVER_URL] == second_site
    await wait_until(lambda: membership(entry).link_up)
    assert await hass.config_entries.async_unload(entry.entry_id)
