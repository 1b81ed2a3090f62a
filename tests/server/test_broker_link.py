"""BrokerLink details that a well-behaved broker never exercises."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as mqtt
import pytest

from community_server.broker_link import BrokerLink, Incoming
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
