"""The cooperative's read-only dashboard: transformer load against its cap, households' state.

Plain HTML, JavaScript and CSS from `dashboard_static/` (no build step), Dutch and
English, polling `GET /api/v1/dashboard` every two seconds; its charts (uPlot, vendored
in `dashboard_static/vendor/`) draw `dashboard_history.py`'s quarter hours. Page and JSON are for
operators only (`accounts.py`): anyone else is sent to `/dashboard/login`, and the JSON
answers 401. With `[dashboard] public` anyone may see `/dashboard/public`, fed by
`GET /api/v1/public`: per transformer with at least `public_min_households` members its
cap, member counts and summed load (the load only while that many report), nothing per
household; smaller transformers are left out. The operator's JSON holds aggregate
load, the cap in force with its source and mode, the allocation phase and rule, which
non-member load is used, the DSO link and recent DSO audit entries, and per-household
presence, reported load and current limit, and for a member with heat pumps its
pauses and how often the live allocation took its pump (`heat_pump`); no credentials
or device details. With
`[collective] enabled` each transformer also carries its day-ahead plan's status and
fairness report (`collective_plan`, null until the first planning round), and today's
forecast of the members' load from the outdoor temperature (`load_forecast`).
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

from .accounts import is_operator, require_operator
from .cap_control import is_fresh
from .dashboard_history import DashboardHistory

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from netbewust_core.allocation.heat_pumps import PumpFairness

    from .cap_control import CapControl, CapStatus
    from .collective_runtime import PlanStatus
    from .dso_runtime import DsoRuntime
    from .load_history import TransformerForecast
    from .server import CommunityServer
    from .store import Household, Store

STATIC_DIR = Path(__file__).with_name("dashboard_static")
DASHBOARD_PATH = "/dashboard/"
LOGIN_PATH = "/dashboard/login"
PUBLIC_PATH = "/dashboard/public"
DATA_PATH = "/api/v1/dashboard"
PUBLIC_DATA_PATH = "/api/v1/public"
CACHE_S = 1.0
AUDIT_SHOWN = 20
AUDIT_WINDOW = timedelta(days=1)


class PlanStatuses(Protocol):
    """What the dashboard reads of `CollectiveRuntime`: the latest status per transformer."""

    @property
    def status(self) -> Mapping[str, PlanStatus]: ...


class LoadForecasts(Protocol):
    """What the dashboard reads of `LoadHistory`: today's forecast per transformer."""

    @property
    def latest(self) -> Mapping[str, TransformerForecast]: ...


