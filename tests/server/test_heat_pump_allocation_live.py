"""Heat-pump power in the live allocation on a real mosquitto (issue 14).

The server as `serve` assembles it, homes running the engine's household session with a
thermal store, and a household from before the extension (plain v1 payloads). A DSO
emergency posted over the HTTP API must take all pump power within 60 s; bad heat-pump
values are refused and counted, and the sender's next report is stored as usual.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.config import DatabaseConfig, HttpConfig, ServerConfig
from community_server.dso.http_routes import DsoAccount, hash_token
from community_server.dso_settings import DsoSettings
from community_server.serving import Serving, serving
from netbewust_core.limits import LimitSource
from netbewust_core.protocol.messages import (
    Capabilities,
    Channel,
    ErrorCode,
    LimitUpdate,
    Message,
    ServerFeature,
    decode,
    encode,
)
from netbewust_core.protocol.session import heat_pump_flexibility

from .conftest import NOW, free_port
from .dso_frames import post_hour_frame
from .household_client import HouseholdClient, wait_until
from .messages import telemetry
from .test_heat_pump_flexibility import PUMP, Home, assets

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import datetime
    from pathlib import Path

    from community_server.store import Store

    from .conftest import Broker

TRANSFORMER = "trafo-1"
DSO_TOKEN = "dso-secret-token"
HOME_W = 700.0  # what a thermal home draws (Home.report): its pump's power at most
OLD_W = 2000.0
FLOOR_W = 1500.0  # no baseline sent: the server's guaranteed minimum


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Town:
    def __init__(self, state: Serving, homes: list[Home], old: HouseholdClient, clock: Clock):
        self.state = state
        self.homes = homes
        self.old = old
        self.clock = clock

    def limits(self, client: HouseholdClient) -> list[LimitUpdate]:
        found = []
        for message in client.received:
            if message.topic.endswith(f"/{Channel.LIMITS}"):
                body = decode(message.payload).body
                if isinstance(body, LimitUpdate):
                    found.append(body)
        return found


@pytest.fixture
async def town(tmp_path: Path, broker: Broker, server_store: Store) -> AsyncIterator[Town]:
    clock = Clock(NOW)
    server_store.create_transformer(TRANSFORMER, "wijk-1", "Trafo 1", 40_000.0)
    joined = {}
    for name in ("warm-1", "warm-2", "old-1"):
        code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1), TRANSFORMER)
        joined[name] = server_store.redeem_join_code(code.code, NOW, name)
    broker.reload(server_store)
    config = ServerConfig(
        database=DatabaseConfig(path=tmp_path / "server.db"),
        mqtt=broker.mqtt_config(),
        http=HttpConfig(port=free_port()),
        dso=DsoSettings(
            accounts=(DsoAccount("dso", hash_token(DSO_TOKEN)),),
            non_member_estimate_w={TRANSFORMER: 0.0},
        ),
    )
    clients = {
        name: HouseholdClient("wijk-1", name, broker.port, credentials.password)
        for name, credentials in joined.items()
    }
    async with serving(config, server_store, clock=clock) as state:
        for client in clients.values():
            assert not (await client.connect()).is_failure
            await client.subscribe(*Home(client).session.subscriptions)
        homes = [Home(clients["warm-1"]), Home(clients["warm-2"])]
        try:
            for home in homes:
                await home.send(home.session.connected(NOW, assets()).messages)
            await wait_until(
                lambda: all(
                    any(b'"features"' in m.payload for m in home.client.received) for home in homes
                )
            )
            for home in homes:
                home.deliver()
                assert home.session.server_features == {ServerFeature.HEAT_PUMP_FLEXIBILITY}
                await home.report(0, assets())  # telemetry with the margin, the thermal store
            old = clients["old-1"]
            caps = Capabilities(phases=1, fuse_current_a=25.0)
            await old.publish(
                Message(community="wijk-1", household="old-1", sent_at=NOW, body=caps)
            )
            await old.publish(telemetry(0, "old-1", OLD_W))
            server = state.server
            await wait_until(lambda: server.metrics.stored["telemetry"] == 3)
            await wait_until(
                lambda: all(
                    (h := server_store.household(name)) is not None
                    and h.capabilities is not None
                    and len(h.capabilities.thermal_heat_pumps) == 1
                    for name in ("warm-1", "warm-2")
                )
            )
            clock.now = NOW + timedelta(seconds=12)
            yield Town(state, homes, old, clock)
        finally:
            for client in clients.values():
                await client.disconnect()


async def _post(town: Town, mode: str, import_kw: float) -> None:
    port = town.state.server._config.http.port
    await post_hour_frame(
        port,
        DSO_TOKEN,
        transformer=TRANSFORMER,
        start=town.clock.now,
        request_id=f"{mode}-1",
        mode=mode,
        import_kw=import_kw,
    )


async def test_an_emergency_takes_all_pump_power_within_60_s_and_old_homes_still_get_it(
    town: Town,
) -> None:
    clients = [home.client for home in town.homes] + [town.old]
    before = {client.household: len(town.limits(client)) for client in clients}
    started = time.monotonic()
    await _post(town, "emergency", 2.0)

    def emergency_everywhere() -> bool:
        return all(
            any(
                u.limit.source is LimitSource.EMERGENCY
                for u in town.limits(c)[before[c.household] :]
            )
            for c in clients
        )

    await wait_until(emergency_everywhere, timeout_s=60.0)
    elapsed_s = time.monotonic() - started
    assert elapsed_s < 60.0
    now = town.clock.now
    granted = {}
    for client in clients:
        update = [u for u in town.limits(client) if u.limit.source is LimitSource.EMERGENCY][-1]
        interval = update.limit.interval_at(now)
        assert interval is not None
        granted[client.household] = interval.max_import_w
    # The thermal homes lose their pump's power (all they draw, within the floor); the
    # household from before the extension keeps its whole floor, as before.
    assert granted == {"warm-1": FLOOR_W - HOME_W, "warm-2": FLOOR_W - HOME_W, "old-1": FLOOR_W}
    control = town.state.control(TRANSFORMER)
    assert control is not None
    # The round publishes its limits before it records its status.
    await wait_until(lambda: control.status is not None and control.status.phase == "emergency")
    assert control.status is not None
    assert control.status.pumps_curtailed == 2
    print(f"emergency to limits received by all three homes: {elapsed_s:.3f} s")


async def test_bad_heat_pump_values_are_refused_counted_and_the_next_report_stored(
    town: Town,
) -> None:
    client = town.homes[0].client
    server = town.state.server
    good = encode(telemetry(5, "warm-1", 800.0))
    assert b'"battery_soc_pct"' not in good
    topic = client.topic(Channel.TELEMETRY)
    hostile = [
        good.replace(b'"participating":true', b'"participating":true,"comfort_margin_min":-5.0'),
        good.replace(b'"participating":true', b'"participating":true,"comfort_margin_min":NaN'),
    ]
    # A thermal store of a pump kind the protocol does not know.
    offered = Capabilities(
        phases=1, fuse_current_a=25.0, thermal_heat_pumps=(heat_pump_flexibility(PUMP),)
    )
    caps = encode(Message(community="wijk-1", household="warm-1", sent_at=NOW, body=offered))
    hostile.append(caps.replace(b'"modulating":false', b'"modulating":false,"kind":"geothermal"'))
    rejected_before = Counter(server.metrics.rejected)
    for payload in hostile:
        assert payload not in (good, caps)
        channel_topic = client.topic(Channel.CAPABILITIES) if b"geothermal" in payload else topic
        await client.publish_raw(channel_topic, payload)
    await wait_until(lambda: server.metrics.rejected.total() == rejected_before.total() + 3)
    assert server.metrics.rejected - rejected_before == {
        ErrorCode.OUT_OF_RANGE: 2,
        ErrorCode.EXTRA_FIELD: 1,
    }
    stored = server.metrics.stored["telemetry"]
    await client.publish_raw(topic, good)
    await wait_until(lambda: server.metrics.stored["telemetry"] == stored + 1)
    control = town.state.control(TRANSFORMER)
    assert control is not None
    await control.step(town.clock.now)  # the round goes on with everyone
    assert control.status is not None
    assert control.status.excluded == ()
