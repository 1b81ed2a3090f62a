"""paho-mqtt helpers shared by Home Assistant's membership link and the community server."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paho.mqtt.client import Client


def stop_network_thread(client: Client) -> None:
    """`client.loop_stop()`, safe when the network thread ends by itself meanwhile.

    paho 2.1's thread sets its `_thread` to None as it finishes (it does after a
    `disconnect()`); landing between `loop_stop`'s check and its `join()`, that raises
    AttributeError although the thread is already gone, which is all `loop_stop` waits for.
    """
    with contextlib.suppress(AttributeError):
        client.loop_stop()
