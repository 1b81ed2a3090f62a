"""The dashboard's chart data (`dashboard_history.py`) on a running server, real SQLite and
DSO store: sums per quarter hour, frames and emergencies, the plan, bad parameters, and
the public history's aggregates-only rule. Also the vendored chart library it is drawn with."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import jsonschema
import pytest
import yaml  # type: ignore[import-untyped]

from community_server.collective_runtime import HouseholdCost, PlanSeries, PlanStatus
from community_server.config import HttpConfig, ServerConfig
from community_server.dashboard import STATIC_DIR, Dashboard
from community_server.dashboard_history import HISTORY_PATH, PUBLIC_HISTORY_PATH
from community_server.dso.audit import DsoStore
from community_server.dso.signals import CapInterval, CapMode, CapSignal, SignalSource
from community_server.dso_runtime import DsoRuntime
from community_server.dso_settings import DsoSettings
from community_server.http_api import OPENAPI_FILE, HttpApi, start_site
from community_server.server import CommunityServer
from netbewust_core.protocol.messages import BaselineForecast, Message, Telemetry
from netbewust_core.settlement.rules import SettlementRules
from tests.browser import browser_page, requires_chromium
from tests.clock import FixedClock

from .conftest import NOW, EmbeddedUnderTest, free_port
from .operator_session import OPERATOR, OPERATOR_PASSWORD, add_operator, operator_session

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from playwright.async_api import Page

    from community_server.store import Store

TODAY = NOW.replace(hour=0)
OPENAPI = yaml.safe_load(OPENAPI_FILE.read_text())
HISTORY_SCHEMA = jsonschema.Draft202012Validator(OPENAPI["components"]["schemas"]["History"])
MEMBERS = ("huis-1", "huis-2", "huis-3")
PLAN = PlanStatus(
    "trafo-1",
    "planned",
    planned_at=NOW,
    start=NOW,
    steps=4,
    cost_eur=3.0,
    cost_alone_eur=3.5,
    households=(
        HouseholdCost("huis-1", 2.0, 1.75, 1.8, 0.0, 2),
        HouseholdCost("huis-3", 1.5, 1.25, 1.2, 0.0, 0),
    ),
    series=PlanSeries(
        members_w=(4000.0, 3000.0, 2500.0, 2000.0),
        members_alone_w=(6000.0, 3000.0, 1500.0, 2000.0),
        cap_w=(225000.0, 135000.0, 225000.0, 225000.0),
        non_member_w=(30000.0, 30000.0, 30000.0, 30000.0),
    ),
)


@dataclass
class Plans:
    status: dict[str, PlanStatus] = field(default_factory=dict)


@dataclass
class Site:
    base: str
    operator: aiohttp.ClientSession
    anyone: aiohttp.ClientSession

    async def get(self, path: str, *, public: bool = False) -> tuple[int, Any]:
        session = self.anyone if public else self.operator
        async with session.get(f"{self.base}{path}") as response:
            return response.status, await response.json()


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return TODAY.replace(hour=hour, minute=minute, second=second)


def telemetry(household: str, measured_at: datetime, *power_w: float) -> Message:
    body = Telemetry(measured_at=measured_at, interval_s=10, power_w=power_w, participating=True)
    return Message(community="wijk-1", household=household, sent_at=measured_at, body=body)


def baseline(household: str, start: datetime, *power_w: float) -> Message:
    body = BaselineForecast(start=start, power_w=power_w)
    return Message(community="wijk-1", household=household, sent_at=start, body=body)


def signal(
    signal_id: str, mode: CapMode, start: datetime, minutes: int, **caps: float
) -> CapSignal:
    interval = CapInterval(start=start, end=start + timedelta(minutes=minutes), **caps)
    return CapSignal(
        signal_id,
        "trafo-1",
        SignalSource.HTTP,
        mode,
        start - timedelta(hours=1),
        (interval,),
        "dso",
    )


@pytest.fixture
def community(server_store: Store, tmp_path: Path) -> DsoStore:
    """Three members on trafo-1 (one on trafo-2), a day of reports, baselines and signals."""
    server_store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 250_000.0)
    server_store.create_transformer("trafo-2", "wijk-1", "Trafo 2", 100_000.0)
    for household, transformer in (*((h, "trafo-1") for h in MEMBERS), ("huis-x", "trafo-2")):
        code = server_store.issue_join_code("wijk-1", NOW, timedelta(days=1), transformer).code
        server_store.redeem_join_code(code, NOW, household)
    add_operator(server_store)
    # A fee, so the settlement chart has figures other than zero (settlement_api.py).
    server_store.settlement.set_rules("wijk-1", SettlementRules(2, participation_fee_eur=1.25), NOW)
    server_store.save_received(
        [
            telemetry("huis-1", NOW - timedelta(hours=24, minutes=10), 8000.0),  # before the day
            telemetry("huis-1", at(11, 0, 10), 1000.0),
            telemetry("huis-1", at(11, 15), 1000.0, 1000.0, 1000.0),  # ends the 11:00 quarter
            telemetry("huis-2", at(11, 5), 500.0),
            telemetry("huis-x", at(11, 5), 9999.0),  # another transformer's
            telemetry("huis-1", at(11, 30, 10), -400.0),  # exports while huis-2 imports
            telemetry("huis-2", at(11, 40), 600.0),
            telemetry("huis-1", at(10, 20), 800.0),  # alone in its quarter
            baseline("huis-1", at(10), *[1500.0] * 8),
            baseline("huis-1", at(11), 2500.0, 2500.0),  # replaces the first from 11:00
            baseline("huis-3", at(11), 700.0),
            # Yesterday's, from before the window: the later one holds where both cover.
            baseline("huis-3", at(10) - timedelta(days=1), *[900.0] * 12),
            baseline("huis-3", at(11) - timedelta(days=1), *[400.0] * 8),
        ],
        NOW,
    )
    dso_store = DsoStore.open(tmp_path / "server.db")
    frame = signal("frame", CapMode.FRAME, at(8), 60, import_w=150e3, non_member_load_w=40e3)
    dso_store.save(frame)
    dso_store.save(signal("emergency", CapMode.EMERGENCY, at(9), 15, import_w=100_000.0))
    dso_store.save(signal("ahead", CapMode.FRAME, at(12, 15), 15, import_w=150_000.0))
    return dso_store


@pytest.fixture
async def site(
    community: DsoStore, embedded_broker: EmbeddedUnderTest, server_store: Store
) -> AsyncIterator[Site]:
    embedded_broker.reload(server_store)
    config = ServerConfig(mqtt=embedded_broker.mqtt_config(), http=HttpConfig(port=free_port()))
    server = CommunityServer(config, server_store, clock=FixedClock())
    await server.start()
    dso = DsoRuntime(
        DsoSettings(non_member_estimate_w={"trafo-1": 30_000.0}), server, server_store, community
    )
    dashboard = Dashboard(
        server, server_store, dso=dso, collective=Plans({"trafo-1": PLAN}), public_min_households=2
    )
    runner = await start_site(HttpApi(server, server_store, config), config, dashboard)
    base = f"http://127.0.0.1:{config.http.port}"
    async with operator_session(base) as operator, aiohttp.ClientSession() as anyone:
        yield Site(base, operator, anyone)
    await runner.cleanup()
    await dso.stop()
    await server.stop()


def quarter(document: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """Every past series' value at the quarter starting at `moment`."""
    past = document["past"]
    i = past["times"].index(int(moment.timestamp()))
    return {name: values[i] for name, values in past.items() if name != "times"}


