"""The cooperative's read-only dashboard: transformer load against its cap, households' state.

Plain HTML, JavaScript and CSS from `dashboard_static/` (no build step), Dutch and
English, polling `GET /api/v1/dashboard` every two seconds. The JSON holds aggregate
load, the cap in force with its source and mode, the allocation phase and rule, which
non-member load is used, the DSO link and recent DSO audit entries, and per-household
presence, reported load and current limit; no credentials or device details. With
`[collective] enabled` each transformer also carries its day-ahead plan's status and
fairness report (`collective_plan`, null until the first planning round).
Snapshots are cached for a second, so many open dashboards cost the database no more
than one.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from netbewust_core.protocol.messages import LimitUpdate

from .cap_control import is_fresh

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from .cap_control import CapControl, CapStatus
    from .collective_runtime import PlanStatus
    from .dso_runtime import DsoRuntime
    from .server import CommunityServer
    from .store import Store

STATIC_DIR = Path(__file__).with_name("dashboard_static")
DASHBOARD_PATH = "/dashboard/"
DATA_PATH = "/api/v1/dashboard"
CACHE_S = 1.0
AUDIT_SHOWN = 20
AUDIT_WINDOW = timedelta(days=1)


class PlanStatuses(Protocol):
    """What the dashboard reads of `CollectiveRuntime`: the latest status per transformer."""

    @property
    def status(self) -> Mapping[str, PlanStatus]: ...


class Dashboard:
    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        cap_controls: Sequence[CapControl] = (),
        dso: DsoRuntime | None = None,
        collective: PlanStatuses | None = None,
    ) -> None:
        self._server = server
        self._store = store
        self._cap_controls = cap_controls  # may grow while serving (new transformers)
        self._dso = dso
        self._collective = collective
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
            fresh = is_fresh(telemetry, now)
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
            control = next(
                (c for c in self._cap_controls if c.transformer_id == transformer.transformer_id),
                None,
            )
            status = control.status if control else None
            summaries.append(
                {
                    "transformer": transformer.transformer_id,
                    "name": transformer.name,
                    "community": transformer.community_id,
                    "cap_w": transformer.capacity_w if status is None else status.cap_w,
                    "load_w": round(sum(row["load_w"] or 0 for row in members)),
                    "reporting": sum(row["load_w"] is not None for row in members),
                    "online": sum(bool(row["online"]) for row in members),
                    "members": len(members),
                    "limited": sum(row["limit_w"] is not None for row in members),
                    "allocation": status.phase if status else None,
                    "cap": _cap_document(status),
                    "collective_plan": self._plan_document(transformer.transformer_id),
                }
            )
        return {
            "generated_at": now.isoformat(timespec="seconds"),
            "broker_connected": self._server.is_connected,
            "transformers": summaries,
            "households": rows,
            "dso": await self._dso_document(now),
        }

    def _plan_document(self, transformer_id: str) -> dict[str, Any] | None:
        # No plan yet (collective off, or before its first round) is null, never an error.
        plan = None if self._collective is None else self._collective.status.get(transformer_id)
        return None if plan is None else plan.document()

    async def _dso_document(self, now: datetime) -> dict[str, Any] | None:
        if self._dso is None:
            return None
        link = self._dso.link_status
        entries = await asyncio.to_thread(self._dso.dso_store.audit, now - AUDIT_WINDOW)
        return {
            "link": None
            if link is None
            else {
                "connected": link.connected,
                "lost_since": _time(link.lost_since),
                "last_success_at": _time(link.last_success_at),
                "last_error": link.last_error,
                "events": link.events,
                "rejected_events": link.rejected_events,
                "subscribed": link.subscribed,
            },
            "audit": [
                {
                    "at": _time(entry.at),
                    "action": entry.action,
                    "source": entry.source,
                    "issuer": entry.issuer,
                    "transformer": entry.transformer_id,
                    "detail": entry.detail,
                }
                for entry in entries[-AUDIT_SHOWN:][::-1]
            ],
        }


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _cap_document(status: CapStatus | None) -> dict[str, Any] | None:
    """The cap the allocation works to, where it came from, and the non-member load used."""
    if status is None:
        return None
    return {
        "cap_w": status.cap_w,
        "mode": status.mode,
        "source": status.source,
        "until": _time(status.until),
        "members_budget_w": status.members_budget_w,
        "non_member_w": status.non_member_w,
        "non_member_source": status.non_member_source,
        "rule": status.rule,
        "limited": status.limited,
        "export_cap_w": status.export_cap_w,
        "export_limited": status.export_limited,
        "forecast_members_w": status.forecast_members_w,
        "forecast_source": status.forecast_source,
        # Members the allocation left out and why; a failed round's error (phase "failed").
        "excluded": [
            {"household": e.household_id, "reason": e.reason, "detail": e.detail}
            for e in status.excluded
        ],
        "error": status.error,
        "failed_rounds": status.failed_rounds,
    }
