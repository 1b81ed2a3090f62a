"""Home Assistant's MQTT link for a membership, without a broker: tests that check what a
household sends (and when) swap it in for `CommunityLink`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from custom_components.netbewust.community.mqtt_client import LinkCallbacks


class RecordingLink:
    """It reports itself connected at once (setup waits for that) and keeps what it would
    publish."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        _settings: object,
        _subscriptions: object,
        _will: object,
        callbacks: LinkCallbacks,
    ) -> None:
        self._loop = loop
        self._callbacks = callbacks
        self.published: list[tuple[str, bytes]] = []
        self.is_connected = False

    def start(self) -> None:
        """Nothing to connect to: connected at once."""
        self.is_connected = True
        self._loop.call_soon_threadsafe(self._callbacks.on_connected)

    def stop(self, goodbye: tuple[str, bytes] | None) -> None:
        """Nothing to disconnect."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        self.published.append((topic, payload))
        return True