async def test_history_sums_members_per_quarter_and_marks_frames(site: Site) -> None:
    status, history = await site.get(f"{HISTORY_PATH}?transformer=trafo-1")
    assert status == 200
    assert (history["transformer"], history["members"], history["step_s"]) == ("trafo-1", 3, 900)
    times = history["past"]["times"]
    day_ago = NOW - timedelta(days=1)
    assert (len(times), times[0], times[-1]) == (97, day_ago.timestamp(), NOW.timestamp())
    assert all(len(values) == 97 for values in history["past"].values())
    # huis-1's mean 2000 W (1000, then 3000 over three phases) and huis-2's 500 W; huis-1's
    # later baseline (2500) and huis-3's (700); flexibility only where both are known.
    assert quarter(history, at(11)) == {
        "members_w": 2500.0,
        "reporting": 2,
        "baseline_w": 3200.0,
        "forecasting": 2,
        "flexibility_w": 500.0,
        "compared": 1,
        "cap_w": 250_000.0,
        "non_member_w": 30_000.0,
        "mode": None,
    }
    half_past = quarter(history, at(11, 30))  # huis-1's first baseline covers it
    assert half_past | {"members_w": 200.0, "reporting": 2, "flexibility_w": 1900.0} == half_past
    ten = quarter(history, at(10))
    assert ten | {"members_w": None, "baseline_w": 1500.0, "flexibility_w": None} == ten
    frame, emergency = quarter(history, at(8, 45)), quarter(history, at(9))
    assert (frame["cap_w"], frame["non_member_w"], frame["mode"]) == (150_000.0, 40_000.0, "frame")
    assert (emergency["cap_w"], emergency["mode"]) == (100_000.0, "emergency")
    assert quarter(history, at(9, 15))["mode"] is None
    day_ago_baselines = history["past"]["baseline_w"][:5]
    assert day_ago_baselines == [400.0, 400.0, 400.0, 400.0, None]
    # No member reported a day ago (huis-1's report ended the quarter before the window).
    assert history["past"]["members_w"][0] is None
    assert quarter(history, at(10, 15))["members_w"] == 800.0
    assert sum(history["past"]["reporting"]) == 5
    plan = history["plan"]
    assert plan == {
        "planned_at": NOW.isoformat(),
        "households": 2,
        "times": [int((NOW + i * timedelta(minutes=15)).timestamp()) for i in range(4)],
        "members_w": [4000.0, 3000.0, 2500.0, 2000.0],
        "members_alone_w": [6000.0, 3000.0, 1500.0, 2000.0],
        "cap_w": [225000.0, 135000.0, 225000.0, 225000.0],
        "non_member_w": [30000.0, 30000.0, 30000.0, 30000.0],
        "mode": [None, "frame", None, None],
    }
    assert "huis-" not in json.dumps(history)  # sums only, no household ids
    HISTORY_SCHEMA.validate(history)
    with pytest.raises(jsonschema.ValidationError):  # the schema allows nothing per household
        HISTORY_SCHEMA.validate(history | {"past": history["past"] | {"households": {}}})


