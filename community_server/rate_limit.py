"""Attempt limits for secrets that can be guessed: join codes, operator logins, HTTP Basic.

Per client address (IPv6 per /64, which one subscriber usually holds): the first
`free_failures` failures are free, each further one makes the address wait twice as long
before its next attempt (answered 429 with Retry-After, without checking anything), and
`lockout_failures` failures lock the address out for `lockout_s`. An attempt made while
told to wait counts as a failure too, so a client hammering at any rate is locked out
after `lockout_failures` attempts. Every attempt is counted when it starts and refunded
when it succeeds, so concurrent guesses cannot slip past the count.

A global budget (`global_per_s`; for operator logins, whose KDF costs some 0.2 s of CPU,
`login_global_per_s`) slows checks from all addresses together, for attackers with many
addresses; it only delays (at most `global_max_delay_s`), never refuses, and an
address whose last attempt succeeded is not slowed by it: a household that knows its
credentials keeps working whatever others do.

Lockouts, back-off and global slow-down are audited: a WARNING on the
`community_server.audit` logger and a count in the server's metrics.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

AUDIT = logging.getLogger("community_server.audit")

type Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimitConfigError(ValueError):
    """A `[rate_limit]` setting that cannot be used."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitConfig:
    """The `[rate_limit]` section."""

    free_failures: int = 5
    lockout_failures: int = 10
    backoff_s: float = 1.0  # after the free failures; doubles with each further one
    backoff_max_s: float = 60.0
    lockout_s: float = 900.0
    forget_s: float = 3600.0  # an address quiet this long starts afresh
    # Checks per second, all addresses together: a household's HTTP password check costs
    # some 20 ms of CPU, so this bounds a distributed guess to a fifth of a core.
    global_per_s: float = 10.0
    global_burst: float = 10.0
    global_max_delay_s: float = 2.0
    # Operator logins run a deliberately slow KDF: a budget of their own keeps a login
    # flood from taking the CPU that ingest and allocation need.
    login_global_per_s: float = 2.0
    login_global_burst: float = 4.0
    max_addresses: int = 100_000  # tracked per kind; the longest quiet are forgotten first
    # Comma-separated addresses or networks whose X-Forwarded-For is believed.
    trusted_proxies: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.free_failures < self.lockout_failures <= 20:
            raise RateLimitConfigError(
                "rate_limit: need 0 <= free_failures < lockout_failures <= 20"
            )
        if min(self.backoff_s, self.backoff_max_s, self.lockout_s, self.forget_s) <= 0:
            raise RateLimitConfigError("rate_limit: durations must be positive")
        if (
            min(self.global_per_s, self.login_global_per_s) <= 0
            or min(self.global_burst, self.login_global_burst) < 1
            or self.global_max_delay_s < 0
        ):
            raise RateLimitConfigError(
                "rate_limit: global rates must be positive, global bursts at least 1"
            )
        if self.max_addresses < 1:
            raise RateLimitConfigError("rate_limit.max_addresses must be at least 1")
        trusted_networks(self.trusted_proxies)  # raises on a typo at start, not per request

    def global_budget(self, kind: str) -> tuple[float, float]:
        """Checks per second and burst, all addresses together, for one kind of secret."""
        if kind == "login":
            return self.login_global_per_s, self.login_global_burst
        return self.global_per_s, self.global_burst

    @property
    def trusted(self) -> tuple[Network, ...]:
        return trusted_networks(self.trusted_proxies)


def trusted_networks(setting: str) -> tuple[Network, ...]:
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in setting.split(",")
            if part.strip()
        )
    except ValueError as err:
        raise RateLimitConfigError(f"rate_limit.trusted_proxies: {err}") from None


@functools.lru_cache(maxsize=4096)  # attackers hammer from few addresses: parse each once
def address_key(address: str) -> str:
    """What limits are kept per: the address itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # a Unix socket or an unparsable peer: one bucket per name
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read from the right (the entry our own
    proxy added) past every trusted hop; the first untrusted entry is the client. Entries
    to the left of it were written by the client and prove nothing.
    """
    if peer is None:
        return "unknown"
    if not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage from a client behind the proxy: stop at the last good hop
        client = hop
        if not is_trusted(hop, trusted):
            break
    return client


