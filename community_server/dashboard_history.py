"""The dashboard's charts' data: one transformer per quarter hour, the last hours and the plan.

`GET /api/v1/dashboard/history?transformer=ID&hours=24` (operators) gives the members'
measured load (each member's mean over the quarter, summed; from the settlement roll-up,
one row per member and day, `Store.quarter_hour_load`), how many reported, their
summed baseline forecast, the flexibility delivered (baseline less measured, over the
members with both), the cap in force with the DSO's mode (frame, emergency, dynamic) and
the non-member load, then the collective day-ahead plan (members planned together and
alone, the cap planned to, non-members) when there is one. Everything is summed over the
transformer's members: no household ids. `GET /api/v1/public/history` (the public view)
gives the same for a transformer with at least `public_min_households` members, with the
members' figures left out (null) of every quarter in which fewer of them reported.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from netbewust_core.protocol.messages import QUARTER_HOUR
from netbewust_core.timegrid import floor_to_quarter_hour

from .accounts import require_operator
from .dso.in_force import Fallback, cap_in_force

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .dashboard import PlanStatuses
    from .dso_runtime import DsoRuntime
    from .server import CommunityServer
    from .store import Store

HISTORY_PATH = "/api/v1/dashboard/history"
PUBLIC_HISTORY_PATH = "/api/v1/public/history"
DEFAULT_HOURS = 24
MAX_HOURS = 48
MAX_ID_LENGTH = 200
CACHE_S = 5.0  # the page asks once a minute; many open pages cost one query
# Each members' series and the count of members it sums.
MEMBER_SERIES = {"members_w": "reporting", "baseline_w": "forecasting", "flexibility_w": "compared"}


class HistoryError(ValueError):
    """A request the endpoint refuses, with the HTTP status and a message for the caller."""

    def __init__(self, status: type[web.HTTPException], code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def parse_query(query: Mapping[str, str]) -> tuple[str, int]:
    """The transformer and the number of hours asked for; `HistoryError` for anything else."""
    transformer = query.get("transformer", "")
    if not 0 < len(transformer) <= MAX_ID_LENGTH:
        raise HistoryError(web.HTTPBadRequest, "malformed", "name a transformer")
    text = query.get("hours", str(DEFAULT_HOURS))
    if not (text.isascii() and text.isdigit() and len(text) <= 3):
        raise HistoryError(web.HTTPBadRequest, "malformed", "hours is a whole number")
    hours = int(text)
    if not 1 <= hours <= MAX_HOURS:
        raise HistoryError(web.HTTPBadRequest, "malformed", f"hours is 1 to {MAX_HOURS}")
    return transformer, hours


class DashboardHistory:
    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        dso: DsoRuntime | None,
        plans: PlanStatuses | None,
        *,
        public_min_households: int | None,
    ) -> None:
        """`plans`: the collective runtime (its statuses read at every request), if it runs."""
        self._server = server
        self._store = store
        self._dso = dso
        self._plans = plans
        self._public_min = public_min_households
        self._cached: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}

    def register(self, app: web.Application) -> None:
        app.add_routes(
            [web.get(HISTORY_PATH, self._history), web.get(PUBLIC_HISTORY_PATH, self._public)]
        )

    async def _history(self, request: web.Request) -> web.Response:
        await require_operator(request)
        document = await self._answer(request)
        return web.json_response(document, headers={"Cache-Control": "no-store"})

    async def _public(self, request: web.Request) -> web.Response:
        if self._public_min is None:
            raise _error(web.HTTPNotFound, "not_found", "the public view is off")
        document = await self._answer(request)
        return web.json_response(
            public_history(document, self._public_min), headers={"Cache-Control": "no-store"}
        )

    async def _answer(self, request: web.Request) -> dict[str, Any]:
        try:
            transformer_id, hours = parse_query(request.query)
        except HistoryError as err:
            raise _error(err.status, err.code, str(err)) from None
        transformer = await self._server.run_in_db(self._store.transformer, transformer_id)
        members = [
            h
            for h in await self._server.run_in_db(self._store.households)
            if h.transformer_id == transformer_id
        ]
        # The public view names no transformer too small for it (as GET /api/v1/public).
        small = self._public_min is not None and len(members) < self._public_min
        if transformer is None or (request.path == PUBLIC_HISTORY_PATH and small):
            raise _error(web.HTTPNotFound, "not_found", "no such transformer")
        key = (transformer_id, hours)
        now_s = time.monotonic()
        cached = self._cached.get(key)
        if cached is None or now_s - cached[0] > CACHE_S:
            document = await self.document(transformer_id, transformer.capacity_w, hours)
            document["members"] = len(members)
            self._cached = {k: v for k, v in self._cached.items() if now_s - v[0] <= CACHE_S}
            cached = self._cached[key] = (now_s, document)
        return cached[1]

    async def document(
        self, transformer_id: str, capacity_w: float | None, hours: int
    ) -> dict[str, Any]:
        now = self._server.now()
        current = floor_to_quarter_hour(now)
        times = [current - timedelta(hours=hours) + i * QUARTER_HOUR for i in range(hours * 4 + 1)]
        load = await self._server.run_in_db(
            self._store.quarter_hour_load, transformer_id, times[0], now
        )
        baselines = await self._server.run_in_db(
            self._store.baselines_for, transformer_id, times[0], now
        )
        plan = None if self._plans is None else self._plans.status.get(transformer_id)
        series = None if plan is None or plan.start is None else plan.series
        plan_times = (
            []
            if series is None or plan is None or plan.start is None
            else [plan.start + i * QUARTER_HOUR for i in range(len(series.members_w))]
        )
        caps = await self._caps(transformer_id, capacity_w, [*times, *plan_times])
        past = {
            "times": [_epoch(t) for t in times],
            **_members(times, load, baselines),
            "cap_w": [cap for cap, _, _ in caps[: len(times)]],
            "non_member_w": [non_member for _, non_member, _ in caps[: len(times)]],
            "mode": [mode for _, _, mode in caps[: len(times)]],
        }
        planned = None
        if series is not None and plan is not None:
            planned = {
                "planned_at": None if plan.planned_at is None else plan.planned_at.isoformat(),
                "households": len(plan.households),
                "times": [_epoch(t) for t in plan_times],
                "members_w": list(series.members_w),
                "members_alone_w": list(series.members_alone_w),
                "cap_w": list(series.cap_w),
                "non_member_w": list(series.non_member_w),
                "mode": [mode for _, _, mode in caps[len(times) :]],
            }
        return {
            "transformer": transformer_id,
            "generated_at": now.isoformat(timespec="seconds"),
            "step_s": int(QUARTER_HOUR.total_seconds()),
            "past": past,
            "plan": planned,
        }

    async def _caps(
        self, transformer_id: str, capacity_w: float | None, times: Sequence[datetime]
    ) -> list[tuple[float | None, float | None, str | None]]:
        """(cap W, non-member W, DSO mode) at each quarter's start: the DSO's signals as
        stored (cancelled ones until they were), else the transformer's capacity."""
        if self._dso is None or not times:
            return [(capacity_w, None, None)] * len(times)
        signals = await asyncio.to_thread(self._dso.dso_store.signals_for, transformer_id, times[0])
        fallback = Fallback(
            non_member_estimate_w=self._dso.settings.non_member_estimate_w.get(transformer_id)
        )
        caps = []
        for moment in times:
            cap = cap_in_force(transformer_id, signals, moment, link_lost=False, fallback=fallback)
            caps.append(
                (
                    capacity_w if cap.import_w is None else cap.import_w,
                    cap.non_member_load_w,
                    None if cap.mode is None else str(cap.mode),
                )
            )
        return caps


