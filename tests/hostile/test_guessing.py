"""Guessing secrets over HTTP: each attacker address is locked out within 20 attempts, and its
later connections are dropped unanswered, while the household on 127.0.0.1 keeps joining,
reading and reporting."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp
import pytest

from community_server.accounts import SESSION_PATH
from community_server.http_api import API_PREFIX
from community_server.passwords import OPERATOR_HASHER
from tests.server.conftest import NOW

from .conftest import Deployment, report, report_all

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

LOCKED_WITHIN = 20
DROPPED = (0, 0)  # the server closed the connection without answering
OPERATOR_PASSWORD = "correct horse battery staple"


async def _send(request: AbstractAsyncContextManager[aiohttp.ClientResponse]) -> tuple[int, int]:
    """The answer's status and Retry-After, or DROPPED."""
    try:
        async with request as answer:
            await answer.read()
            return answer.status, int(answer.headers.get("Retry-After", "0"))
    except aiohttp.ClientConnectionError:
        return DROPPED


async def _until_locked_out(attempt: Callable[[], Awaitable[tuple[int, int]]]) -> int:
    """Attempts until the answer is a lockout (429 with a long Retry-After); their number."""
    for number in range(1, 200):
        status, retry_after = await attempt()
        if status == 429 and retry_after > 60:
            return number
        assert status in (401, 403, 429)
    pytest.fail("never locked out")


def _join_guesser(session: aiohttp.ClientSession) -> Callable[[], Awaitable[tuple[int, int]]]:
    numbers = iter(range(10**4))

    async def guess() -> tuple[int, int]:
        code = f"AAAA-BBBB-{next(numbers):04d}"
        return await _send(session.post(f"{API_PREFIX}/join", json={"join_code": code}))

    return guess


async def test_join_code_guessing_locks_out_each_address_not_the_household(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="community_server.audit")
    attackers = [deployment.session(f"127.0.0.{n}") for n in (2, 3, 4)]
    try:
        counts = await asyncio.gather(*(_until_locked_out(_join_guesser(s)) for s in attackers))
        assert all(count <= LOCKED_WITHIN for count in counts), counts
        # Locked out: even the right code is not looked at from there.
        code = deployment.store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
        join = {"join_code": code}
        assert await _send(attackers[0].post(f"{API_PREFIX}/join", json=join)) == DROPPED
        async with deployment.session() as household:
            assert (await _send(household.post(f"{API_PREFIX}/join", json=join)))[0] == 201
    finally:
        for session in attackers:
            await session.close()
    assert caplog.text.count("locked out") == 3
    metrics = await deployment.metrics()
    assert 'netbewust_auth_attempts_total{kind="join",outcome="lockout"} 3.0' in metrics


async def test_basic_brute_force_is_locked_out_while_the_household_reads_and_reports(
    deployment: Deployment,
) -> None:
    household = await deployment.household()
    attacker = deployment.session("127.0.0.5")
    try:
        wrong = iter(range(10**4))

        async def guess() -> tuple[int, int]:
            auth = {"Authorization": aiohttp.encode_basic_auth("huis-1", f"guess-{next(wrong)}")}
            return await _send(attacker.get(f"{API_PREFIX}/households/huis-1", headers=auth))

        attack = asyncio.ensure_future(_until_locked_out(guess))
        await report_all(household, [report(i) for i in range(50)])
        assert await attack <= LOCKED_WITHIN
        # Lots more from the locked-out address cost nothing and change nothing.
        for _ in range(200):
            assert await guess() == DROPPED
        assert await deployment.household_answers() == 200
        assert await deployment.wait_stored(50) == {f"huis-1-r{i}" for i in range(50)}
    finally:
        await attacker.close()
        await household.disconnect()
    dropped = re.search(
        r"^netbewust_http_connections_dropped_total (\S+)$", await deployment.metrics(), re.M
    )
    assert dropped is not None
    assert float(dropped[1]) >= 200  # the client may try a dropped GET once more


async def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_lockout(
    deployment: Deployment,
) -> None:
    attacker = deployment.session("127.0.0.6")
    numbers = iter(range(10**4))

    async def guess() -> tuple[int, int]:
        number = next(numbers)
        headers = {"X-Forwarded-For": f"10.9.{number}.1"}  # a new address each time
        join = {"join_code": f"ZZZZ-{number:04d}"}
        return await _send(attacker.post(f"{API_PREFIX}/join", json=join, headers=headers))

    try:
        assert await _until_locked_out(guess) <= LOCKED_WITHIN
    finally:
        await attacker.close()
    assert await deployment.household_answers() == 200


async def test_metrics_token_guessing_is_limited_and_metrics_need_the_token(
    deployment: Deployment,
) -> None:
    attacker = deployment.session("127.0.0.7")
    numbers = iter(range(10**4))

    async def guess() -> tuple[int, int]:
        headers = {"Authorization": f"Bearer guess-{next(numbers)}"}
        return await _send(attacker.get("/metrics", headers=headers))

    try:
        assert (await _send(attacker.get("/metrics")))[0] == 403
        assert await _until_locked_out(guess) <= LOCKED_WITHIN
    finally:
        await attacker.close()
    text = await deployment.metrics()  # the token still works from elsewhere
    assert "netbewust_broker_connected 1.0" in text


async def test_operator_password_guessing_is_locked_out_while_the_operator_logs_in(
    deployment: Deployment,
) -> None:
    deployment.store.add_operator("beheer", OPERATOR_HASHER.hash(OPERATOR_PASSWORD), NOW)
    attacker = deployment.session("127.0.0.8")
    numbers = iter(range(10**4))

    async def guess() -> tuple[int, int]:
        wrong = {"username": "beheer", "password": f"guess-{next(numbers)}-long-enough"}
        return await _send(attacker.post(SESSION_PATH, json=wrong))

    try:
        assert await _until_locked_out(guess) <= LOCKED_WITHIN
        right = {"username": "beheer", "password": OPERATOR_PASSWORD}
        assert await _send(attacker.post(SESSION_PATH, json=right)) == DROPPED
        async with deployment.session() as operator:
            assert (await _send(operator.post(SESSION_PATH, json=right)))[0] == 200
    finally:
        await attacker.close()


async def test_a_guess_from_many_addresses_is_slowed_but_never_locks_everyone_out(
    deployment: Deployment,
) -> None:
    attackers = [deployment.session(f"127.0.1.{n}") for n in range(1, 41)]
    try:
        # Three guesses from each of 40 addresses: under the per-address limits, over the
        # global budget (20/s, a burst of 40), which makes the later ones wait.
        attack = asyncio.gather(
            *(
                _send(session.post(f"{API_PREFIX}/join", json={"join_code": f"Q{n}-{i}"}))
                for n, session in enumerate(attackers)
                for i in range(3)
            )
        )
        await asyncio.sleep(0.2)
        code = deployment.store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
        # Slowed at most, not refused (how long it waits depends on the machine's load, so
        # the budget's effect is read from the metrics below, not timed here).
        async with deployment.session() as newcomer:
            join = {"join_code": code}
            assert (await _send(newcomer.post(f"{API_PREFIX}/join", json=join)))[0] == 201
        assert {status for status, _ in await attack} == {403}
    finally:
        for session in attackers:
            await session.close()
    slowed = re.search(
        r'^netbewust_auth_attempts_total\{kind="join",outcome="slowed"\} (\S+)$',
        await deployment.metrics(),
        re.M,
    )
    assert slowed is not None
    assert float(slowed[1]) > 0
