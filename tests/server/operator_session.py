"""An operator logged in to a running server, for tests that read the dashboard's JSON."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import aiohttp

from community_server.passwords import OPERATOR_HASHER

from .conftest import NOW

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from community_server.store import Store

OPERATOR = "beheer"
OPERATOR_PASSWORD = "an operator's long password"


def add_operator(store: Store) -> None:
    """The test operator, unless the store has it already."""
    if store.operator_password_hash(OPERATOR) is None:
        store.add_operator(OPERATOR, OPERATOR_HASHER.hash(OPERATOR_PASSWORD), NOW)


@contextlib.asynccontextmanager
async def operator_session(base: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser-like client (it keeps cookies, also for 127.0.0.1), logged in at `base`."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        login = {"username": OPERATOR, "password": OPERATOR_PASSWORD}
        async with session.post(f"{base}/api/v1/session", json=login) as response:
            assert response.status == 200, await response.text()
        yield session
