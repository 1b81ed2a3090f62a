"""HTTP API v1 (aiohttp), described in `openapi.yaml` next to this module.

`GET /api/v1/health` is the public info document: liveness, protocol version and the
server's identity (`server_id`, also in the zeroconf TXT record). `POST /api/v1/join`
exchanges a one-time join code for a household's MQTT credentials.
Household resources need HTTP Basic authentication with those same credentials, and a
household sees only itself. Responses are JSON; errors are `{"error", "message"}`.
Every attempt at a secret (join code, Basic credentials, metrics token, operator login)
passes `HttpApi.attempt` first: per-address back-off and lockout, answered 429
(`rate_limit.py`). `GET /metrics` is the Prometheus text, for operators or the token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import math
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from netbewust_core.protocol.messages import PROTOCOL_VERSION, TOPIC_PREFIX, encode

from .accounts import Accounts, require_operator
from .connection_gate import GatedSite
from .mosquitto import apply_when_reachable, household_added, household_removed
from .prometheus import ServerCollector, exposition, server_registry
from .rate_limit import AttemptLimiter, client_address, is_trusted
from .settlement_api import SettlementApi
from .store import JoinCodeError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from netbewust_core.protocol.messages import Message

    from .config import ServerConfig
    from .dashboard import Dashboard
    from .server import CommunityServer
    from .store import Household, HouseholdCredentials, Store

_LOGGER = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")
MAX_BODY_BYTES = 4096
MAX_JOIN_CODE_LENGTH = 64
# Each kind of secret has limits of its own: a mistyped join code does not lock out Basic.
ATTEMPT_KINDS = ("join", "login", "basic", "metrics")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _error(status: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    body = json.dumps({"error": code, "message": message})
    headers = (
        {"WWW-Authenticate": 'Basic realm="netbewust"'} if status is web.HTTPUnauthorized else None
    )
    return status(text=body, content_type="application/json", headers=headers)


def _too_many(retry_after_s: float) -> web.HTTPException:
    body = json.dumps({"error": "too_many_attempts", "message": "wait before trying again"})
    answer = web.HTTPTooManyRequests(
        text=body,
        content_type="application/json",
        headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
    )
    answer.force_close()  # a locked-out client's next connection is dropped unparsed
    return answer


class HttpApi:
    """Request handlers over the server's store, run on the server's database thread."""

    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        config: ServerConfig,
        *,
        attempt_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._store = store
        self._config = config
        self._trusted_proxies = config.rate_limit.trusted
        self.limiters = {
            kind: AttemptLimiter(kind, config.rate_limit, attempt_clock) for kind in ATTEMPT_KINDS
        }
        self.accounts = Accounts(
            server,
            store,
            session_hours=config.dashboard.session_hours,
            attempt=lambda request: self.attempt("login", request),
            succeeded=self.limiters["login"].succeeded,
            trusted_proxies=self._trusted_proxies,
        )
        self.connections_dropped = 0
        self.metrics_registry = server_registry(
            ServerCollector(
                server.metrics,
                lambda: server.is_connected,
                self.limiters.values(),
                (server.rejection_log,),
                connections_dropped=lambda: self.connections_dropped,
            )
        )

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.add_routes(
            [
                web.get(f"{API_PREFIX}/health", self.health),
                web.get(f"{API_PREFIX}/openapi.yaml", self.openapi),
                web.post(f"{API_PREFIX}/join", self.join),
                web.get(f"{API_PREFIX}/households/{{household_id}}", self.household),
                web.get(f"{API_PREFIX}/households/{{household_id}}/limits", self.limits),
                web.get(f"{API_PREFIX}/households/{{household_id}}/export", self.export),
                web.delete(f"{API_PREFIX}/households/{{household_id}}", self.delete),
                web.get("/metrics", self.metrics),
            ]
        )
        self.accounts.register(app)
        SettlementApi(self._server, self._store, self._authenticated).register(app)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "protocol_version": PROTOCOL_VERSION,
                "broker_connected": self._server.is_connected,
                "server_id": self._store.server_id,
            }
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(text=OPENAPI_FILE.read_text(), content_type="application/yaml")

    def client_address(self, request: web.Request) -> str:
        return client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), self._trusted_proxies
        )

    def refuses_connection(self, peer: str) -> bool:
        """Whether to drop a new connection from `peer` unanswered: while it is locked out of
        any kind of secret. Not a trusted proxy: its clients are told apart per request."""
        if not any(limiter.is_locked_out(peer) for limiter in self.limiters.values()) or (
            self._trusted_proxies and is_trusted(peer, self._trusted_proxies)
        ):
            return False
        self.connections_dropped += 1
        return True

    async def attempt(self, kind: str, request: web.Request) -> str:
        """Admit one attempt at a secret of `kind`, or answer 429; returns the client address
        to pass to `self.limiters[kind].succeeded` when the secret was right."""
        address = self.client_address(request)
        verdict = self.limiters[kind].attempt(address)
        if not verdict.allowed:
            raise _too_many(verdict.retry_after_s)
        if verdict.delay_s:
            await asyncio.sleep(verdict.delay_s)
        return address

    async def is_operator(self, request: web.Request) -> bool:
        """Whether the request carries a logged-in operator's session (`accounts.py`)."""
        return await self.accounts.operator(request) is not None

    async def metrics(self, request: web.Request) -> web.Response:
        if not await self.is_operator(request):
            await self._check_metrics_token(request)
        return web.Response(
            body=exposition(self.metrics_registry),
            headers={"Content-Type": METRICS_CONTENT_TYPE},
        )

    async def _check_metrics_token(self, request: web.Request) -> None:
        token = self._config.http.metrics_token
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        refusal = _error(web.HTTPForbidden, "forbidden", "for operators or the metrics token")
        if not token or scheme.lower() != "bearer":
            raise refusal
        address = await self.attempt("metrics", request)
        if not hmac.compare_digest(offered.strip().encode(), token.encode()):
            raise refusal
        self.limiters["metrics"].succeeded(address)

    async def join(self, request: web.Request) -> web.Response:
        try:
            document = await request.json()
        except ValueError:
            raise _error(web.HTTPBadRequest, "malformed", "the body must be JSON") from None
        code = document.get("join_code") if isinstance(document, dict) else None
        if (
            not isinstance(code, str)
            or not 0 < len(code) <= MAX_JOIN_CODE_LENGTH
            or set(document) != {"join_code"}
        ):
            raise _error(web.HTTPBadRequest, "malformed", 'send {"join_code": "XXXX-XXXX-XXXX"}')
        address = await self.attempt("join", request)
        now = self._server.now()
        try:
            credentials = await self._server.run_in_db(self._store.redeem_join_code, code, now)
        except JoinCodeError as err:
            # The reason (used, expired, …) is logged, never told to the caller.
            _LOGGER.info("refused a join: %s", err)
            raise _error(
                web.HTTPForbidden, "invalid_join_code", "this join code is not valid"
            ) from None
        self.limiters["join"].succeeded(address)
        _LOGGER.info("household %s joined %s", credentials.household_id, credentials.community_id)
        await self._broker_accounts(household_added, credentials)
        return web.json_response(self._join_answer(credentials), status=201)

    def _join_answer(self, credentials: HouseholdCredentials) -> dict[str, Any]:
        http = self._config.http
        return {
            "protocol_version": PROTOCOL_VERSION,
            "community": credentials.community_id,
            "household": credentials.household_id,
            "topic_prefix": f"{TOPIC_PREFIX}/{credentials.community_id}/{credentials.household_id}",
            "mqtt": {
                "host": http.public_mqtt_host or self._config.mqtt.host,
                "port": http.public_mqtt_port or self._config.mqtt.port,
                "tls": http.public_mqtt_tls,
                "client_id": credentials.household_id,
                "username": credentials.username,
                "password": credentials.password,
            },
        }

    async def _broker_accounts(self, change: Callable[..., None], *args: object) -> None:
        # Off the database thread: with mosquitto this waits for the broker's answer.
        await apply_when_reachable(change, self._config, self._store, *args)

    async def _authenticated(self, request: web.Request, *, changes: bool = False) -> Household:
        """The household named in the path, if the request carries its credentials or an
        operator's session (`changes`: with the session's CSRF token)."""
        household_id = request.match_info["household_id"]
        if "Authorization" not in request.headers and await self.is_operator(request):
            await require_operator(request, changes=changes)
            household = await self._server.run_in_db(self._store.household, household_id)
            if household is None:
                raise _error(web.HTTPNotFound, "not_found", "no such household")
            return household
        address = await self.attempt("basic", request)
        username, password = _basic_credentials(request)
        authenticated = await self.accounts.household(username, password)
        if authenticated is None:
            raise _error(web.HTTPUnauthorized, "unauthorized", "wrong or missing credentials")
        self.limiters["basic"].succeeded(address)
        if authenticated != household_id:
            raise _error(web.HTTPForbidden, "forbidden", "a household can only see itself")
        household = await self._server.run_in_db(self._store.household, household_id)
        if household is None:  # removed between the two lookups
            raise _error(web.HTTPUnauthorized, "unauthorized", "wrong or missing credentials")
        return household

    async def household(self, request: web.Request) -> web.Response:
        household = await self._authenticated(request)
        capabilities = household.capabilities
        return web.json_response(
            {
                "household": household.household_id,
                "community": household.community_id,
                "transformer": household.transformer_id,
                "joined_at": household.joined_at.isoformat(),
                "online": household.online,
                "last_seen_at": (
                    household.last_seen_at.isoformat() if household.last_seen_at else None
                ),
                "connection": (
                    {"phases": capabilities.phases, "fuse_current_a": capabilities.fuse_current_a}
                    if capabilities
                    else None
                ),
                "heat_pump": _heat_pump_state(household, self._server.now()),
            }
        )

    async def limits(self, request: web.Request) -> web.Response:
        """The latest limit (current and planned intervals) and emergency, as sent over MQTT."""
        household = await self._authenticated(request)
        latest_limit = await self._server.run_in_db(
            self._store.latest_sent, household.household_id, "limits"
        )
        latest_emergency = await self._server.run_in_db(
            self._store.latest_sent, household.household_id, "emergency"
        )
        return web.json_response(
            {"limit": _as_document(latest_limit), "emergency": _as_document(latest_emergency)}
        )

    async def export(self, request: web.Request) -> web.Response:
        """Everything stored about the household, as one JSON document (a download)."""
        household = await self._authenticated(request)
        document = await self._server.run_in_db(
            self._store.export_household, household.household_id
        )
        if document is None:  # removed meanwhile
            raise _error(web.HTTPNotFound, "not_found", "no such household")
        body = await asyncio.to_thread(json.dumps, document)
        return web.Response(
            text=body,
            content_type="application/json",
            headers={
                "Content-Disposition": f'attachment; filename="{household.household_id}.json"',
                "Cache-Control": "no-store",
            },
        )

    async def delete(self, request: web.Request) -> web.Response:
        """Remove the household and all its data; its broker account goes at once."""
        household = await self._authenticated(request, changes=True)
        removed = await self._server.run_in_db(self._store.remove_household, household.household_id)
        if removed:
            _LOGGER.info("household %s and its data deleted over HTTP", household.household_id)
            await self._server.forget_household(household)
            # The broker user name is the household id (store.redeem_join_code).
            await self._broker_accounts(household_removed, household.household_id)
        return web.Response(status=204)