def is_trusted(address: str, trusted: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


@dataclass(frozen=True, slots=True)
class Verdict:
    """`allowed`: check the secret, after sleeping `delay_s`; else answer 429."""

    allowed: bool
    retry_after_s: float = 0.0
    delay_s: float = 0.0


@dataclass(slots=True)
class _Address:
    failures: int = 0
    wait_until: float = 0.0
    locked_until: float = 0.0
    last_seen: float = 0.0
    good: bool = False  # succeeded since it was last forgotten


@dataclass(slots=True)
class AttemptLimiter:
    """The limits of one kind of attempt (`join`, `login`, `basic`, …); event loop only."""

    kind: str
    config: RateLimitConfig = field(default_factory=RateLimitConfig)
    clock: Callable[[], float] = time.monotonic
    # outcome -> count: allowed, refused, backoff, lockout, slowed, succeeded
    counts: Counter[str] = field(default_factory=Counter)
    _addresses: dict[str, _Address] = field(default_factory=dict)
    _rate: float = field(init=False)
    _burst: float = field(init=False)
    _tokens: float = field(init=False)
    _refilled_at: float = field(init=False)
    _slowing: bool = False

    def __post_init__(self) -> None:
        self._rate, self._burst = self.config.global_budget(self.kind)
        self._tokens = self._burst
        self._refilled_at = self.clock()

    def attempt(self, address: str) -> Verdict:
        """Call before checking a secret from `address`; then `succeeded` if it was right."""
        now = self.clock()
        key = address_key(address)
        state = self._state(key, now)
        if state.locked_until > now:
            self.counts["refused"] += 1
            return Verdict(allowed=False, retry_after_s=state.locked_until - now)
        # Exempt from the global budget: it proved it knows its secret, and is not guessing.
        exempt = state.good and state.failures < self.config.free_failures
        state.failures += 1  # refunded on success
        if state.wait_until > now:  # did not wait as told
            self.counts["refused"] += 1
            if state.failures >= self.config.lockout_failures:
                self._lock(key, state, now)
                return Verdict(allowed=False, retry_after_s=state.locked_until - now)
            return Verdict(allowed=False, retry_after_s=state.wait_until - now)
        if state.failures >= self.config.lockout_failures:
            # Refused unchecked, like every later attempt: whether this one came early or
            # after its backoff (a slow attacker) must not change what it is told.
            self.counts["refused"] += 1
            self._lock(key, state, now)
            return Verdict(allowed=False, retry_after_s=state.locked_until - now)
        if state.failures > self.config.free_failures:
            extra = state.failures - self.config.free_failures - 1
            wait = min(self.config.backoff_s * 2**extra, self.config.backoff_max_s)
            state.wait_until = now + wait
            self.counts["backoff"] += 1
            AUDIT.warning(
                "%s: %s backed off %.0f s after %d failures", self.kind, key, wait, state.failures
            )
        self.counts["allowed"] += 1
        return Verdict(allowed=True, delay_s=self._global_delay(now, exempt=exempt))

    def succeeded(self, address: str) -> None:
        key = address_key(address)
        state = self._addresses.get(key)
        if state is None:
            return
        self.counts["succeeded"] += 1
        state.failures = max(0, state.failures - 1)
        if state.failures <= self.config.free_failures:
            state.wait_until = 0.0
        state.good = True

    def is_locked_out(self, address: str) -> bool:
        if not self.counts["lockout"]:  # the common case, checked on every new connection
            return False
        state = self._addresses.get(address_key(address))
        return state is not None and state.locked_until > self.clock()

    def _lock(self, key: str, state: _Address, now: float) -> None:
        state.locked_until = now + self.config.lockout_s
        state.wait_until = 0.0
        self.counts["lockout"] += 1
        AUDIT.warning(
            "%s: %s locked out for %.0f s after %d failed or early attempts",
            self.kind,
            key,
            self.config.lockout_s,
            state.failures,
        )

    def _state(self, key: str, now: float) -> _Address:
        state = self._addresses.pop(key, None)  # re-inserted last: dict order is recency
        if state is None or (
            now - state.last_seen > self.config.forget_s and state.locked_until <= now
        ):
            state = _Address()
            if len(self._addresses) >= self.config.max_addresses:
                del self._addresses[next(iter(self._addresses))]
        elif 0 < state.locked_until <= now:  # served its time: back to back-off, not free
            state.locked_until = 0.0
            state.failures = self.config.free_failures
        state.last_seen = now
        self._addresses[key] = state
        return state

    def _global_delay(self, now: float, *, exempt: bool) -> float:
        """Spend one token of the global budget; the wait for it, capped."""
        config = self.config
        self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
        if exempt:
            return 0.0
        # The deficit is capped: beyond it attempts wait the maximum but are never refused.
        self._tokens = max(self._tokens - 1, -self._rate * config.global_max_delay_s)
        if self._tokens >= 0:
            if self._slowing and self._tokens >= self._burst / 2:
                self._slowing = False
                AUDIT.warning("%s: global attempt rate back to normal", self.kind)
            return 0.0
        self.counts["slowed"] += 1
        if not self._slowing:
            self._slowing = True
            AUDIT.warning(
                "%s: more than %.0f attempts/s from all addresses; slowing them down",
                self.kind,
                self._rate,
            )
        return -self._tokens / self._rate