async def test_a_shorter_window_and_a_transformer_without_a_plan(site: Site) -> None:
    status, history = await site.get(f"{HISTORY_PATH}?transformer=trafo-2&hours=1")
    assert status == 200
    assert (history["members"], history["plan"], len(history["past"]["times"])) == (1, None, 5)
    assert quarter(history, at(11))["members_w"] == 9999.0
    assert set(history["past"]["mode"]) == {None}  # the signals are trafo-1's
    HISTORY_SCHEMA.validate(history)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("?transformer=", 400),
        (f"?transformer={'t' * 201}", 400),
        ("?transformer=trafo-1&hours=0", 400),
        ("?transformer=trafo-1&hours=49", 400),
        ("?transformer=trafo-1&hours=-1", 400),
        ("?transformer=trafo-1&hours=1.5", 400),
        ("?transformer=trafo-1&hours=1e1", 400),
        ("?transformer=trafo-1&hours=%D9%A3", 400),  # an Arabic-Indic three
        ("?transformer=trafo-1&hours=99999999999999999999", 400),
        ("?transformer=nope", 404),
        ("?transformer=%00%27%22", 404),
    ],
)
async def test_bad_parameters_are_refused_with_a_reason(
    site: Site, query: str, status: int
) -> None:
    answer, document = await site.get(f"{HISTORY_PATH}{query}")
    assert answer == status
    assert set(document) == {"error", "message"}


async def test_the_history_is_for_operators(site: Site) -> None:
    async with site.anyone.get(f"{site.base}{HISTORY_PATH}?transformer=trafo-1") as response:
        assert response.status == 401


