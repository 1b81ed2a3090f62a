"""Password checks over HTTP: argon2id hashes, verified off the database thread, cached briefly.

Operators choose their passwords, so theirs get RFC 9106's low-memory argon2id profile
(64 MiB, 3 passes, 4 lanes). A household's HTTP password is its MQTT password: 256 random
bits, nothing to guess, so OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane) keeps its
checks cheap. The broker keeps mosquitto's own `$7$` PBKDF2 hash (`credentials.py`); a
password that only has such a hash is checked against it once and answered with an
argon2id hash to store (as is one hashed with older argon2 parameters).

`PasswordChecker` runs the KDF on a thread of its own, never the database thread,
and remembers successful checks for `CACHE_S` seconds: a household polling every few
seconds runs the KDF once a minute, not on every request. The cache is keyed by an HMAC
(with a key made at start and never stored) of the user name, password and stored hash,
so it holds no password, and a changed or removed account misses it at once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from .credentials import verify_password as verify_mosquitto_hash

if TYPE_CHECKING:
    from collections.abc import Callable

OPERATOR_HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
HOUSEHOLD_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
CACHE_S = 60.0
MAX_CACHED = 10_000
# One thread: a flood of wrong passwords can take at most one core from ingest and allocation.
KDF_THREADS = 1


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Checked when the user name is unknown: it costs as much as a wrong password."""
    return hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    rehashed: str | None = None  # a better hash of the same password, to store


def verify(hasher: PasswordHasher, password: str, stored: str) -> Verdict:
    """Check a password against an argon2 or mosquitto `$7$` hash (blocking: runs the KDF)."""
    if stored.startswith("$argon2"):
        try:
            hasher.verify(stored, password)
        except VerificationError, InvalidHashError:
            return Verdict(ok=False)
        return Verdict(True, hasher.hash(password) if hasher.check_needs_rehash(stored) else None)
    if stored.startswith("$7$") and verify_mosquitto_hash(password, stored):
        return Verdict(True, hasher.hash(password))
    return Verdict(ok=False)


def _refuse(hasher: PasswordHasher, password: str) -> None:
    verify(hasher, password, _dummy_hash(hasher))


class PasswordChecker:
    """Verifies passwords on its own threads; successful checks are remembered briefly."""

    def __init__(
        self,
        *,
        cache_s: float = CACHE_S,
        threads: int = KDF_THREADS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache_s = cache_s
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, float] = {}  # cache key -> monotonic expiry
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="netbewust-kdf")
        self.kdf_runs = 0  # how often the KDF ran (the cache's effect, for tests and metrics)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def check(
        self, hasher: PasswordHasher, username: str, password: str, stored: str | None
    ) -> Verdict:
        """Verify `password` against `stored` (None: no such account, always refused)."""
        loop = asyncio.get_running_loop()
        if stored is None:
            self.kdf_runs += 1
            await loop.run_in_executor(self._executor, _refuse, hasher, password)
            return Verdict(ok=False)
        key = self._cache_key(username, password, stored)
        now = self._clock()
        expiry = self._verified.get(key)
        if expiry is not None and now < expiry:
            return Verdict(ok=True)
        self.kdf_runs += 1
        verdict = await loop.run_in_executor(self._executor, verify, hasher, password, stored)
        if verdict.ok:
            self._remember(self._cache_key(username, password, verdict.rehashed or stored))
        return verdict

    def _cache_key(self, username: str, password: str, stored: str) -> bytes:
        material = json.dumps([username, password, stored]).encode()
        return hmac.new(self._key, material, hashlib.sha256).digest()

    def _remember(self, key: bytes) -> None:
        now = self._clock()
        if len(self._verified) >= MAX_CACHED:
            self._verified = {k: t for k, t in self._verified.items() if t > now}
            while len(self._verified) >= MAX_CACHED:  # all still valid: drop the oldest
                del self._verified[next(iter(self._verified))]
        self._verified[key] = now + self._cache_s
