"""`netbewust-server demo`: one command starts a neighbourhood, and Ctrl+C stops it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any

import pytest

from community_server.cli import _parser, main
from community_server.demo import DemoOptions, run_demo
from community_server.store import Store
from netbewust_core.protocol.messages import AckStatus, AssetKind, LimitUpdate, decode

from .conftest import free_port
from .household_client import wait_until

OPERATOR_LOGIN = re.compile(r"log in as (\S+), password (\S+)\)")

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class DemoDashboard:
    """The demo's dashboard JSON, read as the operator it announces (logged in once)."""

    def __init__(self, port: int, announced: list[str]) -> None:
        self._base = f"http://127.0.0.1:{port}"
        self.announced = announced
        self._cookie: str | None = None

    def read(self) -> dict[str, Any]:
        return self.get("/api/v1/dashboard")

    def get(self, path: str) -> dict[str, Any]:
        if self._cookie is None:
            found = OPERATOR_LOGIN.search("".join(self.announced))
            if found is None:
                raise OSError("the demo has not announced its operator yet")
            login = urllib.request.Request(
                f"{self._base}/api/v1/session",
                data=json.dumps({"username": found[1], "password": found[2]}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(login, timeout=5) as answer:
                self._cookie = answer.headers["Set-Cookie"].split(";")[0]
        request = urllib.request.Request(f"{self._base}{path}", headers={"Cookie": self._cookie})
        with urllib.request.urlopen(request, timeout=5) as answer:
            document: dict[str, Any] = json.load(answer)
            return document


async def test_the_demo_starts_reports_and_stops_on_ctrl_c(
    tmp_path: Path, socket_enabled: None
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "community_server", "demo", "--households", "5"]
    command += ["--http-port", str(port), "--speed", "60", "--data-dir", str(tmp_path)]
    demo = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert demo.stdout is not None
        announced = ""
        while "Dashboard:" not in announced:
            line = await asyncio.wait_for(demo.stdout.readline(), timeout=30)
            assert line, "the demo exited before announcing the dashboard"
            announced += line.decode()
        assert f"http://127.0.0.1:{port}/dashboard/" in announced
        dashboard = DemoDashboard(port, [announced])
        with pytest.raises(urllib.error.HTTPError, match="401"):  # not without logging in
            await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{port}/api/v1/dashboard", timeout=5
            )
        deadline = time.monotonic() + 40
        transformer: dict[str, Any] = {}
        while time.monotonic() < deadline:
            transformer = (await asyncio.to_thread(dashboard.read))["transformers"][0]
            if transformer["reporting"] == 5 and transformer["online"] == 5:
                break
            await asyncio.sleep(0.5)
        assert transformer["members"] == 5
        assert transformer["reporting"] == 5  # every household's telemetry arrived
        assert transformer["cap_w"] == 8_000.0  # 1.6 kW per household by default
        assert (tmp_path / "demo.db").exists()
        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), timeout=20) == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()


def test_bad_demo_options_are_refused(capsys: Any) -> None:
    assert main(["demo", "--households", "0"]) == 2
    assert "households must be" in capsys.readouterr().err
    assert main(["demo", "--profile-start", "25:00"]) == 2
    assert main(["demo", "--speed", "-1"]) == 2


@contextlib.asynccontextmanager
async def _demo_in_process(options: DemoOptions) -> AsyncIterator[DemoDashboard]:
    stop = asyncio.Event()
    announced: list[str] = []
    demo = asyncio.create_task(run_demo(options, stop, announced.append))
    try:
        yield DemoDashboard(options.http_port, announced)
    finally:
        stop.set()
        await asyncio.wait_for(demo, timeout=20)


async def _plan_when(
    dashboard: DemoDashboard, done: Any, timeout_s: float = 40.0
) -> dict[str, Any]:
    """The transformer's summary once `done(summary)` holds."""
    deadline = time.monotonic() + timeout_s
    summary: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            summary = (await asyncio.to_thread(dashboard.read))["transformers"][0]
        except OSError, IndexError:
            summary = {}
        if summary and done(summary):
            return summary
        await asyncio.sleep(0.5)
    raise AssertionError(f"not reached in time: {summary}")


