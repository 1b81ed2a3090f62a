"""Attempt limits on a fake clock: back-off, lockout, refunds, the global budget, proxies."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from community_server.config import ConfigError, load_config
from community_server.rate_limit import (
    AttemptLimiter,
    RateLimitConfig,
    RateLimitConfigError,
    address_key,
    client_address,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(clock: Clock, **settings: float) -> AttemptLimiter:
    return AttemptLimiter("basic", RateLimitConfig(**settings), clock)  # type: ignore[arg-type]


def test_free_failures_then_doubling_back_off_then_lockout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="community_server.audit")
    clock = Clock()
    limiter = _limiter(clock, free_failures=3, lockout_failures=8, backoff_s=2.0)
    for _ in range(3):
        assert limiter.attempt("10.0.0.9").allowed
    waits = []
    for _ in range(2):  # the 4th and 5th failures: each allowed, then a wait twice as long
        assert limiter.attempt("10.0.0.9").allowed
        refused = limiter.attempt("10.0.0.9.")  # another key: unaffected
        assert refused.allowed
        early = limiter.attempt("10.0.0.9")
        assert not early.allowed  # did not wait: refused and counted
        waits.append(early.retry_after_s)
        clock.now += early.retry_after_s
    assert waits == [2.0, 8.0]  # doubled, and the early attempt counted as a failure too
    eighth = limiter.attempt("10.0.0.9")  # after waiting as told, yet the 8th: locked out
    assert not eighth.allowed  # unchecked, as every later attempt
    assert eighth.retry_after_s == pytest.approx(900.0)
    assert limiter.is_locked_out("10.0.0.9")
    locked = limiter.attempt("10.0.0.9")
    assert not locked.allowed
    assert locked.retry_after_s == pytest.approx(900.0)
    assert limiter.counts["lockout"] == 1
    assert "locked out" in caplog.text
    assert "backed off" in caplog.text


def test_an_attacker_hammering_is_locked_out_within_the_lockout_count() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    attempts = checked = 0
    while not limiter.is_locked_out("192.0.2.7") and attempts < 1000:
        clock.now += 0.001  # 1,000 attempts per second
        attempts += 1
        checked += limiter.attempt("192.0.2.7").allowed
    assert attempts <= 10
    assert checked == 6  # five free and one after which it was told to wait


def test_success_refunds_the_attempt_and_a_household_never_backs_off() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    for _ in range(500):
        clock.now += 0.1
        assert limiter.attempt("198.51.100.1").allowed
        limiter.succeeded("198.51.100.1")
    assert not limiter.is_locked_out("198.51.100.1")
    assert limiter.counts["backoff"] == 0


def test_lockout_ends_in_back_off_and_quiet_addresses_are_forgotten() -> None:
    clock = Clock()
    limiter = _limiter(clock, lockout_s=60.0, forget_s=600.0)
    while not limiter.is_locked_out("192.0.2.8"):
        clock.now += 100.0  # waits every back-off out, still locked out in the end
        limiter.attempt("192.0.2.8")
    clock.now += 61.0
    assert limiter.attempt("192.0.2.8").allowed  # one more try, then told to wait again
    assert not limiter.attempt("192.0.2.8").allowed
    clock.now += 10_000.0
    for _ in range(5):
        assert limiter.attempt("192.0.2.8").allowed


def test_global_budget_slows_but_never_refuses_and_spares_known_households() -> None:
    clock = Clock()
    limiter = _limiter(clock, global_per_s=10.0, global_burst=5.0, global_max_delay_s=1.5)
    assert limiter.attempt("203.0.113.1").allowed
    limiter.succeeded("203.0.113.1")  # a household that knows its password
    delays = []
    for number in range(200):  # 200 attackers, one guess each, all at once
        verdict = limiter.attempt(f"10.1.{number // 250}.{number % 250}")
        assert verdict.allowed
        delays.append(verdict.delay_s)
    assert delays[:4] == [0.0] * 4  # the burst
    assert max(delays) == pytest.approx(1.5)  # capped, never refused
    household = limiter.attempt("203.0.113.1")
    assert household.allowed
    assert household.delay_s == 0.0
    assert limiter.counts["slowed"] > 150


def test_ipv6_is_limited_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2::5") == address_key("2001:db8:1:2:ffff::1")
    assert address_key("2001:db8:1:2::5") != address_key("2001:db8:1:3::5")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("not an address\n") == "not an address\n"[:64]


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    spoofed = ["1.2.3.4"]
    assert client_address("192.0.2.1", spoofed, trusted) == "192.0.2.1"
    assert client_address("10.0.0.2", ["1.2.3.4, 192.0.2.50"], trusted) == "192.0.2.50"
    # Hops through several trusted proxies are skipped; the client wrote the leftmost.
    assert client_address("10.0.0.2", ["6.6.6.6, 192.0.2.50, 10.0.0.3"], trusted) == "192.0.2.50"
    assert client_address("10.0.0.2", ["garbage, 10.0.0.3"], trusted) == "10.0.0.3"
    assert client_address("10.0.0.2", [], trusted) == "10.0.0.2"
    assert client_address(None, spoofed, trusted) == "unknown"


def test_too_many_tracked_addresses_forget_the_quietest() -> None:
    clock = Clock()
    limiter = _limiter(clock, max_addresses=3)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        limiter.attempt(address)
    assert len(limiter._addresses) == 3
    assert "10.0.0.1" not in limiter._addresses


@pytest.mark.parametrize(
    "settings",
    [
        {"free_failures": 10, "lockout_failures": 10},
        {"lockout_failures": 21},
        {"backoff_s": 0.0},
        {"global_per_s": 0.0},
        {"login_global_burst": 0.5},
        {"max_addresses": 0},
        {"trusted_proxies": "10.0.0.0/8, proxy.example"},
    ],
)
def test_unusable_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(RateLimitConfigError):
        RateLimitConfig(**settings)  # type: ignore[arg-type]


def test_settings_from_the_environment() -> None:
    config = load_config(
        None,
        {
            "NETBEWUST_RATE_LIMIT_LOCKOUT_FAILURES": "8",
            "NETBEWUST_RATE_LIMIT_TRUSTED_PROXIES": "10.0.0.1, fd00::/8",
            "NETBEWUST_HTTP_METRICS_TOKEN": "t" * 40,
        },
    )
    assert config.rate_limit.lockout_failures == 8
    assert len(config.rate_limit.trusted) == 2
    assert config.http.metrics_token == "t" * 40
    assert "t" * 40 not in repr(config)
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_config(None, {"NETBEWUST_RATE_LIMIT_TRUSTED_PROXIES": "proxy.example"})


def test_operator_logins_have_a_smaller_global_budget() -> None:
    clock = Clock()
    config = RateLimitConfig(login_global_per_s=2.0, login_global_burst=4.0)
    login = AttemptLimiter("login", config, clock)
    basic = AttemptLimiter("basic", config, clock)
    login_delays = [login.attempt(f"10.2.0.{n}").delay_s for n in range(8)]
    basic_delays = [basic.attempt(f"10.2.0.{n}").delay_s for n in range(8)]
    assert login_delays == [0.0] * 4 + [0.5, 1.0, 1.5, 2.0]  # the 2 s cap
    assert basic_delays == [0.0] * 8
