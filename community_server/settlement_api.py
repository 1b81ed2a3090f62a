"""Settlement over HTTP API v1 (docs/settlement.md, openapi.yaml): operators read, close
and export every household's statements and set the rules; a household reads its own.

`?format=csv` turns a statement into CSV (one row per household, statements and
corrections). An open period is computed on request from what arrived so far (kept for
`PREVIEW_TTL`, since the Shapley split of a large community takes seconds).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from netbewust_core.protocol.messages import ProtocolError, check_id
from netbewust_core.settlement.quarters import month_period, period_of
from netbewust_core.settlement.rules import SettlementRules, settle

from .accounts import require_operator
from .settlement_store import SETTLEMENT_ZONE, SettlementError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from netbewust_core.settlement.rules import PeriodSettlement

    from .server import CommunityServer
    from .settlement_store import ClosedPeriod
    from .store import Household, Store

API_PREFIX: Final = "/api/v1"
PREVIEW_TTL: Final = timedelta(minutes=5)
MAX_PREVIEWS: Final = 16
CSV_FIELDS: Final = (
    "period", "kind", "for_period", "rules_version", "household", "import_kwh", "export_kwh",
    "delivered_kwh", "asked_kwh", "shortfall_kwh", "limited_quarters", "paused_quarters",
    "uncovered_quarters", "uncovered_limited_quarters", "flex_cents", "saving_cents",
    "fee_cents", "penalty_cents", "credit_cents",
)  # fmt: skip


def _error(status: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    return status(
        text=json.dumps({"error": code, "message": message}), content_type="application/json"
    )


class SettlementApi:
    """The settlement routes, on the server's store and its household authentication."""

    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        authenticated: Callable[[web.Request], Awaitable[Household]],
    ) -> None:
        self._server = server
        self._store = store
        self._authenticated = authenticated
        self._previews: dict[tuple[str, str], tuple[datetime, PeriodSettlement]] = {}

    def register(self, app: web.Application) -> None:
        base = f"{API_PREFIX}/communities/{{community_id}}/settlement"
        app.add_routes(
            [
                web.get(base, self.overview),
                web.put(f"{base}/rules", self.set_rules),
                web.get(f"{base}/{{period}}", self.period),
                web.post(f"{base}/{{period}}/close", self.close),
                web.get(
                    f"{API_PREFIX}/households/{{household_id}}/settlement/{{period}}",
                    self.household,
                ),
            ]
        )

    # --- operators ----------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.Response:
        """The rules in force, the closed periods and the open one."""
        await require_operator(request)
        community = await self._community(request)
        ledger = self._store.settlement
        rules = await self._server.run_in_db(ledger.rules, community)
        rows = await self._server.run_in_db(ledger.closed, community, None)
        periods = [
            {
                "period": row.period,
                "close_number": row.close_number,
                "closed_at": row.closed_at.isoformat(),
                "rules_version": row.rules.version,
                "households": len(row.document["households"]),
                "credit_cents": row.document["credit_cents"],
                "saving_eur": row.document["saving_eur"],
                "pool_cents": row.document["pool_cents"],
                "distributed_cents": row.document["distributed_cents"],
                "corrections": [
                    other.for_period
                    for other in rows
                    if other.period == row.period and other.is_correction
                ],
            }
            for row in rows
            if not row.is_correction
        ]
        return web.json_response(
            {
                "community": community,
                "time_zone": str(SETTLEMENT_ZONE),
                "open_period": period_of(self._server.now(), SETTLEMENT_ZONE).key,
                "rules": rules.to_document(),
                "periods": periods,
                "baseline_refusals": ledger.baseline_refusals,
                "telemetry_out_of_range": ledger.telemetry_out_of_range,
            }
        )

    async def set_rules(self, request: web.Request) -> web.Response:
        await require_operator(request, changes=True)
        community = await self._community(request)
        try:
            rules = SettlementRules.from_document(await request.json())
        except ValueError as err:  # bad JSON is a ValueError too
            raise _error(web.HTTPBadRequest, "malformed", str(err)[:300]) from None
        try:
            await self._server.run_in_db(
                self._store.settlement.set_rules, community, rules, self._server.now()
            )
        except SettlementError as err:
            raise _error(web.HTTPConflict, "conflict", str(err)) from None
        return web.json_response(rules.to_document(), status=201)

    async def period(self, request: web.Request) -> web.Response:
        """A period's statement for every household (with the corrections made at its close),
        or the open period computed so far."""
        await require_operator(request)
        community = await self._community(request)
        key = _period_key(request)
        document = await self._document(community, key)
        return _answer(request, document, f"{community}-{key}")

    async def close(self, request: web.Request) -> web.Response:
        await require_operator(request, changes=True)
        community = await self._community(request)
        key = _period_key(request)
        try:
            await self._server.run_in_db(
                self._store.settlement.close, community, key, self._server.now()
            )
        except SettlementError as err:
            raise _error(web.HTTPConflict, "conflict", str(err)) from None
        self._previews.pop((community, key), None)
        return web.json_response(await self._document(community, key), status=201)

    # --- a household --------------------------------------------------------------------

    async def household(self, request: web.Request) -> web.Response:
        """The household's own statement (an operator may read any)."""
        household = await self._authenticated(request)
        key = _period_key(request)
        community = household.community_id
        document = await self._document(community, key)
        own = [row for row in document["households"] if row["household"] == household.household_id]
        corrections = [
            {
                "for_period": correction["for_period"],
                "rules_version": correction["rules_version"],
                "change": next(
                    (
                        row
                        for row in correction["households"]
                        if row["household"] == household.household_id
                    ),
                    None,
                ),
            }
            for correction in document["corrections"]
        ]
        answer = {
            "community": community,
            "household": household.household_id,
            "period": key,
            "start": document["start"],
            "end": document["end"],
            "closed": document["closed"],
            "closed_at": document["closed_at"],
            "rules": document["rules"],
            "rules_version": document["rules_version"],
            "coverage_min": document["coverage_min"],
            "statement": own[0] if own else None,
            "corrections": [c for c in corrections if c["change"] is not None],
        }
        return _answer(request, answer, f"{household.household_id}-{key}")

    # --- internals ----------------------------------------------------------------------

    async def _community(self, request: web.Request) -> str:
        community = request.match_info["community_id"]
        try:
            check_id(community, "community")
        except ProtocolError:
            raise _error(web.HTTPBadRequest, "malformed", "not a community id") from None
        known = await self._server.run_in_db(self._store.communities)
        if community not in {c.community_id for c in known}:
            raise _error(web.HTTPNotFound, "not_found", "no such community")
        return community

    async def _document(self, community: str, key: str) -> dict[str, Any]:
        ledger = self._store.settlement
        rows = await self._server.run_in_db(ledger.closed, community, key)
        period = month_period(key, SETTLEMENT_ZONE)
        frame = {
            "community": community,
            "period": key,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "time_zone": str(SETTLEMENT_ZONE),
        }
        statement = next((row for row in rows if not row.is_correction), None)
        if statement is not None:
            return {
                **frame,
                **statement.document,
                "closed": True,
                "close_number": statement.close_number,
                "closed_at": statement.closed_at.isoformat(),
                "rules": statement.rules.to_document(),
                "corrections": [_correction(row) for row in rows if row.is_correction],
            }
        now = self._server.now()
        if now < period.start:
            raise _error(web.HTTPNotFound, "not_found", f"{key} has not begun")
        cached = self._previews.get((community, key))
        if cached is None or now - cached[0] >= PREVIEW_TTL or now < cached[0]:
            data, rules = await self._server.run_in_db(ledger.preview_input, community, key)
            computed = await asyncio.to_thread(settle, data, rules)  # off the database thread
            if len(self._previews) >= MAX_PREVIEWS:  # a client walking the calendar
                self._previews.pop(next(iter(self._previews)))
            cached = self._previews[(community, key)] = (now, computed)
        rules = await self._server.run_in_db(ledger.rules, community)
        return {
            **frame,
            **cached[1].to_document(),
            "closed": False,
            "close_number": None,
            "closed_at": None,
            "computed_at": cached[0].isoformat(),
            "rules": rules.to_document(),
            "corrections": [],
        }