def _heat_pump_state(household: Household, now: datetime) -> dict[str, object] | None:
    """The heat pumps as the household reported them: thermal stores offered, its latest
    comfort margin, its pause and how many it made; None when it reported none of it."""
    state = household.heat_pump
    stores = household.capabilities.thermal_heat_pumps if household.capabilities else ()
    if state is None and not stores:
        return None
    return {
        "thermal_stores": len(stores),
        "comfort_margin_min": state.comfort_margin_min if state else None,
        "comfort_margin_at": _iso(state.comfort_margin_at) if state else None,
        "paused": state.paused(now) if state else False,
        "paused_until": _iso(state.paused_until) if state else None,
        "pauses": state.pauses if state else 0,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _as_document(message: Message | None) -> object:
    return None if message is None else json.loads(encode(message))


def _basic_credentials(request: web.Request) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _error(web.HTTPUnauthorized, "unauthorized", "use HTTP Basic authentication")
    try:
        username, separator, password = (
            base64.b64decode(encoded, validate=True).decode().partition(":")
        )
    except binascii.Error, UnicodeDecodeError:
        raise _error(web.HTTPUnauthorized, "unauthorized", "malformed credentials") from None
    if not separator:
        raise _error(web.HTTPUnauthorized, "unauthorized", "malformed credentials")
    return username, password


def tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    if not config.http.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.http.tls_cert_file, config.http.tls_key_file)
    return context


async def start_site(
    api: HttpApi,
    config: ServerConfig,
    dashboard: Dashboard | None = None,
    more_routes: Sequence[Callable[[web.Application], None]] = (),
) -> web.AppRunner:
    """Serve the API (the dashboard, and `more_routes` such as the DSO API); returns the
    runner, whose `cleanup()` stops it."""
    app = api.application()
    if dashboard is not None:
        dashboard.register(app)
    for register in more_routes:
        register(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = GatedSite(
        runner,
        config.http.host,
        config.http.port,
        refuse=api.refuses_connection,
        ssl_context=tls_context(config),
    )
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    _LOGGER.info("HTTP API on %s:%d", config.http.host, config.http.port)
    return runner
