"""A minimal household MQTT client for tests, on paho's own thread."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from netbewust_adapters.mqtt import stop_network_thread
from netbewust_core.protocol.messages import Channel, Message, Topic, encode

if TYPE_CHECKING:
    from collections.abc import Callable


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


@dataclass
class HouseholdClient:
    community: str
    household: str
    port: int
    password: str
    username: str | None = None
    protocol: str = "5"  # "3.1.1" with the embedded broker
    client_id: str | None = None  # default: the household id, which the broker binds it to
    persistent: bool = False  # keep the session (and its queued messages) across connections
    received: list[mqtt.MQTTMessage] = field(default_factory=list)
    publish_results: dict[int, ReasonCode] = field(default_factory=dict)
    connect_result: ReasonCode | None = None
    client: mqtt.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id or self.household,
            protocol=(
                MQTTProtocolVersion.MQTTv5 if self.protocol == "5" else MQTTProtocolVersion.MQTTv311
            ),
            clean_session=None if self.protocol == "5" else not self.persistent,
        )
        self.client.username_pw_set(self.username or self.household, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, message: self.received.append(message)
        self.client.on_publish = self._on_publish

    def _on_connect(self, *args: object) -> None:
        reason = args[3]
        assert isinstance(reason, ReasonCode)
        self.connect_result = reason

    def _on_publish(self, _c: object, _u: object, mid: int, reason: ReasonCode, _p: object) -> None:
        self.publish_results[mid] = reason

    async def connect(self) -> ReasonCode:
        if self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 3600 if self.persistent else 0
            self.client.connect_async(
                "127.0.0.1", self.port, clean_start=not self.persistent, properties=properties
            )
        else:
            self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()
        await wait_until(lambda: self.connect_result is not None)
        assert self.connect_result is not None
        return self.connect_result

    async def disconnect(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(stop_network_thread, self.client)  # joins paho's thread

    def topic(self, channel: Channel, household: str | None = None) -> str:
        return str(Topic(self.community, household or self.household, channel))

    async def publish_raw(self, topic: str, payload: bytes | str) -> ReasonCode:
        """Publish at QoS 1; returns the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        await wait_until(lambda: info.mid in self.publish_results)
        return self.publish_results[info.mid]

    async def publish(self, message: Message) -> ReasonCode:
        return await self.publish_raw(str(message.topic), encode(message))

    async def subscribe(self, *topics: str) -> None:
        done: list[bool] = []
        self.client.on_subscribe = lambda *_args: done.append(True)
        self.client.subscribe([(topic, 1) for topic in topics])
        await wait_until(lambda: bool(done))
