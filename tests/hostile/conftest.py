"""A whole deployment on loopback for the attacks: real mosquitto, `serving()` with HTTP.

Two members: `huis-1` behaves, `huis-2` is hostile (a member with valid credentials).
Attackers without credentials reach HTTP from their own loopback addresses (127.0.0.2 and
up), so per-address limits can be told apart from the household on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp
import pytest

from community_server.config import DatabaseConfig, HttpConfig, MosquittoConfig, ServerConfig
from community_server.http_api import API_PREFIX
from community_server.serving import serving
from netbewust_core.protocol.messages import Message, Telemetry, encode
from tests.server.conftest import (  # noqa: F401  (fixtures used by name)
    NOW,
    Broker,
    broker,
    free_port,
    members,
    server_store,
)
from tests.server.household_client import HouseholdClient, wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from community_server.serving import Serving
    from community_server.store import HouseholdCredentials, Store

METRICS_TOKEN = "hostile-suite-metrics-token-0123456789abcdef"


def report(index: int, household: str = "huis-1") -> Message:
    """The `index`-th report of `household`, measured `index` seconds before NOW."""
    moment = NOW - timedelta(seconds=index)
    return Message(
        community="wijk-1",
        household=household,
        sent_at=moment,
        message_id=f"{household}-r{index}",
        body=Telemetry(measured_at=moment, interval_s=10, power_w=(900.0,), participating=True),
    )


@dataclass
class Deployment:
    running: Serving
    store: Store
    broker: Broker
    http_port: int
    members: dict[str, HouseholdCredentials]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def session(self, local_address: str = "127.0.0.1") -> aiohttp.ClientSession:
        """HTTP from `local_address`: the server sees that as the client's address."""
        connector = aiohttp.TCPConnector(local_addr=(local_address, 0), force_close=True)
        return aiohttp.ClientSession(self.base, connector=connector)

    async def household(self, household: str = "huis-1") -> HouseholdClient:
        client = HouseholdClient(
            "wijk-1", household, self.broker.port, self.members[household].password
        )
        assert not (await client.connect()).is_failure
        return client

    async def stored(self, household: str = "huis-1") -> set[str]:
        rows = await self.running.server.run_in_db(self.store.telemetry, household)
        return {row.message_id for row in rows}

    async def wait_stored(self, count: int, household: str = "huis-1") -> set[str]:
        """The ids of the household's stored reports, once there are `count` (10 s at most)."""
        for _ in range(500):
            stored = await self.stored(household)
            if len(stored) >= count:
                return stored
            await asyncio.sleep(0.02)
        return stored

    async def metrics(self) -> str:
        async with (
            self.session() as session,
            session.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as answer,
        ):
            assert answer.status == 200
            return await answer.text()

    async def household_answers(self, household: str = "huis-1") -> int:
        """The status of the household's own GET with its right credentials, from 127.0.0.1."""
        auth = {
            "Authorization": aiohttp.encode_basic_auth(household, self.members[household].password)
        }
        async with (
            self.session() as session,
            session.get(f"{API_PREFIX}/households/{household}", headers=auth) as answer,
        ):
            return answer.status


async def report_all(client: HouseholdClient, messages: list[Message]) -> None:
    """Publish reports at QoS 1 without waiting for each PUBACK, then wait for all."""
    await publish_all(client, [(str(m.topic), encode(m)) for m in messages])


async def publish_all(client: HouseholdClient, items: list[tuple[str, bytes]]) -> list[int]:
    """Publish (topic, payload) pairs at QoS 1; the broker's PUBACK reason codes, in order."""
    infos = [client.client.publish(topic, payload, qos=1) for topic, payload in items]
    await wait_until(lambda: all(i.mid in client.publish_results for i in infos), timeout_s=60)
    return [client.publish_results[i.mid].value for i in infos]


@pytest.fixture
async def deployment(
    members: dict[str, HouseholdCredentials],  # noqa: F811  (before the broker: its accounts)
    server_store: Store,  # noqa: F811
    broker: Broker,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Deployment]:
    config = ServerConfig(
        mqtt=broker.mqtt_config(),
        mosquitto=MosquittoConfig(dynamic_security=True),  # joins create broker accounts
        http=HttpConfig(port=free_port(), metrics_token=METRICS_TOKEN),
        database=DatabaseConfig(path=tmp_path / "server.db"),
    )
    async with serving(config, server_store, clock=lambda: NOW) as running:
        yield Deployment(running, server_store, broker, config.http.port, members)