def _sent_limits(path: Path, household_id: str) -> list[tuple[str, LimitUpdate]]:
    """Every limit the server stored as sent to the household, decoded, with its id."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT payload FROM sent WHERE household_id = ? AND kind = 'limits'", (household_id,)
        ).fetchall()
    messages = [decode(payload) for (payload,) in rows]
    return [(m.message_id, m.body) for m in messages if isinstance(m.body, LimitUpdate)]


async def test_the_demo_plans_the_day_and_sends_the_cars_their_planned_limits(
    tmp_path: Path, socket_enabled: None
) -> None:
    port = free_port()
    # Seed 0: homes 5 and 8 have a car, home by 21:00; ten times real speed.
    options = DemoOptions(
        households=8, speed=10.0, data_dir=tmp_path, http_port=port,
        profile_start=clock_time(21, 0),
    )  # fmt: skip
    database = tmp_path / "demo.db"
    async with _demo_in_process(options) as dashboard:

        def planned_with_cars(summary: dict[str, Any]) -> bool:
            plan = summary.get("collective_plan") or {}
            rows = plan.get("households", [])
            return (
                plan.get("status") == "planned"
                and len(rows) == 8
                and sum(row["limited_steps"] > 0 for row in rows) >= 2
            )

        summary = await _plan_when(dashboard, planned_with_cars)
        plan = summary["collective_plan"]
        assert plan["detail"].startswith("demo prices")  # never mistaken for Nord Pool
        assert plan["binding_steps"] > 0  # the cap binds where the cars would go
        assert plan["unplanned"] == []
        store = await asyncio.to_thread(Store.open, database)
        try:
            households = await asyncio.to_thread(store.households)
            with_car = {
                h.household_id
                for h in households
                if h.capabilities is not None and h.capabilities.envelopes
            }
            assert with_car == {"huis-005", "huis-008"}
            for household in households:
                if household.household_id in with_car:
                    assert household.capabilities is not None
                    (envelope,) = household.capabilities.envelopes
                    assert envelope.asset is AssetKind.EV
                    assert envelope.min_power_w == 3 * 6 * 230
            limited = {row["household_id"]: row for row in plan["households"]}
            for household_id in with_car:
                assert limited[household_id]["limited_steps"] > 0
                sent = await asyncio.to_thread(_sent_limits, database, household_id)
                planned = [sent_id for sent_id, update in sent if len(update.limit.intervals) > 1]
                assert planned, f"no planned limit reached {household_id}"
                # The member's guard took it (its telemetry then follows the limit).
                first_planned = planned[0]
                await wait_until(lambda: bool(store.acks_for(first_planned)))  # noqa: B023
                acks = await asyncio.to_thread(store.acks_for, first_planned)
                assert [ack.ack.status for ack in acks] == [AckStatus.APPLIED]
        finally:
            store.close()


async def test_without_the_collective_plan_the_dashboard_shows_none(
    tmp_path: Path, socket_enabled: None
) -> None:
    assert _parser().parse_args(["demo", "--no-collective"]).collective is False
    assert _parser().parse_args(["demo"]).collective is True
    port = free_port()
    options = DemoOptions(
        households=3, speed=10.0, data_dir=tmp_path, http_port=port, collective=False
    )
    async with _demo_in_process(options) as dashboard:
        summary = await _plan_when(dashboard, lambda summary: summary["reporting"] == 3)
        await asyncio.sleep(6)  # longer than a planning round would take
        summary = (await asyncio.to_thread(dashboard.read))["transformers"][0]
        assert summary["collective_plan"] is None


async def test_the_demo_settles_a_simulated_day_and_serves_it(
    tmp_path: Path, socket_enabled: None
) -> None:
    assert _parser().parse_args(["demo", "--no-settlement"]).settlement is False
    port = free_port()
    options = DemoOptions(
        households=8, speed=10.0, data_dir=tmp_path, http_port=port, collective=False
    )
    async with _demo_in_process(options) as dashboard:
        await wait_until(lambda: "Settlement " in "".join(dashboard.announced), timeout_s=60)
        table = "".join(dashboard.announced).split("Settlement ", 1)[1]
        period = table.split(" ", 1)[0]
        rows = re.findall(
            r"^(huis-\d+|total)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", table, re.M
        )
        *homes, (_, total_kwh, total_flex, total_saving, total_credit) = rows
        assert homes, "no home delivered flexibility"
        for _, delivered, flex, saving, credit in homes:
            assert float(delivered) > 0
            assert float(credit) == pytest.approx(float(flex) + float(saving))
        assert sum(float(row[2]) for row in homes) == pytest.approx(float(total_flex))
        assert float(total_credit) == pytest.approx(float(total_flex) + float(total_saving))
        assert float(total_kwh) >= sum(float(row[1]) for row in homes) - 0.01
        assert f"/api/v1/communities/demo/settlement/{period}" in table
        served = await asyncio.to_thread(
            dashboard.get, f"/api/v1/communities/demo/settlement/{period}"
        )
    delivering = [h for h in served["households"] if h["delivered_kwh"] > 0]
    assert {h["household"] for h in delivering} >= {row[0] for row in homes}
    assert all(h["limited_quarters"] >= 16 for h in served["households"])  # the 4-h evening
    assert served["credit_cents"] == sum(h["credit_cents"] for h in served["households"])
    assert served["distributed_cents"] == sum(h["saving_cents"] for h in served["households"])
