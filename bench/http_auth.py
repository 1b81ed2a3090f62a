"""Benchmark: what password checks cost over HTTP, and that they stay off the database thread.

Usage: python bench/http_auth.py [--requests N] [--guessers G]

A real HTTP API on 127.0.0.1 over a real SQLite file (no broker needed):
1. one household polls `GET /api/v1/households/{id}/limits` N times with HTTP Basic, with
   the 60 s cache of successful checks (as served) and without it (cache 0 s): latency
   p50/p99 and how often the KDF ran;
2. an operator logs in (argon2id, RFC 9106 low-memory profile): the login's latency;
3. G guessers feed wrong passwords into the server's password checker as fast as it takes
   them (every one runs the KDF: the load of guessing from many addresses, which the
   attempt limits only slow) while the database thread answers a trivial query every
   10 ms: its latency p99 against the idle figure, and the well-behaved household's
   polling latency meanwhile (its check is cached).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._net import free_port
from community_server.config import HttpConfig, ServerConfig
from community_server.http_api import HttpApi, start_site
from community_server.passwords import (
    HOUSEHOLD_HASHER,
    KDF_THREADS,
    OPERATOR_HASHER,
    PasswordChecker,
)
from community_server.rate_limit import RateLimitConfig
from community_server.server import CommunityServer
from community_server.store import Store

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OPEN = RateLimitConfig(free_failures=19, lockout_failures=20, global_per_s=1e9, global_burst=1e9)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _poll(session: aiohttp.ClientSession, url: str, auth: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        async with session.get(url, headers={"Authorization": auth}) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def _guess(checker: PasswordChecker, stored: str, stop: asyncio.Event) -> int:
    """Wrong passwords straight into the checker: the KDF load of guessing from many
    addresses (over HTTP one address is locked out after a few, see bench/abuse.py)."""
    sent = 0
    while not stop.is_set():
        verdict = await checker.check(HOUSEHOLD_HASHER, "h:huis-1", f"guess {sent}", stored)
        assert not verdict.ok
        sent += 1
    return sent


async def _db_latency(server: CommunityServer, store: Store, stop: asyncio.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        await server.run_in_db(store.household, "huis-1")
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.01)
    return latencies


async def _db_under(
    server: CommunityServer, store: Store, seconds: float, load: list[asyncio.Task[int]]
) -> tuple[list[float], int]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_db_latency(server, store, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await probe, sum(await asyncio.gather(*load))


async def run(requests: int, guessers: int, threads: int) -> dict[str, float | int]:
    directory = Path(tempfile.mkdtemp(prefix="netbewust-auth-"))
    store = Store.open(directory / "server.db")
    store.create_community("wijk-1", "Wijk", NOW)
    code = store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
    member = store.redeem_join_code(code, NOW, "huis-1")
    store.add_operator("beheer", OPERATOR_HASHER.hash("a long operator password"), NOW)
    figures: dict[str, float | int] = {}
    for label, cache_s in (("cached", 60.0), ("uncached", 0.0)):
        config = ServerConfig(http=HttpConfig(port=free_port()), rate_limit=OPEN)
        server = CommunityServer(config, store, clock=lambda: NOW)
        api = HttpApi(server, store, config)
        api.accounts.checker.close()
        api.accounts.checker = PasswordChecker(cache_s=cache_s, threads=threads)
        runner = await start_site(api, config)
        base = f"http://127.0.0.1:{config.http.port}/api/v1"
        url = f"{base}/households/huis-1/limits"
        auth = aiohttp.encode_basic_auth(member.username, member.password)
        try:
            async with aiohttp.ClientSession() as session:
                await _poll(session, url, auth, 3)  # warm up (first login upgrades the hash)
                runs_before = api.accounts.checker.kdf_runs
                latencies = await _poll(session, url, auth, requests)
                figures[f"{label}_p50_ms"] = round(statistics.median(latencies), 2)
                figures[f"{label}_p99_ms"] = round(_percentile(latencies, 0.99), 2)
                figures[f"{label}_kdf_runs"] = api.accounts.checker.kdf_runs - runs_before
                if label != "cached":
                    continue
                started = time.perf_counter()
                login = {"username": "beheer", "password": "a long operator password"}
                async with session.post(f"{base}/session", json=login) as response:
                    assert response.status == 200
                figures["operator_login_ms"] = round((time.perf_counter() - started) * 1000, 1)
                idle, _ = await _db_under(server, store, 2.0, [])
                login_row = store.http_login("huis-1")
                assert login_row is not None
                assert login_row.http_password_hash is not None
                stop = asyncio.Event()
                checker = api.accounts.checker
                load = [
                    asyncio.create_task(_guess(checker, login_row.http_password_hash, stop))
                    for _ in range(guessers)
                ]
                polling = asyncio.create_task(_poll(session, url, auth, 50))
                busy, _ = await _db_under(server, store, 5.0, [])
                polled = await polling
                stop.set()
                guesses = sum(await asyncio.gather(*load))
                figures["db_idle_p99_ms"] = round(_percentile(idle, 0.99), 2)
                figures["db_under_guessing_p99_ms"] = round(_percentile(busy, 0.99), 2)
                figures["wrong_guesses_per_s"] = round(guesses / 5.0, 1)
                figures["household_p99_under_guessing_ms"] = round(_percentile(polled, 0.99), 2)
        finally:
            await runner.cleanup()
            await server.stop()
    store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--guessers", type=int, default=4)
    parser.add_argument("--kdf-threads", type=int, default=KDF_THREADS)
    args = parser.parse_args()
    figures = asyncio.run(run(args.requests, args.guessers, args.kdf_threads))
    rows = (
        ("household poll p50, cached (ms)", figures["cached_p50_ms"]),
        ("household poll p99, cached (ms)", figures["cached_p99_ms"]),
        (f"KDF runs in {args.requests} polls, cached", figures["cached_kdf_runs"]),
        ("household poll p50, no cache (ms)", figures["uncached_p50_ms"]),
        ("household poll p99, no cache (ms)", figures["uncached_p99_ms"]),
        (f"KDF runs in {args.requests} polls, no cache", figures["uncached_kdf_runs"]),
        ("operator login (ms)", figures["operator_login_ms"]),
        ("wrong passwords checked per s", figures["wrong_guesses_per_s"]),
        ("database thread p99 idle (ms)", figures["db_idle_p99_ms"]),
        ("database thread p99 under guessing (ms)", figures["db_under_guessing_p99_ms"]),
        ("household poll p99 under guessing (ms)", figures["household_p99_under_guessing_ms"]),
    )
    width = max(len(name) for name, _ in rows)
    print(f"{'figure':<{width}}  value")
    print("-" * (width + 10))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
