"""Heat-pump flexibility across mixed versions, on a real mosquitto (issue 14).

The engine's household session talks to the server through the broker: a server that
announces `heat_pump_flexibility` gets the thermal stores, comfort margins and pauses,
stores them and counts the pauses; one that does not (the negotiation flag off, as a
server from before them) gets plain v1 only; and a household from before them (no
receipts subscription, old payloads) is stored as always and never sees the news.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp
import jsonschema
import pytest
import yaml  # type: ignore[import-untyped]

from community_server.config import HttpConfig, MosquittoConfig, ServerConfig
from community_server.http_api import API_PREFIX, OPENAPI_FILE, HttpApi, start_site
from community_server.prometheus import ServerCollector, exposition, server_registry
from community_server.server import CommunityServer
from netbewust_core.model import Connection
from netbewust_core.planning.problem import HeatPumpControl, PlanThermalHeatPump
from netbewust_core.protocol.messages import (
    TELEMETRY_INTERVAL_S,
    Capabilities,
    Channel,
    Message,
    ServerFeature,
    Telemetry,
    decode,
    encode,
)
from netbewust_core.protocol.session import (
    HouseholdAssets,
    HouseholdSession,
    SteeringPause,
    ThermalPump,
    heat_pump_flexibility,
)
from netbewust_core.thermal import ComfortBand, CopModel, ThermalParameters

from .conftest import NOW, Broker, free_port
from .household_client import HouseholdClient, wait_until
from .messages import telemetry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from community_server.store import HouseholdCredentials, Store

STEPS = 96
NEW_FIELDS = (
    b"thermal_heat_pumps",
    b"comfort_margin_min",
    b"paused_until",
    b"outdoor_temperature_c",
)
PUMP = ThermalPump(
    NOW,
    PlanThermalHeatPump(
        device_id="hp",
        thermal=ThermalParameters(resistance_k_per_kw=8.0, capacitance_kwh_per_k=10.0),
        cop=CopModel(),
        max_power_w=2500.0,
        outdoor_temperature_c=(3.0,) * STEPS,
        comfort=ComfortBand((20.0,) * STEPS, (19.5,) * STEPS, (21.0,) * STEPS),
        indoor_temperature_c=20.3,
        control=HeatPumpControl.ON_OFF,
    ),
    indoor_now_c=20.3,
)


def assets(pause: SteeringPause | None = None) -> HouseholdAssets:
    return HouseholdAssets(
        connection=Connection(phases=1, fuse_current_a=25.0),
        thermal_pumps=(PUMP,),
        pause=pause,
        outdoor_c=2.5,
    )


class Home:
    """The engine's household session carried over MQTT, as a host does it."""

    def __init__(self, client: HouseholdClient) -> None:
        self.client = client
        self.session = HouseholdSession("wijk-1", client.household)
        self.sent: list[Message] = []
        self.read = 0

    async def send(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self.sent.append(message)
            assert not (await self.client.publish(message)).is_failure

    def deliver(self) -> None:
        """What arrived since the last call, into the session (never answered here)."""
        for message in self.client.received[self.read :]:
            delivery = self.session.receive(message.topic, message.payload, NOW)
            assert delivery.invalid is None
        self.read = len(self.client.received)

    async def report(self, start_s: int, current: HouseholdAssets) -> None:
        """One telemetry period of samples; capabilities too when they changed."""
        for second in range(TELEMETRY_INTERVAL_S):
            moment = NOW + timedelta(seconds=start_s + second)
            await self.send(self.session.tick(moment, (700.0,), lambda: current).messages)


@pytest.fixture
async def home(members: dict[str, HouseholdCredentials], broker: Broker) -> AsyncIterator[Home]:
    client = HouseholdClient("wijk-1", "huis-1", broker.port, members["huis-1"].password)
    assert not (await client.connect()).is_failure
    await client.subscribe(*Home(client).session.subscriptions)
    yield Home(client)
    await client.disconnect()


async def _running(
    broker: Broker, store: Store, features: frozenset[ServerFeature]
) -> CommunityServer:
    server = CommunityServer(
        ServerConfig(mqtt=broker.mqtt_config()), store, clock=lambda: NOW, features=features
    )
    await server.start()
    return server


async def test_a_server_that_reads_them_stores_the_store_margin_and_counted_pauses(
    home: Home, broker: Broker, server_store: Store
) -> None:
    server = await _running(broker, server_store, frozenset(ServerFeature))
    try:
        await home.send(home.session.connected(NOW, assets()).messages)
        # The server answers the capabilities with what it reads, on receipts.
        await wait_until(lambda: any(b'"features"' in m.payload for m in home.client.received))
        home.deliver()
        assert home.session.server_features == {ServerFeature.HEAT_PUMP_FLEXIBILITY}
        await home.report(0, assets())
        until = NOW + timedelta(hours=2)
        await home.report(10, assets(SteeringPause(until)))
        await home.report(20, assets(SteeringPause(until)))  # the same pause, reported again
        await wait_until(lambda: server.metrics.stored["telemetry"] == 3)
        await wait_until(lambda: server.metrics.stored["capabilities"] == 3)
        assert not server.metrics.rejected
        # The outdoor temperature is stored for the load forecast's daily mean.
        hour = timedelta(hours=1)
        assert server_store.outdoor_means(NOW - hour, NOW + hour, 30.0) == [2.5]

        household = server_store.household("huis-1")
        assert household is not None
        # Paused: the store was taken back; the latest capabilities do not offer it.
        assert household.capabilities is not None
        assert household.capabilities.thermal_heat_pumps == ()
        state = household.heat_pump
        assert state is not None
        assert (state.paused_until, state.pauses, state.paused(NOW)) == (until, 1, True)
        assert state.comfort_margin_min is not None
        assert state.comfort_margin_min > 60
        assert server.metrics.heat_pump_pauses == 1
        samples = exposition(
            server_registry(ServerCollector(server.metrics, lambda: True, [], []))
        ).decode()
        assert "netbewust_heat_pump_pauses_total 1.0" in samples

        # The pause ends; the store is offered again and stored as sent.
        await home.report(30, assets())
        await wait_until(lambda: server.metrics.stored["capabilities"] == 4)
        household = server_store.household("huis-1")
        assert household is not None
        assert household.capabilities is not None
        assert household.capabilities.thermal_heat_pumps == (heat_pump_flexibility(PUMP),)
        assert household.heat_pump is not None
        assert household.heat_pump.paused(NOW + timedelta(seconds=40)) is False
        # A second pause is counted as one more.
        await home.report(40, assets(SteeringPause(until)))
        await wait_until(lambda: server.metrics.stored["telemetry"] == 5)
        household = server_store.household("huis-1")
        assert household is not None
        assert household.heat_pump is not None
        assert household.heat_pump.pauses == 2
        assert server.metrics.heat_pump_pauses == 2
    finally:
        await server.stop()


async def test_a_new_household_sends_plain_v1_to_a_server_that_does_not_announce_them(
    home: Home, broker: Broker, server_store: Store
) -> None:
    server = await _running(broker, server_store, frozenset())
    try:
        await home.send(home.session.connected(NOW, assets()).messages)
        await home.report(0, assets(SteeringPause(NOW + timedelta(hours=1))))
        await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
        await wait_until(lambda: len(home.client.received) >= 1)  # receipts, nothing else
        home.deliver()
        assert home.session.server_features == frozenset()
        assert {decode(m.payload).type_name for m in home.client.received} == {"receipt"}
        # What a server from before the fields would read: none of them (it would reject
        # them as extra_field).
        assert home.sent
        for message in home.sent:
            payload = encode(message)
            assert not any(name in payload for name in NEW_FIELDS), payload
        household = server_store.household("huis-1")
        assert household is not None
        assert household.heat_pump is None
        assert not server.metrics.rejected
    finally:
        await server.stop()


async def test_an_old_household_is_stored_as_before_and_never_sees_the_features(
    members: dict[str, HouseholdCredentials], broker: Broker, server_store: Store
) -> None:
    server = await _running(broker, server_store, frozenset(ServerFeature))
    # A household from before receipts and features: it reads its limits and commands only.
    old = HouseholdClient("wijk-1", "huis-2", broker.port, members["huis-2"].password)
    assert not (await old.connect()).is_failure
    try:
        await old.subscribe(old.topic(Channel.LIMITS), old.topic(Channel.COMMAND))
        capabilities = Capabilities(phases=3, fuse_current_a=25.0)
        await old.publish(
            Message(community="wijk-1", household="huis-2", sent_at=NOW, body=capabilities)
        )
        await old.publish(telemetry(0, "huis-2"))
        await wait_until(lambda: server.metrics.stored.total() == 2)
        assert not server.metrics.rejected
        household = server_store.household("huis-2")
        assert household is not None
        assert household.capabilities == capabilities
        assert household.heat_pump is None
        stored = server_store.telemetry("huis-2")
        assert [type(s.telemetry) for s in stored] == [Telemetry]
        assert old.received == []  # the features went to a channel it does not read
    finally:
        await old.disconnect()
        await server.stop()


async def test_the_household_endpoint_shows_the_margin_and_the_pauses(
    home: Home, broker: Broker, server_store: Store, members: dict[str, HouseholdCredentials]
) -> None:
    config = ServerConfig(
        mqtt=broker.mqtt_config(),
        mosquitto=MosquittoConfig(dynamic_security=True),
        http=HttpConfig(port=free_port(), public_mqtt_host="mqtt.example.nl"),
    )
    server = CommunityServer(config, server_store, clock=lambda: NOW)
    await server.start()
    runner = await start_site(HttpApi(server, server_store, config), config)
    url = f"http://127.0.0.1:{config.http.port}{API_PREFIX}/households/huis-1"
    auth = {"Authorization": aiohttp.encode_basic_auth("huis-1", members["huis-1"].password)}
    schema = yaml.safe_load(OPENAPI_FILE.read_text())["paths"]["/households/{household_id}"]
    schema = schema["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers=auth) as response:
                before = await response.json()
            assert before["heat_pump"] is None
            await home.send(home.session.connected(NOW, assets()).messages)
            await wait_until(lambda: any(b'"features"' in m.payload for m in home.client.received))
            home.deliver()
            until = NOW + timedelta(hours=3)
            await home.report(0, assets(SteeringPause(until)))
            await wait_until(lambda: server.metrics.stored["telemetry"] == 1)
            async with http.get(url, headers=auth) as response:
                body = await response.json()
        jsonschema.validate(body, schema)
        heat_pump = body["heat_pump"]
        assert heat_pump["paused"] is True
        assert heat_pump["pauses"] == 1
        assert heat_pump["paused_until"] == until.isoformat()
        assert heat_pump["thermal_stores"] == 0  # taken back while paused
        assert heat_pump["comfort_margin_min"] > 60
    finally:
        await runner.cleanup()
        await server.stop()
