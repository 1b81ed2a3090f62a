"""zeroconf advertisement of the HTTP API, on the loopback interface."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncZeroconf

from community_server.config import HttpConfig, ServerConfig, ZeroconfConfig
from community_server.discovery import (
    SERVICE_TYPE,
    Advertiser,
    advertised_addresses,
    service_info,
)
from community_server.store import Store

if TYPE_CHECKING:
    from pathlib import Path


def test_addresses_follow_the_listen_address() -> None:
    assert advertised_addresses("192.0.2.7") == ["192.0.2.7"]
    assert advertised_addresses("127.0.0.1") == ["127.0.0.1"]
    assert "127.0.0.1" not in advertised_addresses("0.0.0.0")


async def test_the_server_can_be_discovered(socket_enabled: None) -> None:
    config = ServerConfig(
        http=HttpConfig(host="127.0.0.1", port=8480),
        zeroconf=ZeroconfConfig(enabled=True, name="Wijk Noord"),
    )
    server_id = "0123456789abcdef0123456789abcdef"
    advertiser = Advertiser(config, server_id)
    await advertiser.start()
    browser = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        info = await browser.async_get_service_info(
            SERVICE_TYPE, f"Wijk Noord.{SERVICE_TYPE}", timeout=5000
        )
    finally:
        await browser.async_close()
        await advertiser.stop()
    assert info is not None
    assert info.port == 8480
    assert info.parsed_addresses() == ["127.0.0.1"]
    assert info.properties == {
        b"path": b"/api/v1",
        b"protocol": b"1",
        b"tls": b"0",
        b"server_id": server_id.encode(),
    }


def test_the_announcement_carries_the_stores_server_id(tmp_path: Path) -> None:
    """What `serving` advertises: the id kept in the database, the same after a restart."""
    config = ServerConfig(zeroconf=ZeroconfConfig(enabled=True, name="Wijk Noord"))
    store = Store.open(tmp_path / "server.db")
    server_id = store.server_id
    store.close()
    restarted = Store.open(tmp_path / "server.db")
    try:
        info = service_info(config, ["192.0.2.7"], restarted.server_id)
    finally:
        restarted.close()
    assert info.properties[b"server_id"] == server_id.encode()
    assert info.properties[b"tls"] == b"0"


def test_a_service_name_must_be_a_dns_label() -> None:
    with pytest.raises(ValueError, match=r"zeroconf\.name"):
        ServerConfig(zeroconf=ZeroconfConfig(name="a.b"))
