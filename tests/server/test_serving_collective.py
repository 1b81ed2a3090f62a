"""`serve` with `[collective] enabled`: the plan's status reaches the dashboard JSON.

The server as `serving()` assembles it, the embedded broker, a household sending its
capabilities and baseline over MQTT, and Nord Pool replaced by a stub (no internet).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml  # type: ignore[import-untyped]

from community_server.config import CollectiveConfig, DatabaseConfig, HttpConfig, ServerConfig
from community_server.dashboard import DATA_PATH, STATIC_DIR
from community_server.dashboard_history import HISTORY_PATH
from community_server.serving import serving
from netbewust_core.planning.prices import DayAheadPrices, FetchStatus, PricePoint
from netbewust_core.protocol.messages import (
    QUARTER_HOUR,
    BaselineForecast,
    Capabilities,
    Message,
)

from .conftest import NOW, EmbeddedUnderTest, free_port
from .household_client import HouseholdClient, wait_until
from .operator_session import add_operator, operator_session

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

    from community_server.store import HouseholdCredentials, Store


@dataclass
class StubPrices:
    """Nord Pool: flat quarter-hour prices for any day, or a failed request."""

    published: bool = True
    asked: list[date] = field(default_factory=list)

    async def fetch_day(self, delivery_day: date) -> DayAheadPrices:
        self.asked.append(delivery_day)
        if not self.published:
            return DayAheadPrices(FetchStatus.FAILED, delivery_day, "NL", detail="HTTP 503")
        points = tuple(
            PricePoint(NOW + step * QUARTER_HOUR, NOW + (step + 1) * QUARTER_HOUR, 0.25)
            for step in range(-96, 192)
            if (NOW + step * QUARTER_HOUR).date() == delivery_day
        )
        return DayAheadPrices(FetchStatus.PUBLISHED, delivery_day, "NL", points, final=True)


def _member(store: Store) -> HouseholdCredentials:
    store.create_transformer("trafo-1", "wijk-1", "Trafo 1", 250_000.0)
    code = store.issue_join_code("wijk-1", NOW, timedelta(days=1), "trafo-1").code
    return store.redeem_join_code(code, NOW, "huis-1")


def _config(tmp_path: Path, broker: EmbeddedUnderTest) -> ServerConfig:
    return ServerConfig(
        database=DatabaseConfig(path=tmp_path / "server.db"),
        mqtt=broker.mqtt_config(),
        http=HttpConfig(port=free_port()),
        collective=CollectiveConfig(enabled=True, energy_tax_eur_per_kwh=0.1, check_s=0.05),
    )


OPENAPI = yaml.safe_load((STATIC_DIR.parent / "openapi.yaml").read_text())
DASHBOARD_SCHEMA = OPENAPI["paths"]["/dashboard"]["get"]["responses"]["200"]["content"][
    "application/json"
]["schema"]


class DashboardPoller:
    """The dashboard JSON as a browser polls it; remembers the latest plan document."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self._session = session
        self._url = f"http://127.0.0.1:{port}{DATA_PATH}"
        self.plan: dict[str, Any] | None = None
        self.document: dict[str, Any] = {}

    async def until(self, status: str) -> dict[str, Any]:
        for _attempt in range(100):  # the snapshot is cached for a second
            async with self._session.get(self._url) as response:
                assert response.status == 200
                self.document = await response.json()
            self.plan = self.document["transformers"][0]["collective_plan"]
            if self.plan is not None and self.plan["status"] == status:
                return self.plan
            await asyncio.sleep(0.2)
        raise AssertionError(f"plan stayed {self.plan!r}, never {status}")


