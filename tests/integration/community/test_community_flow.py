"""The community join flow's errors, zeroconf discovery and reauthentication."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

import pytest
from homeassistant.config_entries import SOURCE_USER, SOURCE_ZEROCONF
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from custom_components.netbewust.community.const import CONF_HOUSEHOLD, SERVICE_TYPE
from custom_components.netbewust.community.join import JoinError, normalise_url, parse_join_answer
from custom_components.netbewust.community.runtime import CommunityRuntime, CommunityState
from custom_components.netbewust.const import DOMAIN
from tests.clock import clock_now
from tests.server.certificates import make_tls_files
from tests.server.conftest import free_port
from tests.server.household_client import wait_until

from .conftest import (
    Community,
    join,
)

if TYPE_CHECKING:
    from pathlib import Path

    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry


def discovery(port: int, protocol: str = "1") -> ZeroconfServiceInfo:
    return ZeroconfServiceInfo(
        ip_address=ip_address("127.0.0.1"),
        ip_addresses=[ip_address("127.0.0.1")],
        hostname="coop.local.",
        name=f"Wijk Eén.{SERVICE_TYPE}",
        port=port,
        type=SERVICE_TYPE,
        properties={"path": "/api/v1", "protocol": protocol, "tls": "0"},
    )


async def community_form(hass: HomeAssistant) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    return dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "community"}
        )
    )


async def submit(
    hass: HomeAssistant, flow_id: str, url: str, code: str, connection: ConfigEntry
) -> dict[str, Any]:
    return dict(
        await hass.config_entries.flow.async_configure(
            flow_id,
            {"server_url": url, "join_code": code, "connection_entry_id": connection.entry_id},
        )
    )


async def submit_with_ca(
    hass: HomeAssistant, flow_id: str, url: str, ca_file: Path, connection: ConfigEntry
) -> dict[str, Any]:
    return dict(
        await hass.config_entries.flow.async_configure(
            flow_id,
            {
                "server_url": url,
                "join_code": "ABCD-EFGH-JKLM",
                "connection_entry_id": connection.entry_id,
                "ca_cert": await hass.async_add_executor_job(ca_file.read_text),
            },
        )
    )


async def test_without_a_running_connection_there_is_no_community_to_join(
    hass: HomeAssistant,
) -> None:
    # No connection entry: the user step is the connection form, not a menu.
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    found = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery(8480)
    )
    assert found["type"] is FlowResultType.ABORT
    assert found["reason"] == "community_needs_connection"


async def test_wrong_codes_urls_and_servers_are_clear_errors(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    form = await community_form(hass)
    flow_id = form["flow_id"]
    cases = [
        ("ftp://coop", "ABCD", "invalid_url"),
        ("http://127.0.0.1:99999", "ABCD", "invalid_url"),
        (community.url, "ABCD-EFGH-JKLM", "invalid_join_code"),
        (f"http://127.0.0.1:{free_port()}", "ABCD", "cannot_connect"),
    ]
    for url, code, error in cases:
        result = await submit(hass, flow_id, url, code, connection)
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"base": error}, url
    # An expired code is refused like a wrong one (the server does not say which).
    from datetime import timedelta

    expired = community.store.issue_join_code(
        "wijk-1", clock_now() - timedelta(hours=2), timedelta(hours=1)
    )
    result = await submit(hass, flow_id, community.url, expired.code, connection)
    assert result["errors"] == {"base": "invalid_join_code"}
    # Nothing was created by any of it.
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    result = await submit(hass, flow_id, community.url, community.join_code(), connection)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_a_broker_that_cannot_be_reached_creates_nothing_and_keeps_the_join(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    form = await community_form(hass)
    community.broker.process.terminate()
    community.broker.process.wait()
    code = community.join_code()
    result = await submit(hass, form["flow_id"], community.url, code, connection)
    assert result["errors"] == {"base": "mqtt_cannot_connect"}
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    restarted = community.restart_broker()
    try:
        # The spent code is not needed again: the flow kept the credentials.
        result = await submit(hass, form["flow_id"], community.url, code, connection)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        assert await hass.config_entries.async_unload(result["result"].entry_id)
    finally:
        restarted.terminate()
        restarted.wait()


async def test_zeroconf_discovery_offers_the_server(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    port = int(community.url.rsplit(":", 1)[1])
    old = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery(port, protocol="2")
    )
    assert old["reason"] == "unsupported_protocol"
    found = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery(port)
    )
    assert found["step_id"] == "community"
    assert found["description_placeholders"] is None or True
    result = await submit(hass, found["flow_id"], community.url, community.join_code(), connection)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # Discovered again: already a member there.
    again = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery(port)
    )
    assert again["type"] is FlowResultType.ABORT
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_revoked_credentials_ask_for_a_new_join_code(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry
) -> None:
    entry = await join(hass, community, connection)
    household = entry.data[CONF_HOUSEHOLD]
    assert community.store.remove_household(household)
    community.broker.reload(community.store)
    # mosquitto keeps connected clients on reload: reconnecting meets the refusal.
    await hass.config_entries.async_reload(entry.entry_id)
    runtime: CommunityRuntime = entry.runtime_data
    await wait_until(lambda: runtime.state is CommunityState.AUTH_FAILED, timeout_s=20)
    await hass.async_block_till_done()
    [flow] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == "reauth"
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"join_code": "ABCD-EFGH-JKLM"}
    )
    assert result["errors"] == {"base": "invalid_join_code"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {"join_code": community.join_code()}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_HOUSEHOLD] != household
    rejoined: CommunityRuntime = entry.runtime_data
    await wait_until(lambda: rejoined.link_up)
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {"protocol_version": 2},
        {"protocol_version": 1, "community": "Wijk 1", "household": "h", "mqtt": {}},
        {
            "protocol_version": 1,
            "community": "wijk-1",
            "household": "hh-1",
            "mqtt": {
                "host": "x",
                "port": 70000,
                "tls": False,
                "client_id": "a",
                "username": "a",
                "password": "b",
            },
        },
        {
            "protocol_version": 1,
            "community": "wijk-1",
            "household": "hh-1",
            "mqtt": {
                "host": "x",
                "port": 1883,
                "tls": "yes",
                "client_id": "a",
                "username": "a",
                "password": "b",
            },
        },
    ],
)
def test_a_strange_join_answer_is_refused(answer: object) -> None:
    with pytest.raises(JoinError) as caught:
        parse_join_answer(answer)
    assert caught.value.code == "invalid_answer"


def test_urls_are_normalised() -> None:
    assert normalise_url(" https://coop.example:8480/ ") == "https://coop.example:8480"
    for bad in ("coop.example", "https://", "http://host:port"):
        with pytest.raises(JoinError):
            normalise_url(bad)


async def test_an_untrusted_certificate_is_a_tls_error(
    hass: HomeAssistant, community: Community, connection: MockConfigEntry, tmp_path: Path
) -> None:
    # An HTTPS server on its own thread (a refused handshake is its problem, not HA's loop),
    # with a certificate from a CA the system does not trust.
    tls = make_tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        form = await community_form(hass)
        url = f"https://127.0.0.1:{server.server_address[1]}"
        result = await submit(hass, form["flow_id"], url, community.join_code(), connection)
        assert result["errors"] == {"base": "tls_error"}
        # Another cooperative's CA does not make it trusted either.
        (tmp_path / "other").mkdir()
        other = make_tls_files(tmp_path / "other")
        result = await submit_with_ca(hass, form["flow_id"], url, other.ca_file, connection)
        assert result["errors"] == {"base": "tls_error"}
        # With its own CA the handshake passes; this bare server then refuses the join.
        result = await submit_with_ca(hass, form["flow_id"], url, tls.ca_file, connection)
        assert result["errors"] == {"base": "cannot_connect"}
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
