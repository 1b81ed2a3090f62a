"""The cooperative's read-only dashboard: transformer load against its cap, households' state.

Plain HTML, JavaScript and CSS from `dashboard_static/` (no build step), Dutch and
English, polling `GET /api/v1/dashboard` every two seconds. The JSON holds aggregate
load, the cap and per-household presence, reported load and current limit; no
credentials or device details. Snapshots are cached for a second, so many open
dashboards cost the database no more than one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from netbewust_core.protocol import LimitUpdate

from .cap_control import STALE_AFTER

if TYPE_CHECKING:
    from datetime import datetime

    from .cap_control import CapControl
    from .server import CommunityServer
    from .store import Store

STATIC_DIR = Path(__file__).with_name("dashboard_static")
DASHBOARD_PATH = "/dashboard/"
DATA_PATH = "/api/v1/dashboard"
CACHE_S = 1.0


class Dashboard:
    def __init__(
        self, server: CommunityServer, store: Store, cap_control: CapControl | None = None
    ) -> None:
        self._server = server
        self._store = store
        self._cap_control = cap_control
        self._cached: tuple[float, dict[str, Any]] | None = None

    def register(self, app: web.Application) -> None:
        app.add_routes(
            [
                web.get("/", self._redirect),
                web.get(DASHBOARD_PATH, self._page),
                web.static(f"{DASHBOARD_PATH}static", STATIC_DIR),
                web.get(DATA_PATH, self._data),
            ]
        )

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(DASHBOARD_PATH)

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def _data(self, request: web.Request) -> web.Response:
        now_s = time.monotonic()
        if self._cached is None or now_s - self._cached[0] > CACHE_S:
            self._cached = (now_s, await self.snapshot(self._server.now()))
        return web.json_response(self._cached[1], headers={"Cache-Control": "no-store"})

    async def snapshot(self, now: datetime) -> dict[str, Any]:
        store = self._store
        transformers = await self._server.run_in_db(store.transformers)
        households = await self._server.run_in_db(store.households)
        rows: list[dict[str, Any]] = []
        for household in households:
            telemetry = self._server.latest_telemetry.get(household.household_id)
            fresh = telemetry is not None and now - telemetry.measured_at <= STALE_AFTER
            latest = await self._server.run_in_db(
                store.latest_sent, household.household_id, "limits"
            )
            limit_w = None
            if latest is not None and isinstance(latest.body, LimitUpdate):
                interval = latest.body.limit.interval_at(now)
                limit_w = None if interval is None else interval.max_import_w
            rows.append(
                {
                    "household": household.household_id,
                    "transformer": household.transformer_id,
                    "online": household.online,
                    "load_w": round(telemetry.total_power_w) if fresh and telemetry else None,
                    "limit_w": None if limit_w is None else round(limit_w),
                }
            )
        summaries = []
        for transformer in transformers:
            members = [row for row in rows if row["transformer"] == transformer.transformer_id]
            cap_w = transformer.capacity_w
            phase = None
            control = self._cap_control
            if control is not None and control.transformer_id == transformer.transformer_id:
                cap_w = control.cap_w
                phase = control.status.phase if control.status else None
            summaries.append(
                {
                    "transformer": transformer.transformer_id,
                    "name": transformer.name,
                    "community": transformer.community_id,
                    "cap_w": cap_w,
                    "load_w": round(sum(row["load_w"] or 0 for row in members)),
                    "reporting": sum(row["load_w"] is not None for row in members),
                    "online": sum(bool(row["online"]) for row in members),
                    "members": len(members),
                    "limited": sum(row["limit_w"] is not None for row in members),
                    "allocation": phase,
                }
            )
        return {
            "generated_at": now.isoformat(timespec="seconds"),
            "broker_connected": self._server.is_connected,
            "transformers": summaries,
            "households": rows,
        }
