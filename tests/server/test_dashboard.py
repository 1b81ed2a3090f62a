"""The cooperative dashboard: its JSON, its page, and a live value in a real headless Chromium.

Everything here is seen as a logged-in operator (`test_accounts.py` covers who else sees what).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from community_server.collective_runtime import HouseholdCost, PlanStatus
from community_server.config import HttpConfig, ServerConfig
from community_server.dashboard import DASHBOARD_PATH, DATA_PATH, LOGIN_PATH, Dashboard
from community_server.http_api import HttpApi, start_site
from community_server.server import CommunityServer
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import Message, Presence, Telemetry
from tests.browser import browser_page, requires_chromium, text_of
from tests.clock import FixedClock

from .conftest import NOW, EmbeddedUnderTest, free_port
from .household_client import HouseholdClient, wait_until
from .operator_session import OPERATOR, OPERATOR_PASSWORD, add_operator, operator_session

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiohttp
    from playwright.async_api import Page

    from community_server.store import HouseholdCredentials, Store

PLANNED = PlanStatus(
    "trafo-1",
    "planned",
    "",
    planned_at=NOW,
    start=NOW,
    steps=96,
    plan_status="coordinated",
    binding_steps=3,
    cost_eur=4.5,
    cost_alone_eur=5.25,
    households=(HouseholdCost("huis-1", 2.75, 2.25, 2.5, 1250.0, 4),),
    unplanned=("huis-2",),
)


@dataclass
class Plans:
    """Stands in for `CollectiveRuntime`: the dashboard reads only its statuses."""

    status: dict[str, PlanStatus] = field(default_factory=dict)


@dataclass
class Site:
    base: str
    server: CommunityServer
    household: HouseholdClient
    session: aiohttp.ClientSession
    plans: Plans
    clock: FixedClock

    async def data(self) -> dict[str, Any]:
        async with self.session.get(f"{self.base}{DATA_PATH}") as response:
            assert response.status == 200
            document: dict[str, Any] = await response.json()
            return document

    async def report(self, watts: float) -> None:
        now = self.clock.advance(timedelta(seconds=10))  # each report a newer one
        telemetry = Telemetry(measured_at=now, interval_s=10, power_w=(watts,), participating=True)
        message = Message(community="wijk-1", household="huis-1", sent_at=now, body=telemetry)
        stored = self.server.metrics.stored["telemetry"]
        await self.household.publish(message)
        await wait_until(lambda: self.server.metrics.stored["telemetry"] == stored + 1)


@pytest.fixture
def member(server_store: Store) -> HouseholdCredentials:
    server_store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 250_000.0)
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-1").code
    credentials = server_store.redeem_join_code(code, NOW, "huis-1")
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-1").code
    server_store.redeem_join_code(code, NOW, "huis-2")  # never reports
    add_operator(server_store)
    return credentials


@pytest.fixture
async def site(
    member: HouseholdCredentials, embedded_broker: EmbeddedUnderTest, server_store: Store
) -> AsyncIterator[Site]:
    embedded_broker.reload(server_store)
    config = ServerConfig(mqtt=embedded_broker.mqtt_config(), http=HttpConfig(port=free_port()))
    clock = FixedClock()
    server = CommunityServer(config, server_store, clock=clock)
    await server.start()
    plans = Plans()
    runner = await start_site(
        HttpApi(server, server_store, config),
        config,
        Dashboard(server, server_store, collective=plans),
    )
    household = HouseholdClient(
        "wijk-1", "huis-1", embedded_broker.port, member.password, protocol="3.1.1"
    )
    await household.connect()
    base = f"http://127.0.0.1:{config.http.port}"
    async with operator_session(base) as session:
        yield Site(base, server, household, session, plans, clock)
    await household.disconnect()
    await runner.cleanup()
    await server.stop()


async def test_the_data_adds_up_reports_limits_and_presence(site: Site) -> None:
    empty = await site.data()
    assert (
        empty["transformers"][0] | {"load_w": 0, "reporting": 0, "members": 2}
        == empty["transformers"][0]
    )
    await site.household.publish(
        Message(community="wijk-1", household="huis-1", sent_at=NOW, body=Presence(online=True))
    )
    await site.report(1234.0)
    now = site.server.now()
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        intervals=(LimitInterval(start=now, end=now + timedelta(minutes=5), max_import_w=4000),),
    )
    await site.server.send_limit("huis-1", limit)
    await asyncio.sleep(1.1)  # past the snapshot cache
    data = await site.data()
    transformer = data["transformers"][0]
    assert (transformer["cap_w"], transformer["load_w"]) == (250_000.0, 1234)
    assert (transformer["reporting"], transformer["online"], transformer["limited"]) == (1, 1, 1)
    rows = {row["household"]: row for row in data["households"]}
    assert rows["huis-1"] | {"online": True, "load_w": 1234, "limit_w": 4000} == rows["huis-1"]
    assert rows["huis-2"] | {"online": False, "load_w": None, "limit_w": None} == rows["huis-2"]


async def test_the_collective_plan_is_null_until_planned_then_its_fairness_report(
    site: Site,
) -> None:
    assert (await site.data())["transformers"][0]["collective_plan"] is None
    site.plans.status["trafo-1"] = PlanStatus("trafo-1", "no_prices", "2026-11-23: not published")
    site.plans.status["trafo-elsewhere"] = PLANNED  # a transformer not in the store is not shown
    await asyncio.sleep(1.1)  # past the snapshot cache
    data = await site.data()
    assert len(data["transformers"]) == 1
    plan = data["transformers"][0]["collective_plan"]
    assert (plan["status"], plan["detail"], plan["households"]) == (
        "no_prices",
        "2026-11-23: not published",
        [],
    )
    site.plans.status["trafo-1"] = PLANNED
    await asyncio.sleep(1.1)
    plan = (await site.data())["transformers"][0]["collective_plan"]
    assert (plan["status"], plan["cost_eur"], plan["cost_alone_eur"]) == ("planned", 4.5, 5.25)
    assert plan["planned_at"] == NOW.isoformat()
    assert plan["households"] == [
        {
            "household_id": "huis-1",
            "cost_alone_eur": 2.75,
            "cost_eur": 2.25,
            "settled_cost_eur": 2.5,
            "shortfall_wh": 1250.0,
            "limited_steps": 4,
        }
    ]
    assert plan["unplanned"] == ["huis-2"]


async def test_the_page_and_its_assets_are_served(site: Site) -> None:
    async with site.session.get(f"{site.base}/", allow_redirects=False) as response:
        assert (response.status, response.headers["Location"]) == (302, DASHBOARD_PATH)
    for path in ("", "static/dashboard.js", "static/dashboard.css"):
        async with site.session.get(f"{site.base}{DASHBOARD_PATH}{path}") as response:
            assert response.status == 200, path
    page = await (await site.session.get(f"{site.base}{DASHBOARD_PATH}")).text()
    assert 'lang="nl"' in page
    script = await (
        await site.session.get(f"{site.base}{DASHBOARD_PATH}static/dashboard.js")
    ).text()
    assert "Huishoudens" in script
    assert "Households" in script
    async with site.session.get(f"{site.base}{DASHBOARD_PATH}static/../dashboard.py") as response:
        assert response.status in (403, 404)  # no way out of the static directory


@requires_chromium
async def test_a_live_value_on_the_page_follows_an_injected_change(site: Site) -> None:
    await site.report(1500.0)
    site.plans.status["trafo-1"] = PLANNED
    async with browser_page("dashboard-live-value", locale="en-GB") as browser:
        await browser.goto(f"{site.base}{DASHBOARD_PATH}")
        await _log_in_through_the_page(browser)
        selector = ".load"
        before = await _eventually(browser, selector, lambda text: "kW" in text)
        assert before == "1.5 kW"  # the browser asked for English
        assert await text_of(browser, ".transformer h2") == "Trafo 1 (wijk-1)"
        assert await text_of(browser, "#plan-trafo-1 h3") == "Day plan (collective)"
        status = await text_of(browser, "#plan-trafo-1 .plan-status") or ""
        assert status.startswith("planned · planned at")
        assert "cost together €4.50 / cost alone €5.25" in status
        assert "3 quarter hours at the cap" in status
        assert "1 without a baseline" in status
        row = await text_of(browser, '#plan-trafo-1 tr[data-household="huis-1"]')
        assert row == "huis-1€2.75€2.25€2.501.25 kWh4"
        # A plan without prices replaces the table by its reason; the live value keeps updating.
        site.plans.status["trafo-1"] = PlanStatus("trafo-1", "no_prices", "none published")
        await _eventually(browser, "#plan-trafo-1 .plan-status", lambda text: "none" in text)
        assert await text_of(browser, "#plan-trafo-1 table") is None
        await site.report(7250.0)  # the change, injected over MQTT as a household would
        after = await _eventually(browser, selector, lambda text: text != before)
        assert after == "7.3 kW"
        await browser.evaluate("document.querySelector('[data-lang=nl]').click()")
        assert (
            await _eventually(browser, "#households th", lambda text: text == "Huishouden")
            == "Huishouden"
        )
        nl_status = await _eventually(
            browser, "#plan-trafo-1 .plan-status", lambda text: text.startswith("geen prijzen")
        )
        assert nl_status == "geen prijzen · none published"
        # Logging out ends the session and returns to the (now Dutch) login form.
        await browser.evaluate("document.querySelector('#logout').click()")
        await _eventually(browser, "#login button", lambda text: text == "Inloggen")
        reload = "fetch('../api/v1/dashboard').then((answer) => answer.status)"
        assert await browser.evaluate(reload) == 401


async def _log_in_through_the_page(browser: Page) -> None:
    """The dashboard sends a browser without a session to the login form; fill it in."""
    await _eventually(browser, "#login button", lambda text: text == "Log in")
    assert await browser.evaluate("location.pathname") == LOGIN_PATH
    form = {"username": OPERATOR, "password": "wrong password, typed by mistake"}
    await browser.evaluate(_fill_and_submit(form))
    await _eventually(browser, "#login-error", lambda text: text == "Wrong user name or password")
    form["password"] = OPERATOR_PASSWORD
    await browser.evaluate(_fill_and_submit(form))
    await _eventually(browser, "#operator", lambda text: text == OPERATOR)


def _fill_and_submit(form: dict[str, str]) -> str:
    fields = "".join(
        f"document.querySelector('[name={name}]').value = {json.dumps(value)};"
        for name, value in form.items()
    )
    return f"{fields} document.querySelector('#login').requestSubmit();"


async def _eventually(browser: Page, selector: str, accept: Any) -> str:
    text: str | None = None
    for _attempt in range(600):  # up to a minute: Chromium starts slowly on a loaded machine
        text = await text_of(browser, selector)
        if text is not None and accept(text):
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{selector} stayed {text!r}")