async def test_the_public_history_holds_only_sums_over_enough_members(site: Site) -> None:
    status, public = await site.get(f"{PUBLIC_HISTORY_PATH}?transformer=trafo-1", public=True)
    assert status == 200
    assert public["min_households"] == 2
    # Two members reported at 11:00 (shown); one at 10:15 (hidden); flexibility compares
    # one member only (hidden); the plan covers two members (shown).
    eleven = quarter(public, at(11))
    assert eleven | {"members_w": 2500.0, "baseline_w": 3200.0, "flexibility_w": None} == eleven
    assert quarter(public, at(11, 30))["members_w"] == 200.0
    assert quarter(public, at(10, 15))["members_w"] is None
    assert quarter(public, at(10))["baseline_w"] is None  # one member's baseline
    assert public["plan"]["members_w"] == [4000.0, 3000.0, 2500.0, 2000.0]
    assert "huis-" not in json.dumps(public)
    HISTORY_SCHEMA.validate(public)
    # trafo-2 has one member: too few for the public view, as in GET /api/v1/public.
    status, refused = await site.get(f"{PUBLIC_HISTORY_PATH}?transformer=trafo-2", public=True)
    assert (status, refused["error"]) == (404, "not_found")
    status, _ = await site.get(f"{PUBLIC_HISTORY_PATH}?transformer=trafo-1&hours=0", public=True)
    assert status == 400


VENDOR = STATIC_DIR / "vendor"