def _members(
    times: Sequence[datetime],
    load: Sequence[tuple[str, datetime, float]],
    baselines: Sequence[tuple[str, datetime, list[float]]],
) -> dict[str, list[Any]]:
    """The members' summed measured load, baseline and flexibility, each with how many
    members it sums (reporting, forecasting, compared)."""
    index = {moment: i for i, moment in enumerate(times)}
    measured: list[dict[str, float]] = [{} for _ in times]
    for household, quarter, watts in load:
        if (i := index.get(quarter)) is not None:
            measured[i][household] = watts
    forecast: list[dict[str, float]] = [{} for _ in times]
    for household, start, power_w in baselines:  # later ones overwrite earlier ones
        offset = int((start - times[0]) / QUARTER_HOUR)  # both on quarter hours
        for i in range(max(0, offset), min(len(times), offset + len(power_w))):
            forecast[i][household] = power_w[i - offset]
    pairs = list(zip(measured, forecast, strict=True))
    return {
        "members_w": [_sum(m.values()) for m in measured],
        "reporting": [len(m) for m in measured],
        "baseline_w": [_sum(f.values()) for f in forecast],
        "forecasting": [len(f) for f in forecast],
        "flexibility_w": [_sum(f[h] - w for h, w in m.items() if h in f) for m, f in pairs],
        "compared": [len(m.keys() & f.keys()) for m, f in pairs],
    }


def _sum(values: Any) -> float | None:
    listed = list(values)
    return round(sum(listed), 1) if listed else None


def public_history(document: Mapping[str, Any], min_households: int) -> dict[str, Any]:
    """The history with each members' figure only where it sums at least `min_households`
    members (a sum over fewer is too near each home's own), the plan only if it does."""
    past = dict(document["past"])
    for name, count in MEMBER_SERIES.items():
        past[name] = [
            value if summed >= min_households else None
            for value, summed in zip(past[name], past[count], strict=True)
        ]
    plan = document["plan"]
    if plan is not None and plan["households"] < min_households:
        plan = None
    return {**document, "past": past, "plan": plan, "min_households": min_households}


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _error(status: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    return status(
        text=json.dumps({"error": code, "message": message}), content_type="application/json"
    )
