"""A test VTN: the OpenADR 3 paths our VEN uses, served by aiohttp on loopback.

OAuth2 client credentials at `/auth/token`, programs and events (with skip/limit),
reports and subscriptions (kept for the contract tests). Faults are switches:
`down` (503), `revoke_tokens()` (401 until a new token is fetched), `events_body`
(raw bytes instead of the event list), `refuse_subscriptions`.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Callable

CLIENT_ID = "netbewust-ven"
CLIENT_SECRET = "ven-secret"


def _json(document: object, status: int = 200) -> web.Response:
    return web.json_response(document, status=status)


class TestVtn:
    __test__ = False  # not a pytest class

    def __init__(self, version: str, clock: Callable[[], datetime]) -> None:
        self.version = version
        self.clock = clock
        self.prefix = f"/openadr3/{version}"
        self.programs: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.tokens: dict[str, datetime] = {}
        self.token_requests = 0
        self.down = False
        self.events_body: bytes | None = None
        self.refuse_subscriptions = False
        self.token_lifetime = timedelta(hours=1)

    def application(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.post(f"{self.prefix}/auth/token", self.token),
                web.get(f"{self.prefix}/programs", self.list_programs),
                web.get(f"{self.prefix}/events", self.list_events),
                web.post(f"{self.prefix}/reports", self.create_report),
                web.post(f"{self.prefix}/subscriptions", self.create_subscription),
            ]
        )
        return app

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":
            client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
        if form.get("grant_type") != "client_credentials" or (client_id, client_secret) != (
            CLIENT_ID,
            CLIENT_SECRET,
        ):
            return _json({"error": "invalid_client"}, 401)
        token = secrets.token_hex(16)
        self.tokens[token] = self.clock() + self.token_lifetime
        return _json(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.token_lifetime.total_seconds()),
            }
        )

    def _authorized(self, request: web.Request) -> web.Response | None:
        if self.down:
            return _json({"title": "unavailable"}, 503)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self.tokens.get(token) if scheme == "Bearer" else None
        if expiry is None or expiry <= self.clock():
            return _json({"title": "unauthorized", "status": 401}, 401)
        return None

    @staticmethod
    def _page(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        skip = int(request.query.get("skip", "0"))
        limit = int(request.query.get("limit", "50"))
        return items[skip : skip + limit]

    async def list_programs(self, request: web.Request) -> web.Response:
        return self._authorized(request) or _json(self._page(request, self.programs))

    async def list_events(self, request: web.Request) -> web.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        if self.events_body is not None:
            return web.Response(body=self.events_body, content_type="application/json")
        return _json(self._page(request, self.events))

    async def create_report(self, request: web.Request) -> web.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        report = await request.json()
        self.reports.append(report)
        now = self.clock().isoformat()
        stored = {
            **report,
            "id": f"report-{len(self.reports)}",
            "createdDateTime": now,
            "modificationDateTime": now,
            "objectType": "REPORT",
        }
        if self.version == "3.1.0":
            stored["clientID"] = CLIENT_ID
        return _json(stored, 201)

    async def create_subscription(self, request: web.Request) -> web.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        if self.refuse_subscriptions:
            return _json({"title": "not implemented"}, 501)
        subscription = await request.json()
        self.subscriptions.append(subscription)
        return _json({**subscription, "id": f"sub-{len(self.subscriptions)}"}, 201)


def program(
    program_id: str = "prog-1", version: str = "3.0.1", *, gac: bool = True
) -> dict[str, Any]:
    created = "2026-11-01T00:00:00+00:00"
    document: dict[str, Any] = {
        "id": program_id,
        "createdDateTime": created,
        "modificationDateTime": created,
        "objectType": "PROGRAM",
        "programName": f"congestion {program_id}",
    }
    if version == "3.0.1":
        document |= {
            "retailerName": "Stedin",
            "programType": "DSO_CPO_INTERFACE-1.0.0" if gac else "NETBEWUST",
            "bindingEvents": True,
        }
    else:
        document["attributes"] = [
            {"type": "RETAILER_NAME", "values": ["Stedin"]},
            {"type": "PROGRAM_TYPE", "values": ["DSO_CPO_INTERFACE-2.2.0" if gac else "OTHER"]},
            {"type": "BINDING_EVENTS", "values": [True]},
        ]
    return document


def event(
    event_id: str,
    start: datetime,
    values_kw: list[float],
    *,
    version: str = "3.0.1",
    program_id: str = "prog-1",
    eans: tuple[str, ...] = ("871685900000000011",),
    payload_type: str = "IMPORT_CAPACITY_LIMIT",
    units: str = "KW",
    name: str | None = None,
    modified: datetime | None = None,
    report_usage: bool = False,
    duration: str = "PT15M",
) -> dict[str, Any]:
    """A GAC-shaped event: one payload per interval, continuous intervals."""
    modified_at = (modified or datetime(2026, 11, 22, 11, 0, tzinfo=UTC)).isoformat()
    targets: list[Any] = (
        [
            {"type": "POWER_SERVICE_LOCATION", "values": list(eans)},
            {"type": "VEN_NAME", "values": ["netbewust"]},
        ]
        if version == "3.0.1"
        else list(eans)
    )
    document: dict[str, Any] = {
        "id": event_id,
        "createdDateTime": modified_at,
        "modificationDateTime": modified_at,
        "objectType": "EVENT",
        "programID": program_id,
        "eventName": name or f"limit {event_id}",
        "targets": targets,
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": payload_type, "units": units}
        ],
        "intervalPeriod": {"start": start.isoformat(), "duration": duration},
        "intervals": [
            {"id": index, "payloads": [{"type": payload_type, "values": [value]}]}
            for index, value in enumerate(values_kw)
        ],
    }
    if report_usage:
        document["reportDescriptors"] = [
            {"payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "KW"}
        ]
    return document


def dump(document: object) -> bytes:
    return json.dumps(document).encode()