class Dashboard:
    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        cap_controls: Sequence[CapControl] = (),
        dso: DsoRuntime | None = None,
        collective: PlanStatuses | None = None,
        *,
        public_min_households: int | None = None,
        load_forecasts: LoadForecasts | None = None,
    ) -> None:
        """`public_min_households`: the public view's threshold; None leaves it off."""
        self._server = server
        self._store = store
        self._cap_controls = cap_controls  # may grow while serving (new transformers)
        self._dso = dso
        self._collective = collective
        self._public_min = public_min_households
        self._load_forecasts = load_forecasts
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._history = DashboardHistory(
            server, store, dso, collective, public_min_households=public_min_households
        )

    def register(self, app: web.Application) -> None:
        app.add_routes(
            [
                web.get("/", self._redirect),
                web.get(DASHBOARD_PATH, self._page),
                web.get(LOGIN_PATH, self._login_page),
                web.get(PUBLIC_PATH, self._public_page),
                web.static(f"{DASHBOARD_PATH}static", STATIC_DIR),
                web.get(DATA_PATH, self._data),
                web.get(PUBLIC_DATA_PATH, self._public_data),
            ]
        )
        self._history.register(app)

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(DASHBOARD_PATH)

    async def _page(self, request: web.Request) -> web.FileResponse:
        if not await is_operator(request):
            raise web.HTTPFound(LOGIN_PATH)
        return _page("index.html")

    async def _login_page(self, request: web.Request) -> web.FileResponse:
        return _page("login.html")

    async def _public_page(self, request: web.Request) -> web.FileResponse:
        if self._public_min is None:
            raise web.HTTPNotFound
        return _page("public.html")

    async def _data(self, request: web.Request) -> web.Response:
        await require_operator(request)
        return web.json_response(await self._snapshot(), headers={"Cache-Control": "no-store"})

    async def _public_data(self, request: web.Request) -> web.Response:
        if self._public_min is None:
            raise web.HTTPNotFound(
                text='{"error": "not_found", "message": "the public view is off"}',
                content_type="application/json",
            )
        document = public_document(await self._snapshot(), self._public_min)
        return web.json_response(document, headers={"Cache-Control": "no-store"})

    async def _snapshot(self) -> dict[str, Any]:
        now_s = time.monotonic()
        if self._cached is None or now_s - self._cached[0] > CACHE_S:
            self._cached = (now_s, await self.snapshot(self._server.now()))
        return self._cached[1]

    async def snapshot(self, now: datetime) -> dict[str, Any]:
        store = self._store
        transformers = await self._server.run_in_db(store.transformers)
        households = await self._server.run_in_db(store.households)
        fairness = {control.transformer_id: control.pump_fairness for control in self._cap_controls}
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
                    "heat_pump": _heat_pump_row(
                        household, fairness.get(household.transformer_id or ""), now
                    ),
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
                    "load_forecast": self._load_forecast(transformer.transformer_id),
                }
            )
        return {
            "generated_at": now.isoformat(timespec="seconds"),
            "broker_connected": self._server.is_connected,
            "transformers": summaries,
            "households": rows,
            "dso": await self._dso_document(now),
        }

    def _load_forecast(self, transformer_id: str) -> dict[str, Any] | None:
        # No weather source, or not refreshed yet: null.
        forecasts = self._load_forecasts
        forecast = None if forecasts is None else forecasts.latest.get(transformer_id)
        return None if forecast is None else forecast.document()

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


def _page(name: str) -> web.FileResponse:
    # Pages show who is logged in: never from a shared cache.
    return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})


def public_document(snapshot: Mapping[str, Any], min_households: int) -> dict[str, Any]:
    """The operator's snapshot cut down to aggregates over at least `min_households` homes.

    A transformer with fewer members is left out; its summed load is shown only while at
    least that many members report (a sum over two homes is nearly each home's load).
    """
    shown = [
        {
            "transformer": summary["transformer"],
            "name": summary["name"],
            "community": summary["community"],
            "cap_w": summary["cap_w"],
            "members": summary["members"],
            "online": summary["online"],
            "reporting": summary["reporting"],
            "load_w": summary["load_w"] if summary["reporting"] >= min_households else None,
        }
        for summary in snapshot["transformers"]
        if summary["members"] >= min_households
    ]
    return {
        "generated_at": snapshot["generated_at"],
        "min_households": min_households,
        "transformers": shown,
        "hidden_transformers": len(snapshot["transformers"]) - len(shown),
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
        "pumps_curtailed": status.pumps_curtailed,
        "pump_refused": [
            {"household": e.household_id, "reason": e.reason, "detail": e.detail}
            for e in status.pump_refused
        ],
    }


def _heat_pump_row(
    household: Household, fairness: PumpFairness | None, now: datetime
) -> dict[str, Any] | None:
    """A member's heat pumps on the dashboard: pauses, and how often the live allocation
    took its pump, whether it holds it now and for how long; None without heat pumps."""
    reported = household.heat_pump
    stores = household.capabilities.thermal_heat_pumps if household.capabilities else ()
    hid = household.household_id
    if (
        reported is None
        and not stores
        and (fairness is None or hid not in fairness.times_curtailed)
    ):
        return None
    return {
        "thermal_stores": len(stores),
        "comfort_margin_min": reported.comfort_margin_min if reported else None,
        "paused": reported.paused(now) if reported else False,
        "pauses": reported.pauses if reported else 0,
        "curtailments": fairness.times_curtailed.get(hid, 0) if fairness else 0,
        "curtailed": fairness is not None and hid in fairness.curtailed_now,
        "off_min": round(fairness.off_minutes(hid, now), 1) if fairness else 0.0,
    }
