"""BrokerLink details that a well-behaved broker never exercises."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as mqtt
import pytest

from community_server.broker_link import DRAIN_AT_ONCE, BrokerLink, Incoming
from community_server.config import MqttConfig
from netbewust_core.protocol.messages import ErrorCode, ProtocolError, decode_for_topic


async def test_a_topic_that_is_not_utf8_is_passed_on_for_rejection() -> None:
    received: list[Incoming] = []
    link = BrokerLink(MqttConfig(password="x"), received.append, [])
    link._loop = asyncio.get_running_loop()
    message = mqtt.MQTTMessage(mid=5, topic=b"netbewust/v1/\xff/huis-1/telemetry")
    message.payload = b"{}"
    message.qos = 1
    link._handle_message(link._client, None, message)  # as paho's thread would
    await asyncio.sleep(0)
    [incoming] = received
    assert (incoming.mid, incoming.qos, incoming.payload) == (5, 1, b"{}")
    with pytest.raises(ProtocolError) as caught:
        decode_for_topic(incoming.topic, incoming.payload)
    assert caught.value.code is ErrorCode.BAD_TOPIC


async def test_a_flood_is_handed_over_in_order_a_bounded_number_per_loop_turn() -> None:
    loop = asyncio.get_running_loop()
    received: list[int] = []
    turns: list[int] = []  # how many deliveries had arrived at each turn of the other task
    link = BrokerLink(MqttConfig(password="x"), lambda incoming: received.append(incoming.mid), [])
    link._loop = loop
    total = 3 * DRAIN_AT_ONCE + 7

    def deliver_all() -> None:  # paho's thread, with a burst waiting on its socket
        for mid in range(1, total + 1):
            message = mqtt.MQTTMessage(mid=mid, topic=b"netbewust/v1/w/h/telemetry")
            message.qos = 1
            link._handle_message(link._client, None, message)

    async def other_work() -> None:  # an allocation round's steps, say
        while len(received) < total:
            turns.append(len(received))
            await asyncio.sleep(0)

    deliver_all()
    await other_work()
    assert received == list(range(1, total + 1))
    # The other task ran between every DRAIN_AT_ONCE deliveries, not after the whole burst.
    assert turns[:4] == [0, DRAIN_AT_ONCE, 2 * DRAIN_AT_ONCE, 3 * DRAIN_AT_ONCE]