async def test_the_plan_reaches_the_dashboard_once_a_member_sends_its_baseline(
    tmp_path: Path, server_store: Store, embedded_broker: EmbeddedUnderTest
) -> None:
    credentials = _member(server_store)
    embedded_broker.reload(server_store)
    config = _config(tmp_path, embedded_broker)
    prices = StubPrices()
    household = HouseholdClient(
        "wijk-1", "huis-1", embedded_broker.port, credentials.password, protocol="3.1.1"
    )
    add_operator(server_store)
    async with (
        serving(config, server_store, clock=lambda: NOW, prices=prices) as state,
        operator_session(f"http://127.0.0.1:{config.http.port}") as session,
    ):
        dashboard = DashboardPoller(session, config.http.port)
        waiting = await dashboard.until("no_households")
        assert waiting["detail"] == "no member sent a usable baseline"
        assert waiting["unplanned"] == ["huis-1"]
        await household.connect()
        try:
            for body in (
                Capabilities(phases=1, fuse_current_a=25.0),
                BaselineForecast(start=NOW, power_w=(600.0,) * 96),
            ):
                await household.publish(
                    Message(community="wijk-1", household="huis-1", sent_at=NOW, body=body)
                )
            await wait_until(lambda: "huis-1" in state.server.latest_baseline)
            plan = await dashboard.until("planned")
        finally:
            await household.disconnect()
        # The chart's data: the real runtime's plan series, a quarter hour per step.
        url = f"http://127.0.0.1:{config.http.port}{HISTORY_PATH}?transformer=trafo-1"
        async with session.get(url) as response:
            history = await response.json()
    assert NOW.date() in prices.asked
    assert (plan["planned_at"], plan["start"], plan["steps"]) == (
        NOW.isoformat(),
        NOW.isoformat(),
        96,
    )
    assert plan["unplanned"] == []
    [row] = plan["households"]
    # 600 W for a day at 0.25 + 0.1 EUR/kWh, nothing to shift: plan and alone agree.
    assert row["household_id"] == "huis-1"
    assert row["cost_alone_eur"] == row["cost_eur"] == round(14.4 * 0.35, 4)
    assert row["shortfall_wh"] == 0.0
    assert plan["cost_eur"] == plan["cost_alone_eur"] == row["cost_eur"]
    jsonschema.Draft202012Validator(DASHBOARD_SCHEMA).validate(dashboard.document)
    history_plan = history["plan"]
    assert history_plan["households"] == 1
    assert history_plan["times"][0] == NOW.timestamp()
    assert len(history_plan["members_w"]) == len(history_plan["cap_w"]) == 96
    assert set(history_plan["members_w"]) == {600.0}  # its baseline; nothing to shift
    kept = 1 - CollectiveConfig().planning_margin_pct / 100
    assert set(history_plan["cap_w"]) == {250_000.0 * kept}  # the transformer's capacity


def test_the_openapi_schema_rejects_a_plan_of_the_wrong_shape() -> None:
    transformer: dict[str, Any] = {
        "transformer": "trafo-1",
        "name": "Trafo 1",
        "community": "wijk-1",
        "cap_w": None,
        "load_w": 0,
        "reporting": 0,
        "online": 0,
        "members": 0,
        "limited": 0,
        "allocation": None,
        "collective_plan": {"status": "planned"},  # the rest of the report missing
    }
    document = {
        "generated_at": NOW.isoformat(),
        "broker_connected": True,
        "households": [],
        "transformers": [transformer],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(DASHBOARD_SCHEMA).validate(document)
    transformer["collective_plan"] = None
    jsonschema.Draft202012Validator(DASHBOARD_SCHEMA).validate(document)


async def test_without_prices_the_dashboard_says_why_there_is_no_plan(
    tmp_path: Path, server_store: Store, embedded_broker: EmbeddedUnderTest
) -> None:
    _member(server_store)
    embedded_broker.reload(server_store)
    config = _config(tmp_path, embedded_broker)
    add_operator(server_store)
    async with (
        serving(config, server_store, clock=lambda: NOW, prices=StubPrices(published=False)),
        operator_session(f"http://127.0.0.1:{config.http.port}") as session,
    ):
        plan = await DashboardPoller(session, config.http.port).until("no_prices")
    assert plan["detail"].startswith("no day-ahead prices from now: ")
    assert "failed HTTP 503" in plan["detail"]
    assert (plan["planned_at"], plan["cost_eur"], plan["households"]) == (None, None, [])
