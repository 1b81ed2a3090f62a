"""Slow and oversized HTTP clients (slowloris-style): the household is still served at once."""

from __future__ import annotations

import asyncio

from community_server.http_api import API_PREFIX

from .conftest import Deployment, report, report_all

SLOW_ADDRESS = "127.0.0.9"


async def _open(deployment: Deployment, first_bytes: bytes) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", deployment.http_port, local_addr=(SLOW_ADDRESS, 0)
    )
    writer.write(first_bytes)
    await writer.drain()
    return writer


async def test_slow_clients_do_not_hold_up_the_household(deployment: Deployment) -> None:
    unfinished_headers = [
        await _open(deployment, b"GET /api/v1/health HTTP/1.1\r\nHost: netbewust\r\n")
        for _ in range(200)
    ]
    trickled_bodies = [
        await _open(
            deployment,
            b"POST /api/v1/join HTTP/1.1\r\nHost: netbewust\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{",
        )
        for _ in range(20)
    ]
    household = await deployment.household()
    try:
        for number in range(5):
            for writer in unfinished_headers:
                writer.write(b"X-Slow: still here\r\n")  # never the blank line that ends them
            for writer in trickled_bodies:
                writer.write(b" ")
            # Answered while every slow connection is held open (held up, it would wait
            # forever: the test's timeout); how fast depends on the machine's load.
            assert await deployment.household_answers() == 200
            await report_all(household, [report(number)])
        assert await deployment.wait_stored(5) == {f"huis-1-r{n}" for n in range(5)}
    finally:
        for writer in (*unfinished_headers, *trickled_bodies):
            writer.close()
        await household.disconnect()


async def test_oversized_and_endless_http_requests_are_refused(deployment: Deployment) -> None:
    async with deployment.session(SLOW_ADDRESS) as attacker:
        async with attacker.post(f"{API_PREFIX}/join", data=b"{" * 5_000_000) as answer:
            assert answer.status == 413
        long_header = {"X-Long": "a" * 100_000}
        async with attacker.get(f"{API_PREFIX}/health", headers=long_header) as answer:
            assert answer.status in (400, 431)
    assert await deployment.household_answers() == 200
