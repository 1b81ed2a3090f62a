"""Accounts and roles over a real HTTP server on 127.0.0.1 and a real SQLite file.

Operators log in (session cookie, CSRF token, expiry on the server's clock, logout);
households authenticate with HTTP Basic and see only themselves; DSO tokens reach only
the DSO API; anonymous callers get no per-household data, and the public view only
aggregates over at least ten homes. Households export and delete their own data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import ssl
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import pytest
from argon2 import PasswordHasher

from community_server.accounts import CSRF_HEADER, SESSION_COOKIE
from community_server.config import ConfigError, DashboardConfig, HttpConfig, ServerConfig
from community_server.credentials import hash_password, verify_password
from community_server.dashboard import Dashboard
from community_server.dso.audit import DsoStore
from community_server.dso.http_routes import DsoAccount, DsoHttpApi, hash_token
from community_server.http_api import HttpApi, start_site
from community_server.passwords import OPERATOR_HASHER, PasswordChecker, verify
from community_server.rate_limit import RateLimitConfig
from community_server.schema import MIGRATIONS
from community_server.server import CommunityServer
from community_server.store import Store, to_ms
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import Channel, Message, Telemetry
from tests.clock import NOW, FixedClock

from .conftest import SERVER_ACCOUNT, Broker, free_port
from .household_client import HouseholdClient, wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from community_server.mosquitto import TlsFiles
    from community_server.store import HouseholdCredentials

OPERATOR = "beheer"
OPERATOR_PASSWORD = "correct horse battery staple"
DSO_TOKEN = "dso-token-of-stedin-0123456789"
SESSION_HOURS = 8.0
# Rate limiting is another test's subject: these tests may fail as often as they need.
LENIENT = RateLimitConfig(free_failures=19, lockout_failures=20, global_per_s=1000.0)


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any


@dataclass
class Site:
    base: str
    server: CommunityServer
    store: Store
    api: HttpApi
    clock: FixedClock
    browser: aiohttp.ClientSession  # keeps cookies, like the operator's browser
    members: dict[str, HouseholdCredentials]

    async def call(
        self,
        method: str,
        path: str,
        *,
        household: str | None = None,
        headers: dict[str, str] | None = None,
        as_browser: bool = False,
        **kwargs: Any,
    ) -> Answer:
        """A request; `household`: with its Basic credentials; `as_browser`: with cookies."""
        headers = dict(headers or {})
        if household is not None:
            credentials = self.members[household]
            headers["Authorization"] = aiohttp.encode_basic_auth(
                credentials.username, credentials.password
            )
        session = self.browser if as_browser else None
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as anonymous,
            (session or anonymous).request(
                method,
                f"{self.base}{path}",
                headers=headers,
                allow_redirects=False,
                **kwargs,
            ) as response,
        ):
            text = await response.text()
            body = json.loads(text) if response.content_type == "application/json" else text
            return Answer(response.status, body, response.headers)

    async def log_in(self, password: str = OPERATOR_PASSWORD) -> Answer:
        return await self.call(
            "POST",
            "/api/v1/session",
            json={"username": OPERATOR, "password": password},
            as_browser=True,
        )


def _join(
    store: Store, household: str, transformer: str | None = "trafo-1"
) -> HouseholdCredentials:
    code = store.issue_join_code("wijk-1", NOW, timedelta(days=1), transformer).code
    return store.redeem_join_code(code, NOW, household)


@pytest.fixture
async def site(
    server_store: Store, tmp_path: Path, request: pytest.FixtureRequest, socket_enabled: None
) -> AsyncIterator[Site]:
    dashboard_config: DashboardConfig = getattr(
        request, "param", DashboardConfig(session_hours=SESSION_HOURS)
    )
    server_store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 250_000.0)
    members = {name: _join(server_store, name) for name in ("huis-1", "huis-2")}
    server_store.add_operator(OPERATOR, OPERATOR_HASHER.hash(OPERATOR_PASSWORD), NOW)
    config = ServerConfig(
        http=HttpConfig(port=free_port()), dashboard=dashboard_config, rate_limit=LENIENT
    )
    clock = FixedClock(NOW)
    server = CommunityServer(config, server_store, clock=clock)  # no broker needed here
    api = HttpApi(server, server_store, config)
    dso_store = DsoStore.open(tmp_path / "server.db")
    dso_api = DsoHttpApi(
        dso_store, (DsoAccount("stedin", hash_token(DSO_TOKEN)),), {"trafo-1"}.__contains__, clock
    )
    public = dashboard_config.public_min_households if dashboard_config.public else None
    dashboard = Dashboard(server, server_store, public_min_households=public)
    runner = await start_site(api, config, dashboard, more_routes=(dso_api.register,))
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            yield Site(
                f"http://127.0.0.1:{config.http.port}",
                server,
                server_store,
                api,
                clock,
                browser,
                members,
            )
    finally:
        await runner.cleanup()
        await server.stop()
        dso_store.close()


def _session_rows(store: Store) -> list[tuple[Any, ...]]:
    """The stored sessions, read over a connection of its own (as another process would)."""
    path = store._db.execute("PRAGMA database_list").fetchone()[2]
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT * FROM operator_sessions").fetchall()
    finally:
        connection.close()


# --- operator sessions ---------------------------------------------------------------


async def test_an_operator_logs_in_sees_everything_and_logs_out(site: Site) -> None:
    assert (await site.call("GET", "/api/v1/dashboard", as_browser=True)).status == 401
    page = await site.call("GET", "/dashboard/", as_browser=True)
    assert (page.status, page.headers["Location"]) == (302, "/dashboard/login")
    login_page = await site.call("GET", "/dashboard/login")
    assert login_page.status == 200
    assert 'type="password"' in login_page.body

    answer = await site.log_in()
    assert answer.status == 200
    assert answer.body["username"] == OPERATOR
    assert answer.body["expires_at"] == (NOW + timedelta(hours=SESSION_HOURS)).isoformat()
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", f"Max-Age={8 * 3600}"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain HTTP here; the TLS test sees it set
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token not in (await site.call("GET", "/api/v1/health")).body.values()
    # The database keeps only the token's hash.
    [row] = _session_rows(site.store)
    assert token not in json.dumps(row)
    assert row[0] == hashlib.sha256(token.encode()).hexdigest()

    data = await site.call("GET", "/api/v1/dashboard", as_browser=True)
    assert data.status == 200
    assert {row["household"] for row in data.body["households"]} == {"huis-1", "huis-2"}
    assert (await site.call("GET", "/dashboard/", as_browser=True)).status == 200
    current = await site.call("GET", "/api/v1/session", as_browser=True)
    assert current.body["csrf_token"] == answer.body["csrf_token"]
    # An operator may read any household's resources with the session alone.
    assert (await site.call("GET", "/api/v1/households/huis-2", as_browser=True)).status == 200

    # Logging out changes state: without the session's CSRF token it is refused.
    refused = await site.call("DELETE", "/api/v1/session", as_browser=True)
    assert (refused.status, refused.body["error"]) == (403, "csrf")
    forged = {CSRF_HEADER: "0" * 64}
    assert (
        await site.call("DELETE", "/api/v1/session", headers=forged, as_browser=True)
    ).status == 403
    csrf = {CSRF_HEADER: answer.body["csrf_token"]}
    out = await site.call("DELETE", "/api/v1/session", headers=csrf, as_browser=True)
    assert out.status == 204
    assert (
        f"{SESSION_COOKIE}=;" in out.headers["Set-Cookie"]
        or "Max-Age=0" in out.headers["Set-Cookie"]
    )
    assert _session_rows(site.store) == []
    assert (await site.call("GET", "/api/v1/dashboard", as_browser=True)).status == 401
    # The old token is dead even when presented again by hand.
    replay = await site.call(
        "GET", "/api/v1/dashboard", headers={"Cookie": f"{SESSION_COOKIE}={token}"}
    )
    assert replay.status == 401


async def test_sessions_end_on_the_servers_clock(site: Site) -> None:
    assert (await site.log_in()).status == 200
    site.clock.advance(timedelta(hours=SESSION_HOURS) - timedelta(seconds=1))
    assert (await site.call("GET", "/api/v1/dashboard", as_browser=True)).status == 200
    site.clock.advance(timedelta(seconds=1))
    expired = await site.call("GET", "/api/v1/dashboard", as_browser=True)
    assert (expired.status, expired.body["error"]) == (401, "unauthorized")
    assert "WWW-Authenticate" not in expired.headers  # no Basic dialog in the browser
    page = await site.call("GET", "/dashboard/", as_browser=True)
    assert (page.status, page.headers["Location"]) == (302, "/dashboard/login")
    # The next login forgets the expired session's row.
    assert (await site.log_in()).status == 200
    assert len(_session_rows(site.store)) == 1


async def test_wrong_or_malformed_logins_get_no_session(site: Site) -> None:
    wrong = await site.log_in("correct horse battery stapler")
    assert (wrong.status, wrong.body["error"]) == (401, "unauthorized")
    assert "Set-Cookie" not in wrong.headers
    unknown = await site.call(
        "POST", "/api/v1/session", json={"username": "nobody", "password": OPERATOR_PASSWORD}
    )
    assert unknown.status == 401
    assert unknown.body == wrong.body  # an unknown name is told apart from nothing
    for body in (
        {"username": OPERATOR},
        {"username": OPERATOR, "password": OPERATOR_PASSWORD, "admin": True},
        {"username": OPERATOR, "password": 12},
        [OPERATOR, OPERATOR_PASSWORD],
    ):
        assert (await site.call("POST", "/api/v1/session", json=body)).status == 400, body
    not_json = await site.call(
        "POST", "/api/v1/session", data="{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status == 400
    form = await site.call(
        "POST", "/api/v1/session", data={"username": OPERATOR, "password": OPERATOR_PASSWORD}
    )
    assert form.status == 415  # a cross-site form cannot log a browser in
    cross_site = await site.call(
        "POST",
        "/api/v1/session",
        json={"username": OPERATOR, "password": OPERATOR_PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status == 403
    runs = site.api.accounts.checker.kdf_runs
    huge = await site.call(
        "POST", "/api/v1/session", json={"username": OPERATOR, "password": "x" * 5000}
    )
    assert huge.status in (401, 413)
    assert site.api.accounts.checker.kdf_runs == runs  # refused before any KDF
    assert _session_rows(site.store) == []
    assert (await site.log_in()).status == 200  # the right password still works


async def test_operator_logins_are_rate_limited_per_address(
    server_store: Store, socket_enabled: None
) -> None:
    server_store.add_operator(OPERATOR, OPERATOR_HASHER.hash(OPERATOR_PASSWORD), NOW)
    # The default per-address limits; the global budget (which only delays) is not under test.
    limits = RateLimitConfig(global_max_delay_s=0.0)
    config = ServerConfig(http=HttpConfig(port=free_port()), rate_limit=limits)
    server = CommunityServer(config, server_store, clock=FixedClock(NOW))
    # The limiter's clock stands still: the back-off cannot run out during the test.
    api = HttpApi(server, server_store, config, attempt_clock=lambda: 1000.0)
    runner = await start_site(api, config)
    url = f"http://127.0.0.1:{config.http.port}/api/v1/session"
    wrong = {"username": OPERATOR, "password": "not the password at all"}
    statuses = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(config.rate_limit.free_failures + 1):
                async with session.post(url, json=wrong) as response:
                    statuses.append(response.status)
            right = {"username": OPERATOR, "password": OPERATOR_PASSWORD}
            async with session.post(url, json=right) as response:
                assert response.status == 429  # backing off: not even the right one now
                assert int(response.headers["Retry-After"]) >= 1
                assert "Set-Cookie" not in response.headers
    finally:
        await runner.cleanup()
        await server.stop()
    assert statuses == [401] * (config.rate_limit.free_failures + 1)


# --- roles ---------------------------------------------------------------------------


async def test_each_role_reaches_only_its_own_resources(site: Site) -> None:
    dso = {"Authorization": f"Bearer {DSO_TOKEN}"}
    # The DSO token works where it belongs...
    assert (await site.call("GET", "/api/v1/dso/audit", headers=dso)).status == 200
    # ...and nowhere else.
    for method, path in (
        ("GET", "/api/v1/households/huis-1"),
        ("GET", "/api/v1/households/huis-1/limits"),
        ("GET", "/api/v1/households/huis-1/export"),
        ("DELETE", "/api/v1/households/huis-1"),
        ("GET", "/api/v1/dashboard"),
        ("GET", "/api/v1/session"),
        ("DELETE", "/api/v1/session"),
    ):
        answer = await site.call(method, path, headers=dso)
        assert answer.status in (401, 403), (method, path)
    assert (await site.call("GET", "/dashboard/", headers=dso)).status == 302
    # A household's Basic credentials are no DSO token and no operator login.
    assert (await site.call("GET", "/api/v1/dso/audit", household="huis-1")).status == 401
    assert (await site.call("GET", "/api/v1/dashboard", household="huis-1")).status == 401
    assert (await site.call("GET", "/api/v1/session", household="huis-1")).status == 401
    # Household A sees itself, never B.
    assert (await site.call("GET", "/api/v1/households/huis-1", household="huis-1")).status == 200
    for path in ("", "/limits", "/export"):
        other = await site.call("GET", f"/api/v1/households/huis-2{path}", household="huis-1")
        assert (other.status, other.body["error"]) == (403, "forbidden"), path
    assert (
        await site.call("DELETE", "/api/v1/households/huis-2", household="huis-1")
    ).status == 403
    assert site.store.household("huis-2") is not None
    # Anonymous: no per-household data anywhere, and the public view is off by default.
    for path in (
        "/api/v1/dashboard",
        "/api/v1/households/huis-1",
        "/api/v1/households/huis-1/export",
    ):
        answer = await site.call("GET", path)
        assert answer.status == 401, path
        assert "huis-" not in json.dumps(answer.body)
    assert (await site.call("GET", "/api/v1/public")).status == 404
    assert (await site.call("GET", "/dashboard/public")).status == 404
    assert (await site.call("GET", "/api/v1/health")).status == 200
    # The metrics are for operators (or the metrics token) alone.
    assert (await site.call("GET", "/metrics")).status == 403
    assert (await site.call("GET", "/metrics", headers=dso)).status == 403
    assert (await site.call("GET", "/metrics", household="huis-1")).status == 403
    assert (await site.log_in()).status == 200
    metrics = await site.call("GET", "/metrics", as_browser=True)
    assert metrics.status == 200
    assert "netbewust_messages_rejected_total" in metrics.body


async def test_households_http_checks_are_cached_and_leave_the_database_thread(site: Site) -> None:
    checker = site.api.accounts.checker
    assert (await site.call("GET", "/api/v1/households/huis-1", household="huis-1")).status == 200
    runs = checker.kdf_runs
    for _ in range(5):
        assert (
            await site.call("GET", "/api/v1/households/huis-1/limits", household="huis-1")
        ).status == 200
    assert checker.kdf_runs == runs  # a household's polling runs no KDF within the minute
    site.members["huis-1"] = type(site.members["huis-1"])(
        "huis-1", "wijk-1", "huis-1", site.members["huis-1"].password + "x"
    )
    assert (await site.call("GET", "/api/v1/households/huis-1", household="huis-1")).status == 401
    assert checker.kdf_runs == runs + 1  # a wrong password is never served from the cache


# --- the public view -----------------------------------------------------------------


PUBLIC = DashboardConfig(public=True, public_min_households=10)


@pytest.mark.parametrize("site", [PUBLIC], indirect=True)
async def test_the_public_view_shows_only_aggregates_over_ten_homes(site: Site) -> None:
    store = site.store
    store.create_transformer("trafo-2", "wijk-1", "Trafo 2", 400_000.0)
    store.create_transformer("trafo-3", "wijk-1", "Trafo 3", 400_000.0)
    for number in range(3, 11):  # trafo-1: huis-1 .. huis-10, ten homes
        site.members[f"huis-{number}"] = _join(store, f"huis-{number}")
    for number in range(11, 21):  # trafo-2: ten homes
        _join(store, f"huis-{number}", "trafo-2")
    for number in range(21, 30):  # trafo-3: nine homes, too few to show
        _join(store, f"huis-{number}", "trafo-3")
    for number in (*range(1, 10), *range(11, 21), *range(21, 30)):  # trafo-1: 9 report
        site.server.latest_telemetry[f"huis-{number}"] = Telemetry(
            measured_at=NOW, interval_s=10, power_w=(1000.0 + number,), participating=True
        )
    page = await site.call("GET", "/dashboard/public")
    assert page.status == 200
    assert 'data-view="public"' in page.body
    answer = await site.call("GET", "/api/v1/public")
    assert answer.status == 200
    document = answer.body
    assert (document["min_households"], document["hidden_transformers"]) == (10, 1)
    shown = {summary["transformer"]: summary for summary in document["transformers"]}
    assert set(shown) == {"trafo-1", "trafo-2"}
    # Nine of ten reporting: the sum would be nearly each home's load, so it is withheld.
    assert (shown["trafo-1"]["members"], shown["trafo-1"]["reporting"]) == (10, 9)
    assert shown["trafo-1"]["load_w"] is None
    assert shown["trafo-2"]["load_w"] == sum(1000 + number for number in range(11, 21))
    text = json.dumps(document)
    assert "huis-" not in text
    assert "households" not in document
    assert "dso" not in document
    # The operator's view still has every household.
    assert (await site.log_in()).status == 200
    full = await site.call("GET", "/api/v1/dashboard", as_browser=True)
    assert len(full.body["households"]) == 29


def test_a_public_threshold_below_ten_homes_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 10"):
        DashboardConfig(public=True, public_min_households=9)
    with pytest.raises(ConfigError, match="session_hours"):
        DashboardConfig(session_hours=0)


# --- password hashes -----------------------------------------------------------------


def _version_2_database(path: Path) -> str:
    """A database as the server left it before accounts: households with `$7$` hashes only."""
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    for version, script in MIGRATIONS[:2]:
        connection.executescript(script)
        connection.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, to_ms(NOW)))
    old_hash = hash_password("the-old-household-password")
    connection.execute("INSERT INTO communities VALUES ('wijk-1', 'Wijk', ?)", (to_ms(NOW),))
    connection.execute(
        "INSERT INTO households (household_id, community_id, joined_at)"
        " VALUES ('huis-9', 'wijk-1', ?)",
        (to_ms(NOW),),
    )
    connection.execute(
        "INSERT INTO credentials VALUES ('huis-9', 'huis-9', ?, ?)", (old_hash, to_ms(NOW))
    )
    connection.commit()
    connection.close()
    return old_hash


async def test_an_old_pbkdf2_hash_is_upgraded_at_the_next_login(
    tmp_path: Path, socket_enabled: None
) -> None:
    path = tmp_path / "old.db"
    old_hash = _version_2_database(path)
    store = Store.open(path)  # migrates to the accounts schema
    config = ServerConfig(http=HttpConfig(port=free_port()), rate_limit=LENIENT)
    server = CommunityServer(config, store, clock=FixedClock(NOW))
    api = HttpApi(server, store, config)
    runner = await start_site(api, config)
    url = f"http://127.0.0.1:{config.http.port}/api/v1/households/huis-9"
    try:
        login = store.http_login("huis-9")
        assert login is not None
        assert login.http_password_hash is None
        async with aiohttp.ClientSession() as session:
            wrong = {"Authorization": aiohttp.encode_basic_auth("huis-9", "not-the-password")}
            async with session.get(url, headers=wrong) as response:
                assert response.status == 401
            assert store.http_login("huis-9").http_password_hash is None  # type: ignore[union-attr]
            right = {
                "Authorization": aiohttp.encode_basic_auth("huis-9", "the-old-household-password")
            }
            async with session.get(url, headers=right) as response:
                assert response.status == 200
            upgraded = store.http_login("huis-9")
            assert upgraded is not None
            assert upgraded.http_password_hash is not None
            assert upgraded.http_password_hash.startswith("$argon2id$")
            # The broker keeps its own hash format, untouched.
            assert upgraded.broker_password_hash == old_hash
            assert [account.password_hash for account in store.broker_accounts()] == [old_hash]
            # From now on the argon2 hash decides; the `$7$` one is not consulted.
            store.replace_http_password_hash(
                "huis-9", PasswordHasher().hash("a-new-http-password"), upgraded.http_password_hash
            )
            async with session.get(url, headers=right) as response:
                assert response.status == 401
    finally:
        await runner.cleanup()
        await server.stop()
        store.close()


async def test_an_operator_hash_with_old_parameters_is_upgraded_at_login(site: Site) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(OPERATOR_PASSWORD)
    assert site.store.set_operator_password(OPERATOR, weak, NOW)
    assert (await site.log_in()).status == 200
    upgraded = site.store.operator_password_hash(OPERATOR)
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106 low-memory
    assert OPERATOR_HASHER.verify(upgraded, OPERATOR_PASSWORD)


def test_verification_upgrades_old_formats_and_refuses_garbage() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    strong = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
    assert verify(strong, "pw", hash_password("pw")).rehashed is not None  # `$7$` -> argon2id
    assert not verify(strong, "other", hash_password("pw")).ok
    outdated = verify(strong, "pw", weak.hash("pw"))
    assert outdated.ok
    assert outdated.rehashed is not None
    assert strong.verify(outdated.rehashed, "pw")
    current = verify(strong, "pw", strong.hash("pw"))
    assert (current.ok, current.rehashed) == (True, None)
    for garbage in ("", "plain", "$argon2id$v=19$garbage", "$7$x$y$z", "$6$salt$hash"):
        assert not verify(strong, "pw", garbage).ok, garbage
    assert verify_password("pw", hash_password("pw"))  # the broker's format is unchanged


class _ThreadRecordingHasher(PasswordHasher):
    threads: set[str]

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.threads.add(threading.current_thread().name)
        return super().verify(hash, password)


async def test_the_checker_runs_off_the_loop_and_caches_for_a_minute_only() -> None:
    hasher = _ThreadRecordingHasher(time_cost=1, memory_cost=1024, parallelism=1)
    hasher.threads = set()
    stored = hasher.hash("secret")
    now = [1000.0]
    checker = PasswordChecker(cache_s=60.0, clock=lambda: now[0])
    try:
        assert (await checker.check(hasher, "huis-1", "secret", stored)).ok
        assert (await checker.check(hasher, "huis-1", "secret", stored)).ok
        assert checker.kdf_runs == 1
        assert hasher.threads
        assert all(name.startswith("netbewust-kdf") for name in hasher.threads)
        now[0] += 59.0
        assert (await checker.check(hasher, "huis-1", "secret", stored)).ok
        assert checker.kdf_runs == 1
        now[0] += 2.0  # past the minute
        assert (await checker.check(hasher, "huis-1", "secret", stored)).ok
        assert checker.kdf_runs == 2
        # Another stored hash (a new password) misses the cache; so does another name.
        assert not (await checker.check(hasher, "huis-1", "secret", hasher.hash("new"))).ok
        assert (await checker.check(hasher, "huis-2", "secret", stored)).ok
        assert checker.kdf_runs == 4
        # Wrong passwords and unknown accounts run the KDF every time.
        for _ in range(2):
            assert not (await checker.check(hasher, "huis-1", "guess", stored)).ok
            assert not (await checker.check(hasher, "nobody", "guess", None)).ok
        assert checker.kdf_runs == 8
        # The cache holds keyed digests, never a password.
        assert all(b"secret" not in key for key in checker._verified)
    finally:
        checker.close()


# --- a household's own data ----------------------------------------------------------


async def _give_huis_1_data(site: Site) -> None:
    telemetry = Telemetry(measured_at=NOW, interval_s=10, power_w=(1234.0,), participating=True)
    message = Message(community="wijk-1", household="huis-1", sent_at=NOW, body=telemetry)
    assert site.store.save_received([message], NOW) == []
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
        intervals=(LimitInterval(start=NOW, end=NOW + timedelta(minutes=5), max_import_w=4000),),
    )
    await site.server.send_limits({"huis-1": limit})  # recorded, not published: no broker


async def test_a_household_exports_then_deletes_its_data(site: Site) -> None:
    await _give_huis_1_data(site)
    answer = await site.call("GET", "/api/v1/households/huis-1/export", household="huis-1")
    assert answer.status == 200
    assert answer.headers["Content-Disposition"] == 'attachment; filename="huis-1.json"'
    document = answer.body
    assert (document["household"], document["community"], document["transformer"]) == (
        "huis-1",
        "wijk-1",
        "trafo-1",
    )
    assert [row["power_w"] for row in document["telemetry"]] == [[1234.0]]
    assert document["telemetry"][0]["measured_at"] == NOW.isoformat(timespec="milliseconds")
    assert [row["kind"] for row in document["sent"]] == ["limits"]
    assert document["sent"][0]["message"]["household"] == "huis-1"
    text = json.dumps(document)
    assert site.members["huis-1"].password not in text
    assert "$7$" not in text  # no secrets, not even hashed
    assert "argon2" not in text
    assert "huis-2" not in text

    gone = await site.call("DELETE", "/api/v1/households/huis-1", household="huis-1")
    assert gone.status == 204
    assert site.store.household("huis-1") is None
    assert site.store.telemetry("huis-1") == []
    assert site.store.latest_sent("huis-1", "limits") is None
    assert "huis-1" not in site.server.latest_telemetry
    assert site.store.http_login("huis-1") is None
    # The cached check does not outlive the account.
    after = await site.call("GET", "/api/v1/households/huis-1/export", household="huis-1")
    assert after.status == 401
    assert site.store.household("huis-2") is not None  # the neighbour keeps everything


async def test_an_operator_deletes_only_with_the_csrf_token(site: Site) -> None:
    await _give_huis_1_data(site)
    login = await site.log_in()
    exported = await site.call("GET", "/api/v1/households/huis-1/export", as_browser=True)
    assert exported.status == 200
    assert len(exported.body["telemetry"]) == 1
    refused = await site.call("DELETE", "/api/v1/households/huis-1", as_browser=True)
    assert refused.status == 403
    assert site.store.household("huis-1") is not None
    csrf = {CSRF_HEADER: login.body["csrf_token"]}
    done = await site.call("DELETE", "/api/v1/households/huis-1", headers=csrf, as_browser=True)
    assert done.status == 204
    assert site.store.household("huis-1") is None
    missing = await site.call("GET", "/api/v1/households/huis-1/export", as_browser=True)
    assert missing.status == 404


async def test_over_tls_the_session_cookie_is_secure(
    server_store: Store, tls_files: TlsFiles, socket_enabled: None
) -> None:
    server_store.add_operator(OPERATOR, OPERATOR_HASHER.hash(OPERATOR_PASSWORD), NOW)
    http = HttpConfig(
        port=free_port(),
        tls_cert_file=str(tls_files.cert_file),
        tls_key_file=str(tls_files.key_file),
    )
    config = ServerConfig(http=http, rate_limit=LENIENT)
    server = CommunityServer(config, server_store, clock=FixedClock(NOW))
    runner = await start_site(HttpApi(server, server_store, config), config)
    trust = ssl.create_default_context(cafile=str(tls_files.ca_file))
    login = {"username": OPERATOR, "password": OPERATOR_PASSWORD}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"https://127.0.0.1:{http.port}/api/v1/session", json=login, ssl=trust
            ) as response,
        ):
            assert response.status == 200
            cookie = response.headers["Set-Cookie"]
            for attribute in ("Secure", "HttpOnly", "SameSite=Strict"):
                assert attribute in cookie
    finally:
        await runner.cleanup()
        await server.stop()


@pytest.mark.parametrize(
    ("trusted", "forwarded", "secure"),
    [("127.0.0.1", "https", True), ("127.0.0.1", "http", False), ("", "https", False)],
)
async def test_behind_a_trusted_tls_proxy_the_session_cookie_is_secure(
    server_store: Store, socket_enabled: None, trusted: str, forwarded: str, secure: bool
) -> None:
    server_store.add_operator(OPERATOR, OPERATOR_HASHER.hash(OPERATOR_PASSWORD), NOW)
    limits = RateLimitConfig(trusted_proxies=trusted)
    config = ServerConfig(http=HttpConfig(port=free_port()), rate_limit=limits)
    server = CommunityServer(config, server_store, clock=FixedClock(NOW))
    runner = await start_site(HttpApi(server, server_store, config), config)
    login = {"username": OPERATOR, "password": OPERATOR_PASSWORD}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{config.http.port}/api/v1/session",
                json=login,
                headers={"X-Forwarded-Proto": forwarded, "X-Forwarded-For": "192.0.2.7"},
            ) as response,
        ):
            assert response.status == 200
            assert ("Secure" in response.headers["Set-Cookie"]) is secure
    finally:
        await runner.cleanup()
        await server.stop()


async def test_a_deleted_household_loses_its_broker_account_and_retained_limit(
    broker: Broker, server_store: Store, tmp_path: Path
) -> None:
    member = _join(server_store, "huis-1", transformer=None)
    broker.reload(server_store)
    config = ServerConfig(
        mqtt=broker.mqtt_config(),
        mosquitto=broker.accounts_config(),
        http=HttpConfig(port=free_port()),
        rate_limit=LENIENT,
    )
    server = CommunityServer(config, server_store, clock=FixedClock(NOW))
    await server.start()
    runner = await start_site(HttpApi(server, server_store, config), config)
    household = HouseholdClient("wijk-1", "huis-1", broker.port, member.password)
    # Sees what is retained for huis-1, as any new subscriber would (not the server's client id).
    inspector = HouseholdClient(
        "wijk-1",
        "huis-1",
        broker.port,
        SERVER_ACCOUNT.password,
        username=SERVER_ACCOUNT.username,
        client_id="retained-inspector",
    )
    limits_topic = household.topic(Channel.LIMITS)
    try:
        assert not (await household.connect()).is_failure
        await household.subscribe(limits_topic)
        limit = ExternalLimit(
            source=LimitSource.COMMUNITY,
            issued_at=NOW,
            expires_at=NOW + timedelta(minutes=5),
            intervals=(
                LimitInterval(start=NOW, end=NOW + timedelta(minutes=5), max_import_w=4000),
            ),
        )
        await server.send_limit("huis-1", limit)
        await wait_until(lambda: len(household.received) == 1)
        auth = {"Authorization": aiohttp.encode_basic_auth(member.username, member.password)}
        async with (
            aiohttp.ClientSession() as session,
            session.delete(
                f"http://127.0.0.1:{config.http.port}/api/v1/households/huis-1", headers=auth
            ) as response,
        ):
            assert response.status == 204
        assert server_store.household("huis-1") is None
        # Its credentials no longer open the broker.
        again = HouseholdClient("wijk-1", "huis-1", broker.port, member.password)
        assert (await again.connect()).is_failure
        await again.disconnect()
        # Nothing of its limit is retained for the next subscriber.
        assert not (await inspector.connect()).is_failure
        await inspector.subscribe(limits_topic)
        await asyncio.sleep(0.5)  # a retained message arrives right after the subscription
        assert [message.payload for message in inspector.received] == []
    finally:
        await inspector.disconnect()
        await household.disconnect()
        await runner.cleanup()
        await server.stop()
