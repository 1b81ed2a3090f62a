"""Settlement over HTTP: operators read, close and export; a household reads only its own."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from community_server.accounts import CSRF_HEADER
from community_server.config import HttpConfig, ServerConfig
from community_server.http_api import HttpApi, start_site
from community_server.passwords import OPERATOR_HASHER
from community_server.rate_limit import RateLimitConfig
from community_server.server import CommunityServer
from netbewust_core.protocol.messages import Message, Telemetry
from tests.clock import NOW, FixedClock

from .conftest import free_port
from .operator_session import OPERATOR, OPERATOR_PASSWORD

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from community_server.store import HouseholdCredentials, Store

LENIENT = RateLimitConfig(free_failures=19, lockout_failures=20, global_per_s=1000.0)
DECEMBER = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@dataclass
class Site:
    base: str
    clock: FixedClock
    browser: aiohttp.ClientSession
    members: dict[str, HouseholdCredentials]
    csrf: str = ""

    async def log_in(self) -> None:
        """A fresh session (moving the clock a week on ends the old one)."""
        login = {"username": OPERATOR, "password": OPERATOR_PASSWORD}
        status, body, _ = await self.call("POST", "/session", json=login)
        assert status == 200
        self.csrf = body["csrf_token"]

    async def call(
        self, method: str, path: str, *, household: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, str]:
        headers = dict(kwargs.pop("headers", {}))
        session = self.browser
        if household is not None:
            credentials = self.members[household]
            headers["Authorization"] = aiohttp.encode_basic_auth(
                credentials.username, credentials.password
            )
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as anonymous,
            (anonymous if household or kwargs.pop("anonymous", False) else session).request(
                method, f"{self.base}/api/v1{path}", headers=headers, **kwargs
            ) as response,
        ):
            text = await response.text()
            body = json.loads(text) if response.content_type == "application/json" else text
            return response.status, body, response.content_type


@pytest.fixture
async def site(
    server_store: Store, members: dict[str, HouseholdCredentials], socket_enabled: None
) -> AsyncIterator[Site]:
    server_store.add_operator(OPERATOR, OPERATOR_HASHER.hash(OPERATOR_PASSWORD), NOW)
    for index, household in enumerate(("huis-1", "huis-2")):
        reports = [
            Message(
                community="wijk-1",
                household=household,
                sent_at=NOW,
                body=Telemetry(
                    measured_at=NOW + timedelta(minutes=15 * q),
                    interval_s=900,
                    power_w=(1000.0 * (index + 1),),
                    participating=True,
                ),
            )
            for q in range(1, 9)
        ]
        assert server_store.save_received(reports, NOW + timedelta(hours=2)) == []
    config = ServerConfig(http=HttpConfig(port=free_port()), rate_limit=LENIENT)
    clock = FixedClock(NOW + timedelta(hours=2))
    server = CommunityServer(config, server_store, clock=clock)
    runner = await start_site(HttpApi(server, server_store, config), config)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            site = Site(f"http://127.0.0.1:{config.http.port}", clock, browser, members)
            await site.log_in()
            yield site
    finally:
        await runner.cleanup()
        await server.stop()


async def test_an_operator_previews_closes_and_exports_a_period(site: Site) -> None:
    status, overview, _ = await site.call("GET", "/communities/wijk-1/settlement")
    assert status == 200
    assert (overview["open_period"], overview["rules"]["version"]) == ("2026-11", 1)
    assert overview["periods"] == []
    status, preview, _ = await site.call("GET", "/communities/wijk-1/settlement/2026-11")
    assert status == 200
    assert preview["closed"] is False
    assert [h["household"] for h in preview["households"]] == ["huis-1", "huis-2"]
    assert [h["import_kwh"] for h in preview["households"]] == [
        pytest.approx(2.0),
        pytest.approx(4.0),
    ]

    close = "/communities/wijk-1/settlement/2026-11/close"
    status, refused, _ = await site.call("POST", close)
    assert (status, refused["error"]) == (403, "csrf")
    csrf = {CSRF_HEADER: site.csrf}
    status, early, _ = await site.call("POST", close, headers=csrf)
    assert (status, early["error"]) == (409, "conflict")
    site.clock.current = DECEMBER
    await site.log_in()
    csrf = {CSRF_HEADER: site.csrf}
    status, closed, _ = await site.call("POST", close, headers=csrf)
    assert status == 201
    assert (closed["closed"], closed["rules_version"], closed["close_number"]) == (True, 1, 1)
    assert closed["credit_cents"] == sum(h["credit_cents"] for h in closed["households"])
    status, again, _ = await site.call("POST", close, headers=csrf)
    assert (status, again["error"]) == (409, "conflict")
    status, stored, _ = await site.call("GET", "/communities/wijk-1/settlement/2026-11")
    assert stored == closed
    status, text, kind = await site.call(
        "GET", "/communities/wijk-1/settlement/2026-11", params={"format": "csv"}
    )
    assert (status, kind) == (200, "text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["household"], r["kind"], r["rules_version"]) for r in rows] == [
        ("huis-1", "statement", "1"),
        ("huis-2", "statement", "1"),
    ]
    status, overview, _ = await site.call("GET", "/communities/wijk-1/settlement")
    assert [p["period"] for p in overview["periods"]] == ["2026-11"]


async def test_a_household_reads_only_its_own_statement(site: Site) -> None:
    status, own, _ = await site.call(
        "GET", "/households/huis-1/settlement/2026-11", household="huis-1"
    )
    assert status == 200
    assert own["statement"]["household"] == "huis-1"
    assert own["statement"]["import_kwh"] == pytest.approx(2.0)
    assert "huis-2" not in json.dumps(own)
    assert own["rules_version"] == own["rules"]["version"] == 1
    status, other, _ = await site.call(
        "GET", "/households/huis-2/settlement/2026-11", household="huis-1"
    )
    assert (status, other["error"]) == (403, "forbidden")
    status, _, _ = await site.call("GET", "/households/huis-1/settlement/2026-11", anonymous=True)
    assert status == 401
    status, operator_view, _ = await site.call("GET", "/households/huis-2/settlement/2026-11")
    assert (status, operator_view["statement"]["household"]) == (200, "huis-2")
    status, text, _ = await site.call(
        "GET", "/households/huis-1/settlement/2026-11", household="huis-1", params={"format": "csv"}
    )
    assert [r["household"] for r in csv.DictReader(io.StringIO(text))] == ["huis-1"]
    status, empty, _ = await site.call(
        "GET", "/households/huis-1/settlement/2026-09", household="huis-1"
    )
    assert (status, empty["statement"]) == (200, None)


async def test_households_cannot_use_operator_routes(site: Site) -> None:
    for method, path in (
        ("GET", "/communities/wijk-1/settlement"),
        ("GET", "/communities/wijk-1/settlement/2026-11"),
        ("POST", "/communities/wijk-1/settlement/2026-11/close"),
        ("PUT", "/communities/wijk-1/settlement/rules"),
    ):
        status, body, _ = await site.call(method, path, household="huis-1")
        assert (status, body["error"]) == (401, "unauthorized"), path


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/communities/wijk-1/settlement/2026-13", {}, 400),
        ("/communities/wijk-1/settlement/2026-1", {}, 400),
        ("/communities/wijk-1/settlement/2026-11", {"format": "xml"}, 400),
        ("/communities/elders/settlement/2026-11", {}, 404),
        ("/communities/wijk-1/settlement/2027-01", {}, 404),
        ("/communities/Wijk%20!/settlement/2026-11", {}, 400),
        ("/communities/wijk-1/settlement/" + "9" * 300, {}, 400),
    ],
)
async def test_malformed_requests_get_a_clear_refusal(
    site: Site, path: str, params: dict[str, str], status: int
) -> None:
    got, body, _ = await site.call("GET", path, params=params)
    assert got == status
    assert body["error"] in {"malformed", "not_found"}


async def test_rules_versions_are_set_by_operators_and_shown_with_statements(site: Site) -> None:
    rules = "/communities/wijk-1/settlement/rules"
    csrf = {CSRF_HEADER: site.csrf}
    for bad in ({"version": 2, "saving_split": "all"}, [1], {"version": "2"}):
        status, body, _ = await site.call("PUT", rules, json=bad, headers=csrf)
        assert (status, body["error"]) == (400, "malformed")
    status, body, _ = await site.call("PUT", rules, data=b"{not json", headers=csrf)
    assert (status, body["error"]) == (400, "malformed")
    status, body, _ = await site.call("PUT", rules, json={"version": 1}, headers=csrf)
    assert (status, body["error"]) == (409, "conflict")
    new = {"version": 2, "saving_split": "pro_rata", "participation_fee_eur": 1.5}
    status, body, _ = await site.call("PUT", rules, json=new, headers=csrf)
    assert (status, body["version"], body["participation_fee_eur"]) == (201, 2, 1.5)
    site.clock.current = DECEMBER
    await site.log_in()
    status, closed, _ = await site.call(
        "POST", "/communities/wijk-1/settlement/2026-11/close", headers={CSRF_HEADER: site.csrf}
    )
    assert (status, closed["rules_version"]) == (201, 2)
    assert [h["fee_cents"] for h in closed["households"]] == [150, 150]
