"""Accept HTTP connections ourselves, and reset those from locked-out addresses at once.

A locked-out attacker that keeps trying at a thousand attempts a second would otherwise
cost a whole request cycle per attempt (parse, route, answer 429) on the event loop that
also ingests reports and allocates. Its lockout answer closes the connection; each new
connection from it is refused here, right after `accept()`: before asyncio makes a task,
a transport and a protocol for it (some 40 µs of event loop each), with a reset, so no
socket of ours waits in TIME_WAIT for it either. Connections from everyone else are handed
to asyncio (`connect_accepted_socket`, TLS included) and aiohttp at once.

The listening sockets are the ones asyncio would make for the same host and port (every
address the host resolves to), created with serving left off; the site accepts from them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import TYPE_CHECKING

from aiohttp import web
from yarl import URL

if TYPE_CHECKING:
    from collections.abc import Callable
    from ssl import SSLContext

_LOGGER = logging.getLogger(__name__)
# SO_LINGER on, zero seconds: close() sends a reset and frees the socket at once.
_RESET = struct.pack("ii", 1, 0)
ACCEPT_RETRY_S = 1.0  # out of file descriptors (or the like): stop accepting this long
# After a turn that refused a connection, the next turn waits this long: a locked-out
# flood is then reset in batches, a few loop turns a second instead of one per connection
# (each turn of a busy event loop costs more than the reset itself). Anyone else's
# connection waits at most this long to be accepted meanwhile; the kernel's backlog holds
# them (128 at 5 ms: 25,000 connections a second).
REFUSING_PAUSE_S = 0.005


class GatedSite(web.BaseSite):
    """A TCP site like aiohttp's `TCPSite` whose accepts pass `refuse(address)` first:
    a peer it refuses is reset unanswered."""

    __slots__ = (
        "_accepting",
        "_host",
        "_listening",
        "_loop",
        "_port",
        "_refuse",
        "_resumes",
    )

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        refuse: Callable[[str], bool],
        ssl_context: SSLContext | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._refuse = refuse
        self._listening: list[socket.socket] = []
        self._accepting: set[asyncio.Task[None]] = set()  # the loop only holds weak ones
        self._resumes: set[asyncio.TimerHandle] = set()  # cancelled when the site stops
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return str(URL.build(scheme=scheme, host=self._host, port=self._port))

    async def start(self) -> None:
        await super().start()
        self._loop = asyncio.get_running_loop()
        # asyncio binds (each resolved address, its socket options) but never serves: the
        # site listens and accepts on its own duplicates of those sockets.
        server = await self._loop.create_server(
            asyncio.Protocol, self._host, self._port, backlog=self._backlog, start_serving=False
        )
        self._server = server  # closed by `BaseSite.stop`, with the sockets it made
        for bound in server.sockets:
            listening = bound.dup()
            listening.setblocking(False)
            listening.listen(self._backlog)
            self._listening.append(listening)
            self._loop.add_reader(listening.fileno(), self._accept, listening)

    async def stop(self) -> None:
        for handle in self._resumes:
            handle.cancel()
        self._resumes.clear()
        for listening in self._listening:
            if self._loop is not None:
                self._loop.remove_reader(listening.fileno())
            listening.close()
        self._listening.clear()
        await super().stop()

    def _accept(self, listening: socket.socket) -> None:
        """Everything waiting on `listening`, as asyncio's own accept loop takes it."""
        refused = False
        for _ in range(self._backlog + 1):
            try:
                connection, peer = listening.accept()
            except BlockingIOError, InterruptedError:
                break
            except ConnectionAbortedError:
                continue
            except OSError as err:  # EMFILE and the like keep the socket readable
                _LOGGER.warning("cannot accept HTTP connections (%s); retrying in 1 s", err)
                self._pause(listening, ACCEPT_RETRY_S)
                return
            if isinstance(peer, tuple) and self._refuse(str(peer[0])):
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                connection.close()
                refused = True
                continue
            connection.setblocking(False)
            task = asyncio.ensure_future(self._hand_over(connection))
            self._accepting.add(task)
            task.add_done_callback(self._accepting.discard)
        if refused:
            self._pause(listening, REFUSING_PAUSE_S)

    def _pause(self, listening: socket.socket, seconds: float) -> None:
        assert self._loop is not None
        self._loop.remove_reader(listening.fileno())

        def resume() -> None:
            self._resumes.discard(handle)
            if listening in self._listening and self._loop is not None:
                self._loop.add_reader(listening.fileno(), self._accept, listening)

        handle = self._loop.call_later(seconds, resume)
        self._resumes.add(handle)

    async def _hand_over(self, connection: socket.socket) -> None:
        assert self._loop is not None
        server = self._runner.server
        if server is None:  # the runner is being cleaned up
            connection.close()
            return
        try:
            await self._loop.connect_accepted_socket(server, connection, ssl=self._ssl_context)
        except OSError, TimeoutError:  # a failed TLS handshake, a client already gone
            connection.close()
