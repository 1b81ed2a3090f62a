"""Protocol messages and a community server, built one way for the server tests."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from community_server.config import ServerConfig
from community_server.server import CommunityServer
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import Message, Telemetry

from .conftest import NOW, Broker, EmbeddedUnderTest

if TYPE_CHECKING:
    from community_server.store import Store


def telemetry(index: int, household: str = "huis-1", power_w: float = 900.0) -> Message:
    """The `index`-th 10-second report of `household`, drawing `power_w` on one phase."""
    moment = NOW + timedelta(seconds=10 * index)
    return Message(
        community="wijk-1",
        household=household,
        sent_at=moment,
        message_id=f"{household}-t{index}",
        body=Telemetry(measured_at=moment, interval_s=10, power_w=(power_w,), participating=True),
    )


def community_limit(max_import_w: float) -> ExternalLimit:
    """A 15-minute community import cap from NOW."""
    return ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=15),
        intervals=(
            LimitInterval(start=NOW, end=NOW + timedelta(minutes=15), max_import_w=max_import_w),
        ),
    )


def community_server(broker: Broker | EmbeddedUnderTest, store: Store) -> CommunityServer:
    """A server on `broker` whose clock stands at NOW."""
    return CommunityServer(ServerConfig(mqtt=broker.mqtt_config()), store, clock=lambda: NOW)