def _correction(row: ClosedPeriod) -> dict[str, Any]:
    return {**row.document, "for_period": row.for_period, "rules": row.rules.to_document()}


def _period_key(request: web.Request) -> str:
    key = request.match_info["period"]
    try:
        month_period(key, SETTLEMENT_ZONE)
    except ValueError as err:
        raise _error(web.HTTPBadRequest, "malformed", str(err)) from None
    return key


def _answer(request: web.Request, document: dict[str, Any], name: str) -> web.Response:
    wanted = request.query.get("format", "json")
    if wanted == "json":
        return web.json_response(document, headers={"Cache-Control": "no-store"})
    if wanted != "csv":
        raise _error(web.HTTPBadRequest, "malformed", "format is json or csv")
    return web.Response(
        text=_csv(document),
        content_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="settlement-{name}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _csv(document: dict[str, Any]) -> str:
    """Statement rows, then correction rows; a household's document has one of each kind."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    key, version = document["period"], document["rules_version"]
    statements = document.get("households") or (
        [document["statement"]] if document.get("statement") else []
    )
    for row in statements:
        writer.writerow(
            {**row, "period": key, "kind": "statement", "for_period": key, "rules_version": version}
        )
    for correction in document["corrections"]:
        changes = correction.get("households") or [correction["change"]]
        for row in changes:
            writer.writerow(
                {
                    **row,
                    "period": key,
                    "kind": "correction",
                    "for_period": correction["for_period"],
                    "rules_version": correction["rules_version"],
                }
            )
    return out.getvalue()
