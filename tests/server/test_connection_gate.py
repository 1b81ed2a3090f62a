"""The HTTP site's own accept: refused peers are reset before any HTTP, others are served."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web

from community_server.connection_gate import GatedSite

from .conftest import free_port

REQUEST = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def _ask(port: int, local_address: str) -> bytes:
    """The raw answer to one request from `local_address`; b"" if reset or closed (the
    reset may even reach the client before its connect completes)."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(local_address, 0)
        )
    except ConnectionResetError:
        return b""
    try:
        writer.write(REQUEST)
        return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()


async def test_a_refused_peer_is_reset_unanswered_and_others_are_served(
    socket_enabled: None,
) -> None:
    handled: list[str | None] = []

    async def hello(request: web.Request) -> web.Response:
        handled.append(request.remote)
        return web.Response(text="hello")

    app = web.Application()
    app.add_routes([web.get("/hello", hello)])
    runner = web.AppRunner(app)
    await runner.setup()
    asked: list[str] = []

    def refuse(address: str) -> bool:
        asked.append(address)
        return address == "127.0.0.2"

    port = free_port()
    site = GatedSite(runner, "127.0.0.1", port, refuse=refuse)
    await site.start()
    try:
        assert await _ask(port, "127.0.0.2") == b""
        assert (await _ask(port, "127.0.0.1")).endswith(b"\r\n\r\nhello")
        assert await _ask(port, "127.0.0.2") == b""
    finally:
        await runner.cleanup()
    assert asked == ["127.0.0.2", "127.0.0.1", "127.0.0.2"]
    assert handled == ["127.0.0.1"]  # the refused ones never reached the application
    with pytest.raises(ConnectionRefusedError):  # stopping closed the listening sockets
        await _ask(port, "127.0.0.1")
