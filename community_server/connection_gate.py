"""Drop HTTP connections from locked-out addresses before any HTTP is parsed.

A locked-out attacker that keeps trying at a thousand attempts a second would otherwise
cost a whole request cycle per attempt (parse, route, answer 429) on the event loop that
also ingests reports and allocates. Its lockout answer closes the connection, and each new
connection from it is closed when accepted: a few microseconds, no parsing. Connections
from everyone else are handed to aiohttp's own protocol at once and never see the gate.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Callable


class _Gate(asyncio.Protocol):
    def __init__(
        self,
        inner: Callable[[], asyncio.BaseProtocol],
        refuse: Callable[[str], bool],
    ) -> None:
        self._inner = inner
        self._refuse = refuse

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and self._refuse(str(peer[0])):
            transport.close()
            return
        protocol = self._inner()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Only a dropped connection ends here; the others belong to aiohttp."""


class GatedRunner(web.AppRunner):
    """An `AppRunner` whose sites accept connections through the gate; `refuse(address)`
    says which peers to drop."""

    def __init__(self, app: web.Application, refuse: Callable[[str], bool], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._refuse = refuse

    @property
    def server(self) -> Any:
        inner = super().server
        if inner is None:
            return None
        return lambda: _Gate(inner, self._refuse)