def test_the_vendored_chart_library_is_the_one_recorded() -> None:
    readme = (VENDOR / "README.md").read_text()
    recorded = dict(re.findall(r"\| `([\w.]+)` \| `([0-9a-f]{64})` \|", readme))
    assert set(recorded) == {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"}
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert "| version | 1.6.32 |" in readme
    assert "MIT" in (VENDOR / "uPlot.LICENSE").read_text()


async def test_the_server_serves_the_chart_library(site: Site) -> None:
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        async with site.anyone.get(f"{site.base}/dashboard/static/vendor/{name}") as response:
            assert response.status == 200, name
            assert await response.read() == (VENDOR / name).read_bytes()


# --- the charts in a real headless Chromium ---------------------------------------------

CHARTS_JS = """() => Object.fromEntries(Object.entries(window.__charts).map(([id, chart]) =>
  [id, { labels: chart.series.map((s) => s.label), data: chart.data }]))"""


def load_chart(history: dict[str, Any]) -> list[list[Any]]:
    """The load chart's data as the page must draw it from the history: x = the past's and
    the plan's quarter hours, then cap, cap in the plan, non-members (the past's, else the
    plan's), members measured, planned and alone; null where a series has no value."""
    past, plan = history["past"], history["plan"]
    xs = sorted({*past["times"], *plan["times"]})

    def values(times: list[int], series: list[Any]) -> list[Any]:
        by_time = dict(zip(times, series, strict=True))
        return [by_time.get(x) for x in xs]

    past_non, plan_non = (
        values(past["times"], past["non_member_w"]),
        values(plan["times"], plan["non_member_w"]),
    )
    return [
        xs,
        values(past["times"], past["cap_w"]),
        values(plan["times"], plan["cap_w"]),
        [p if p is not None else q for p, q in zip(past_non, plan_non, strict=True)],
        values(past["times"], past["members_w"]),
        values(plan["times"], plan["members_w"]),
        values(plan["times"], plan["members_alone_w"]),
    ]


async def log_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/dashboard/")
    await page.fill("[name=username]", OPERATOR)
    await page.fill("[name=password]", OPERATOR_PASSWORD)
    await page.click("#login button")
    await page.wait_for_url(f"{base}/dashboard/")


async def drawn_charts(page: Page, ids: list[str]) -> dict[str, Any]:
    condition = " && ".join(f"window.__charts[{json.dumps(i)}]" for i in ids)
    await page.wait_for_function(f"() => window.__charts && {condition}")
    charts: dict[str, Any] = await page.evaluate(CHARTS_JS)
    return charts


@requires_chromium
async def test_each_chart_draws_the_data_the_api_returns(site: Site) -> None:
    _, history = await site.get(f"{HISTORY_PATH}?transformer=trafo-1")
    async with browser_page("dashboard-charts-desktop", locale="en-GB") as page:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await log_in(page, site.base)
        charts = await drawn_charts(page, ["load-trafo-1", "flex-trafo-1", "costs-trafo-1"])
        load = charts["load-trafo-1"]
        assert load["data"] == load_chart(history)
        assert load["labels"][1:] == ["cap", "cap in the plan (less margin)", "non-members",
                                      "members measured", "members planned",
                                      "members alone (plan)"]  # fmt: skip
        xs = load["data"][0]
        modes = await page.evaluate("window.__charts['load-trafo-1'].netbewustModes")
        assert modes[xs.index(at(9).timestamp())] == "emergency"
        assert modes[xs.index(at(8, 45).timestamp())] == "frame"
        assert modes[xs.index(at(12, 15).timestamp())] == "frame"  # the plan's, ahead
        assert modes.count("frame") == 5
        assert modes.count("emergency") == 1
        flex = charts["flex-trafo-1"]
        assert flex["data"] == [history["past"]["times"], history["past"]["flexibility_w"]]
        costs = charts["costs-trafo-1"]
        assert costs["labels"][1:] == ["Alone", "Together", "Settled"]
        assert costs["data"] == [["huis-1", "huis-3"], [2.0, 1.5], [1.75, 1.25], [1.8, 1.2]]
        assert charts["totals-trafo-1"]["data"] == [["Cooperative"], [3.5], [3.0], [3.0]]
        # The open settlement period, as the settlement API computes it so far.
        _, overview = await site.get("/api/v1/communities/wijk-1/settlement")
        _, period = await site.get(
            f"/api/v1/communities/wijk-1/settlement/{overview['open_period']}"
        )
        charts = await drawn_charts(page, ["settlement-wijk-1", "credits-wijk-1"])
        rows = period["households"]
        assert charts["settlement-wijk-1"]["labels"][1:] == [
            "saving together", "flexibility", "saving shared", "fees", "shortfalls", "credit"
        ]  # fmt: skip
        assert charts["settlement-wijk-1"]["data"] == [
            [f"wijk-1 · {period['period']}"],
            [period["saving_eur"]],
            [sum(row["flex_cents"] for row in rows) / 100],
            [period["distributed_cents"] / 100],
            [sum(row["fee_cents"] for row in rows) / 100],
            [sum(row["penalty_cents"] for row in rows) / 100],
            [period["credit_cents"] / 100],
        ]
        assert charts["credits-wijk-1"]["data"] == [
            [row["household"] for row in rows],
            [row["credit_cents"] / 100 for row in rows],
        ]
        assert [row["household"] for row in rows] == ["huis-1", "huis-2", "huis-x"]  # who reported
        assert charts["settlement-wijk-1"]["data"][4] == [3.75]  # three fees of 1.25 EUR
        assert charts["credits-wijk-1"]["data"][1] == [-1.25, -1.25, -1.25]
        # The canvas is drawn, not blank: some pixels of the load chart are coloured.
        coloured = await page.evaluate(
            """() => { const c = document.querySelector('#chart-load-trafo-1 canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] && d[i] !== d[i + 2]) n++;
            return n; }"""
        )
        assert coloured > 500
        assert errors == []


@requires_chromium
async def test_on_a_phone_in_dutch_the_charts_fit_the_screen(site: Site) -> None:
    async with browser_page("dashboard-charts-phone", locale="nl-NL", viewport=(390, 844)) as page:
        await log_in(page, site.base)
        charts = await drawn_charts(page, ["load-trafo-1", "costs-trafo-1"])
        assert charts["load-trafo-1"]["labels"][1] == "limiet"
        assert charts["costs-trafo-1"]["labels"][1:] == ["Alleen", "Samen", "Verrekend"]
        assert await page.text_content("#charts-trafo-1 h3") == (
            "Belasting en limiet: afgelopen 24 uur en het dagplan"
        )
        # Nothing wider than the phone: the page does not scroll sideways.
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        width = await page.evaluate("window.__charts['load-trafo-1'].width")
        assert 240 <= width <= 390
        # Switching to English redraws the charts with English labels.
        await page.click("[data-lang=en]")
        await page.wait_for_function(
            "() => window.__charts['load-trafo-1'].series[1].label === 'cap'"
        )


@requires_chromium
async def test_the_public_page_charts_only_aggregates(site: Site) -> None:
    _, history = await site.get(f"{PUBLIC_HISTORY_PATH}?transformer=trafo-1", public=True)
    async with browser_page(
        "dashboard-charts-public-phone", locale="nl-NL", viewport=(390, 844)
    ) as page:
        await page.goto(f"{site.base}/dashboard/public")
        charts = await drawn_charts(page, ["load-trafo-1", "flex-trafo-1"])
        assert set(charts) == {"load-trafo-1", "flex-trafo-1"}  # no costs per household
        assert charts["load-trafo-1"]["data"] == load_chart(history)
        assert charts["flex-trafo-1"]["data"][1] == history["past"]["flexibility_w"]
        assert "huis-" not in (await page.content())
        assert "huis-" not in json.dumps(charts)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
