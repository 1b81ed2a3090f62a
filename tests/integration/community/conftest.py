"""A real community server (HTTP API + MQTT side) and mosquitto on loopback, for HA tests.

mosquitto is started by the server tests' own helper (tests/server/conftest.py).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.data_entry_flow import FlowResultType

from community_server.config import HttpConfig, MosquittoConfig, ServerConfig
from community_server.http_api import HttpApi, start_site
from community_server.server import CommunityServer
from community_server.store import Store
from custom_components.netbewust.const import DOMAIN
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from tests.clock import clock_now
from tests.server.certificates import make_tls_files
from tests.server.conftest import (
    MOSQUITTO,
    Broker,
    _start_broker,
    free_port,
    wait_for_port,
)
from tests.server.household_client import wait_until

from ..conftest import CHARGER, set_meter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from community_server.mosquitto import TlsFiles
    from custom_components.netbewust.community.runtime import CommunityRuntime
    from custom_components.netbewust.guard.runtime import NetbewustRuntime

COMMUNITY = "wijk-1"


@pytest.fixture
def community_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "server.db")
    store.create_community(COMMUNITY, "Wijk Eén", clock_now())
    yield store
    store.close()


@pytest.fixture
def community_broker(
    tmp_path: Path, community_store: Store, socket_enabled: None
) -> Iterator[Broker]:
    yield from _start_broker(tmp_path, community_store, tls=None)


@dataclass
class Community:
    server: CommunityServer
    store: Store
    broker: Broker
    url: str
    config_path: Path

    def join_code(self) -> str:
        return self.store.issue_join_code(COMMUNITY, clock_now(), timedelta(hours=1)).code

    def restart_broker(self) -> subprocess.Popen[bytes]:
        """Start mosquitto again on the same port, with its persisted retained messages."""
        process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)], stderr=subprocess.DEVNULL
        )
        wait_for_port(self.broker.port, process, self.broker.log)
        return process


async def _run_community(
    broker: Broker,
    store: Store,
    tmp_path: Path,
    tls: TlsFiles | None,
    clock: Callable[[], datetime] = clock_now,
) -> AsyncIterator[Community]:
    mqtt = broker.mqtt_config()
    http = HttpConfig(port=free_port())
    if tls is not None:
        mqtt = broker.mqtt_config(tls=True, tls_ca_file=str(tls.ca_file))
        http = HttpConfig(
            port=http.port,
            tls_cert_file=str(tls.cert_file),
            tls_key_file=str(tls.key_file),
            public_mqtt_tls=True,
        )
    config = ServerConfig(
        mqtt=mqtt,
        mosquitto=MosquittoConfig(dynamic_security=True),  # joins create broker accounts
        http=http,
    )
    server = CommunityServer(config, store, clock=clock)
    await server.start()
    runner = await start_site(HttpApi(server, store, config), config)
    scheme = "https" if tls is not None else "http"
    try:
        yield Community(
            server,
            store,
            broker,
            f"{scheme}://127.0.0.1:{config.http.port}",
            tmp_path / "mosquitto.conf",
        )
    finally:
        await runner.cleanup()
        await server.stop()


@pytest.fixture
async def community(
    community_broker: Broker, community_store: Store, tmp_path: Path
) -> AsyncIterator[Community]:
    async for running in _run_community(community_broker, community_store, tmp_path, None):
        yield running


@pytest.fixture
def community_tls(tmp_path: Path) -> TlsFiles:
    """A cooperative's own CA and a server certificate for 127.0.0.1 it signed."""
    return make_tls_files(tmp_path)


@pytest.fixture
async def tls_community(
    tmp_path: Path, community_store: Store, community_tls: TlsFiles, socket_enabled: None
) -> AsyncIterator[Community]:
    """HTTPS join and MQTT over TLS, both with certificates from the cooperative's CA."""
    for broker in _start_broker(tmp_path, community_store, tls=community_tls):
        async for running in _run_community(broker, community_store, tmp_path, community_tls):
            yield running


def community_limit(max_import_w: float, expires_in: timedelta) -> ExternalLimit:
    now = clock_now()
    return ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=now - timedelta(seconds=1),
        expires_at=now + expires_in,
        intervals=(
            LimitInterval(
                start=now - timedelta(seconds=1), end=now + expires_in, max_import_w=max_import_w
            ),
        ),
    )


@pytest.fixture
async def connection(
    hass: HomeAssistant, targets: None, make_entry: Callable[..., MockConfigEntry]
) -> MockConfigEntry:
    entry = make_entry(subentries=(CHARGER,))
    set_meter(hass, 1000)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def join(
    hass: HomeAssistant, community: Community, connection: ConfigEntry, **details: str
) -> ConfigEntry:
    """Join through the UI flow's menu; returns the loaded membership entry, connected."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "community"}
    )
    assert result["step_id"] == "community"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "server_url": community.url,
            "join_code": community.join_code(),
            "connection_entry_id": connection.entry_id,
            **details,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await wait_until(lambda: membership(entry).link_up)
    return entry


def membership(entry: ConfigEntry) -> CommunityRuntime:
    runtime: CommunityRuntime = entry.runtime_data
    return runtime


def guard_of(connection: ConfigEntry) -> NetbewustRuntime:
    runtime: NetbewustRuntime = connection.runtime_data
    return runtime
