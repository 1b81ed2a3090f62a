"""The server's MQTT connection: paho-mqtt's network thread, bridged onto asyncio.

MQTT 5 with a persistent session (clean_start False and a session expiry), QoS 1, and
manual acknowledgement: a message is acknowledged to the broker only when the server
calls `ack()` after storing it, so the broker redelivers anything the server had not
saved when it died. With `protocol = "3.1.1"` (the embedded broker) the session is
persistent through clean_session False instead; everything else is the same.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from netbewust_adapters.mqtt import stop_network_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from paho.mqtt.reasoncodes import ReasonCode

    from .config import MqttConfig

_LOGGER = logging.getLogger(__name__)
QOS = 1
DRAIN_AT_ONCE = 100


class BrokerError(Exception):
    """The broker refused us, could not be reached, or did not confirm a publish."""


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int


class BrokerLink:
    """One MQTT client; `on_message` runs on the event loop for every delivery."""

    def __init__(
        self,
        settings: MqttConfig,
        on_message: Callable[[Incoming], None],
        subscriptions: Sequence[str],
    ) -> None:
        self._settings = settings
        self._on_message = on_message
        self._subscriptions = tuple(subscriptions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        # Deliveries wait here for the event loop, which takes all of them at each wake-up:
        # a flood costs one wake-up per burst, not one per message.
        self._inbox: deque[Incoming] = deque()
        self._draining = False
        self.is_connected = False
        self._stopping = False
        self._mqtt5 = settings.protocol == "5"
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self._mqtt5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if self._mqtt5 else False,
            manual_ack=True,
        )
        self._client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self._client.tls_set(
                ca_certs=settings.tls_ca_file or None,
                certfile=settings.tls_cert_file or None,
                keyfile=settings.tls_key_file or None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_publish = self._handle_publish

    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; raises BrokerError when refused or unreachable."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._inbox.clear()  # left from a loop that stopped; the broker delivers them again
        self._draining = False
        self._connected = self._loop.create_future()
        connect = functools.partial(
            self._client.connect,
            self._settings.host,
            self._settings.port,
            keepalive=self._settings.keepalive_s,
        )
        if self._mqtt5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._settings.session_expiry_s
            connect = functools.partial(connect, clean_start=False, properties=properties)
        try:
            # The first connection is made here so that an unreachable broker or an
            # untrusted certificate fails fast; later drops are retried by paho's thread.
            await self._loop.run_in_executor(None, connect)
        except OSError as err:  # includes ssl.SSLError
            where = f"{self._settings.host}:{self._settings.port}"
            raise BrokerError(f"cannot connect to {where}: {err}") from None
        self._client.loop_start()
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected
        except BaseException as err:
            await self.stop()
            if isinstance(err, TimeoutError):
                raise BrokerError(
                    f"no answer from {self._settings.host}:{self._settings.port}"
                ) from None
            raise

    async def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        # Joining paho's thread blocks briefly; keep the loop free meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, stop_network_thread, self._client)
        self.is_connected = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrokerError("disconnected before the broker confirmed"))
        self._pending.clear()

    def ack(self, incoming: Incoming) -> None:
        self._client.ack(incoming.mid, incoming.qos)

    def publish_at_most_once(self, topic: str, payload: bytes) -> None:
        """QoS 0, not waited for: for what a lost copy only delays (a receipt)."""
        self._client.publish(topic, payload, qos=0)

    async def publish(
        self, topic: str, payload: bytes, *, retain: bool, timeout_s: float = 10.0
    ) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        assert self._loop is not None, "start() first"
        info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        # Safe without a lock: the PUBACK callback reaches this loop only after we await.
        future = self._pending.setdefault(info.mid, self._loop.create_future())
        try:
            async with asyncio.timeout(timeout_s):
                await future
        except TimeoutError:
            raise BrokerError(f"broker did not confirm {topic} (still queued)") from None
        finally:
            self._pending.pop(info.mid, None)

    # --- paho thread callbacks: hand everything to the event loop ---------------------

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # loop closed during shutdown
            _LOGGER.debug("dropped a broker callback after the loop closed")

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._call_soon(self._connect_failed, str(reason_code))
            return
        client.subscribe([(topic, QOS) for topic in self._subscriptions])
        self._call_soon(self._connect_succeeded, flags.session_present)

    def _connect_succeeded(self, session_present: bool) -> None:
        self.is_connected = True
        _LOGGER.info("connected to the broker (session resumed: %s)", session_present)
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(None)

    def _connect_failed(self, reason: str) -> None:
        _LOGGER.error("the broker refused the connection: %s", reason)
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(BrokerError(f"broker refused the connection: {reason}"))

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call_soon(self._disconnected, str(reason_code))

    def _disconnected(self, reason: str) -> None:
        if self.is_connected and not self._stopping:
            _LOGGER.warning("disconnected from the broker (%s); reconnecting", reason)
        self.is_connected = False

    def _handle_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers should refuse these; reject it, never crash
            topic = "<topic is not UTF-8>"
        self._inbox.append(
            Incoming(topic=topic, payload=bytes(msg.payload), mid=msg.mid, qos=msg.qos)
        )
        if not self._draining:  # else the drain scheduled before takes this one too
            self._draining = True
            self._call_soon(self._drain)

    def _drain(self) -> None:
        """On the event loop: hand over the deliveries waiting, in the order they came, at
        most `DRAIN_AT_ONCE` per turn, so that a flood leaves room for the rest of the loop
        (ingest, allocation, HTTP) between turns."""
        self._draining = False  # before taking any: a delivery from now on schedules anew
        inbox = self._inbox
        for _ in range(min(len(inbox), DRAIN_AT_ONCE)):
            self._on_message(inbox.popleft())
        if inbox and not self._draining and self._loop is not None:
            self._draining = True
            self._loop.call_soon(self._drain)

    def _handle_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self._call_soon(self._published, mid, reason_code.is_failure, str(reason_code))

    def _published(self, mid: int, failed: bool, reason: str) -> None:
        future = self._pending.get(mid)
        if future is None or future.done():
            return
        if failed:
            future.set_exception(BrokerError(f"broker refused the publish: {reason}"))
        else:
            future.set_result(None)
