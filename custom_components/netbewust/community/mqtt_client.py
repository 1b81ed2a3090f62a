"""The household's MQTT link to its community broker (paho-mqtt on its own thread).

paho's network loop runs in its own thread (`loop_start`); every callback is handed to
Home Assistant's event loop with `call_soon_threadsafe`, so the runtime only ever runs
there. Blocking calls (TLS setup, joining paho's thread) go to the executor. QoS 1 with
a persistent MQTT 5 session: what the server sends while the household is away is
delivered when it is back, and the retained limit on subscribe.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from homeassistant.util.ssl import client_context
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..adapters.mqtt import stop_network_thread
from .join import trust_context

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Sequence

    from paho.mqtt.reasoncodes import ReasonCode

    from .join import MqttSettings

KEEPALIVE_S = 30
SESSION_EXPIRY_S = 7 * 24 * 3600
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
PROBE_TIMEOUT_S = 10.0
# mosquitto rereads its password file on SIGHUP, a moment after the join answered.
PROBE_AUTH_RETRY_S = 5.0
_AUTH_REFUSALS = frozenset({0x86, 0x87})  # bad user name or password, not authorized


class ProbeResult(StrEnum):
    OK = "ok"
    CANNOT_CONNECT = "cannot_connect"
    INVALID_AUTH = "invalid_auth"
    TLS_ERROR = "tls_error"


def is_auth_refusal(reason: ReasonCode) -> bool:
    return reason.value in _AUTH_REFUSALS


@dataclass(frozen=True, slots=True)
class Will:
    """Published by the broker, retained, when the household drops without a goodbye."""

    topic: str
    payload: bytes


def _new_client(settings: MqttSettings, client_id: str, will: Will | None) -> mqtt.Client:
    """A configured paho client; blocking (TLS context), so call it in the executor."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set_context(
            trust_context(settings.ca_pem) if settings.ca_pem else client_context()
        )
    if will is not None:
        client.will_set(will.topic, will.payload, qos=1, retain=True)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def _session_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    return properties


def probe(settings: MqttSettings) -> ProbeResult:
    """Connect once with these credentials and leave; blocking, for the executor.

    The household's own client id (the broker refuses any other for its account, so nobody
    can take over another's session), with a clean session: a running link is taken over
    and reconnects on its own, subscribing again (the limit is retained).
    """
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    auth_deadline = time.monotonic() + PROBE_AUTH_RETRY_S
    while True:
        result = _probe_once(settings, deadline)
        if result is not ProbeResult.INVALID_AUTH or time.monotonic() > auth_deadline:
            return result
        time.sleep(0.2)


def _probe_once(settings: MqttSettings, deadline: float) -> ProbeResult:
    client = _new_client(settings, settings.client_id, None)
    answer: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    try:
        client.connect(settings.host, settings.port, KEEPALIVE_S, clean_start=True)
        while not answer and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    except ssl.SSLError:
        return ProbeResult.TLS_ERROR
    except TimeoutError, OSError, ValueError:
        return ProbeResult.CANNOT_CONNECT
    finally:
        client.disconnect()
    if not answer:
        return ProbeResult.CANNOT_CONNECT
    if is_auth_refusal(answer[0]):
        return ProbeResult.INVALID_AUTH
    return ProbeResult.CANNOT_CONNECT if answer[0].is_failure else ProbeResult.OK


@dataclass(frozen=True, slots=True)
class LinkCallbacks:
    """Called on Home Assistant's event loop, never on paho's thread."""

    on_connected: Callable[[], None]
    on_disconnected: Callable[[], None]
    on_refused: Callable[[ReasonCode], None]
    on_message: Callable[[str, bytes], None]
    on_unreachable: Callable[[], None]  # a connection attempt failed before any answer


class CommunityLink:
    """One persistent MQTT session for one household."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settings: MqttSettings,
        subscriptions: Sequence[str],
        will: Will,
        callbacks: LinkCallbacks,
    ) -> None:
        self._loop = loop
        self._settings = settings
        self._subscriptions = tuple(subscriptions)
        self._will = will
        self._callbacks = callbacks
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Blocking (TLS setup, thread start): run in the executor."""
        client = _new_client(self._settings, self._settings.client_id, self._will)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        client.connect_async(
            self._settings.host,
            self._settings.port,
            KEEPALIVE_S,
            clean_start=False,
            properties=_session_properties(),
        )
        self._client = client
        client.loop_start()

    def stop(self, goodbye: tuple[str, bytes] | None) -> None:
        """Blocking (joins paho's thread): run in the executor."""
        client, self._client = self._client, None
        if client is None:
            return
        if goodbye is not None and self._connected.is_set():
            info = client.publish(goodbye[0], goodbye[1], qos=1, retain=True)
            info.wait_for_publish(timeout=2.0)
        client.disconnect()
        stop_network_thread(client)
        self._connected.clear()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Queue at QoS 1; paho resends it after a reconnect. False when not started."""
        client = self._client
        if client is None:
            return False
        info = client.publish(topic, payload, qos=1, retain=retain)
        return info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)

    # paho's thread ---------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _properties: object,
    ) -> None:
        if reason.is_failure:
            self._loop.call_soon_threadsafe(self._callbacks.on_refused, reason)
            return
        self._connected.set()
        client.subscribe([(topic, 1) for topic in self._subscriptions])
        self._loop.call_soon_threadsafe(self._callbacks.on_connected)

    def _on_connect_fail(self, *_args: object) -> None:
        self._loop.call_soon_threadsafe(self._callbacks.on_unreachable)

    def _on_disconnect(self, *_args: object) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected:
            self._loop.call_soon_threadsafe(self._callbacks.on_disconnected)

    def _on_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = ""  # not a protocol topic: the runtime rejects it
        self._loop.call_soon_threadsafe(self._callbacks.on_message, topic, bytes(message.payload))
