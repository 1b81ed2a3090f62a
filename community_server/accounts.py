"""Who is asking over HTTP: operators (a dashboard session) and households (HTTP Basic).

Roles. An operator may see and do everything the HTTP API offers; a household only its
own resources under `/api/v1/households/{id}`; a DSO token (Bearer) is accepted by the
DSO API alone (`dso/http_routes.py`) and by nothing here. Anyone else gets the health
document, the join exchange and, if `[dashboard] public` is on, the public aggregate.

Operator sessions. `POST /api/v1/session` with `{"username", "password"}` (JSON only,
so a cross-site form cannot log a browser in) sets the session cookie: a random token,
HttpOnly, SameSite=Strict, Secure when the request came over TLS (directly, or via a
trusted proxy's `X-Forwarded-Proto: https`), ending after `[dashboard] session_hours`
(checked by the server, whatever the browser keeps). The database stores only the
token's SHA-256. `GET /api/v1/session` tells the page who is
logged in; `DELETE /api/v1/session` logs out. A request that changes state on the
strength of the cookie must also carry `X-CSRF-Token`: an HMAC of the session token,
returned at login and by `GET /api/v1/session`, which another site cannot read.

`is_operator(request)` is the check other routes (e.g. `/metrics`) use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from .passwords import HOUSEHOLD_HASHER, OPERATOR_HASHER, PasswordChecker
from .rate_limit import is_trusted

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from .rate_limit import Network
    from .server import CommunityServer
    from .store import OperatorSession, Store

_LOGGER = logging.getLogger(__name__)
SESSION_PATH = "/api/v1/session"
SESSION_COOKIE = "netbewust_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_USERNAME = 64
MAX_PASSWORD = 1024  # longer is no password anyone types; refused before any KDF runs
MIN_OPERATOR_PASSWORD = 12
_REQUEST_KEY = "netbewust_operator"  # the resolved session, once per request


def _error(status: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    # No WWW-Authenticate here: a browser must not answer with its Basic dialog.
    return status(
        text=json.dumps({"error": code, "message": message}), content_type="application/json"
    )


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"netbewust-csrf", hashlib.sha256).hexdigest()


class Accounts:
    """Operator logins and sessions, and households' HTTP Basic checks."""

    def __init__(
        self,
        server: CommunityServer,
        store: Store,
        *,
        session_hours: float,
        attempt: Callable[[web.Request], Awaitable[str]] | None = None,
        succeeded: Callable[[str], None] | None = None,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        """`attempt` admits (or refuses with 429) a login attempt and returns the client's
        address, which `succeeded` is told after a right password (the rate limiter).
        A request from `trusted_proxies` with `X-Forwarded-Proto: https` came over TLS."""
        self._server = server
        self._store = store
        self._session_length = timedelta(hours=session_hours)
        self.checker = PasswordChecker()
        self._attempt = attempt
        self._succeeded = succeeded
        self._trusted_proxies = trusted_proxies

    def register(self, app: web.Application) -> None:
        app[ACCOUNTS_KEY] = self
        app.add_routes(
            [
                web.post(SESSION_PATH, self._log_in),
                web.get(SESSION_PATH, self._current),
                web.delete(SESSION_PATH, self._log_out),
            ]
        )
        app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        self.checker.close()

    # --- households -------------------------------------------------------------------

    async def household(self, username: str, password: str) -> str | None:
        """The household whose HTTP credentials these are, or None.

        A household that has only its broker's `$7$` hash gets an argon2id hash stored.
        """
        if not 0 < len(username) <= MAX_USERNAME or len(password) > MAX_PASSWORD:
            return None
        login = await self._server.run_in_db(self._store.http_login, username)
        stored = None if login is None else (login.http_password_hash or login.broker_password_hash)
        verdict = await self.checker.check(HOUSEHOLD_HASHER, f"h:{username}", password, stored)
        if login is None or not verdict.ok:
            return None
        if verdict.rehashed is not None:
            await self._server.run_in_db(
                self._store.replace_http_password_hash,
                login.household_id,
                verdict.rehashed,
                login.http_password_hash,
            )
            _LOGGER.info("household %s: HTTP password hash upgraded to argon2id", username)
        return login.household_id

    # --- operators --------------------------------------------------------------------

    async def log_in(self, username: str, password: str) -> tuple[str, OperatorSession] | None:
        """A new session token and its session, or None for wrong credentials."""
        if not 0 < len(username) <= MAX_USERNAME or len(password) > MAX_PASSWORD:
            return None
        stored = await self._server.run_in_db(self._store.operator_password_hash, username)
        verdict = await self.checker.check(OPERATOR_HASHER, f"o:{username}", password, stored)
        if stored is None or not verdict.ok:
            return None
        if verdict.rehashed is not None:
            await self._server.run_in_db(
                self._store.replace_operator_password_hash, username, verdict.rehashed, stored
            )
        token = secrets.token_urlsafe(32)
        now = self._server.now()
        await self._server.run_in_db(
            self._store.start_session,
            token_sha256(token),
            username,
            now,
            now + self._session_length,
        )
        session = await self._server.run_in_db(self._store.session, token_sha256(token), now)
        assert session is not None  # just written
        return token, session

    async def operator(self, request: web.Request) -> OperatorSession | None:
        """The operator session the request's cookie belongs to, if it has not ended."""
        if _REQUEST_KEY not in request:
            token = request.cookies.get(SESSION_COOKIE, "")
            session = None
            if 0 < len(token) <= 128:
                session = await self._server.run_in_db(
                    self._store.session, token_sha256(token), self._server.now()
                )
            request[_REQUEST_KEY] = session
        found: OperatorSession | None = request[_REQUEST_KEY]
        return found

    async def require_operator(self, request: web.Request, *, changes: bool) -> OperatorSession:
        """The operator's session, or 401; `changes`: also demand the CSRF token (else 403)."""
        session = await self.operator(request)
        if session is None:
            raise _error(web.HTTPUnauthorized, "unauthorized", "log in as an operator")
        if changes:
            expected = csrf_token(request.cookies[SESSION_COOKIE])
            presented = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(presented.encode(), expected.encode()):
                raise _error(web.HTTPForbidden, "csrf", f"send the session's {CSRF_HEADER}")
        return session

    # --- routes -----------------------------------------------------------------------

    async def _log_in(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            raise _error(web.HTTPUnsupportedMediaType, "malformed", "send JSON")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise _error(web.HTTPForbidden, "cross_origin", "log in from this server's own page")
        try:
            document = await request.json()
        except ValueError:
            raise _error(web.HTTPBadRequest, "malformed", "the body must be JSON") from None
        if (
            not isinstance(document, dict)
            or set(document) != {"username", "password"}
            or not all(isinstance(value, str) for value in document.values())
        ):
            raise _error(web.HTTPBadRequest, "malformed", 'send {"username": "…", "password": "…"}')
        address = None if self._attempt is None else await self._attempt(request)
        answer = await self.log_in(document["username"], document["password"])
        if answer is None:
            _LOGGER.info("refused an operator login")  # the name may be a mistyped password
            raise _error(web.HTTPUnauthorized, "unauthorized", "wrong user name or password")
        if address is not None and self._succeeded is not None:
            self._succeeded(address)
        token, session = answer
        _LOGGER.info("operator %s logged in", session.username)
        response = web.json_response(_session_document(token, session))
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=round(self._session_length.total_seconds()),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self._over_tls(request),
        )
        return response

    def _over_tls(self, request: web.Request) -> bool:
        if request.secure:
            return True
        # Behind a TLS-terminating proxy: only the proxy's own word counts.
        return (
            request.remote is not None
            and is_trusted(request.remote, self._trusted_proxies)
            and request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        )

    async def _current(self, request: web.Request) -> web.Response:
        session = await self.require_operator(request, changes=False)
        return web.json_response(
            _session_document(request.cookies[SESSION_COOKIE], session),
            headers={"Cache-Control": "no-store"},
        )

    async def _log_out(self, request: web.Request) -> web.Response:
        session = await self.require_operator(request, changes=True)
        await self._server.run_in_db(
            self._store.end_session, token_sha256(request.cookies[SESSION_COOKIE])
        )
        _LOGGER.info("operator %s logged out", session.username)
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/", samesite="Strict")
        return response


def _session_document(token: str, session: OperatorSession) -> dict[str, Any]:
    return {
        "username": session.username,
        "csrf_token": csrf_token(token),
        "expires_at": session.expires_at.isoformat(timespec="seconds"),
    }


ACCOUNTS_KEY = web.AppKey("accounts", Accounts)


async def is_operator(request: web.Request) -> bool:
    """Whether the request carries a live operator session (for routes outside this module)."""
    accounts = request.app.get(ACCOUNTS_KEY)
    return accounts is not None and await accounts.operator(request) is not None


async def require_operator(request: web.Request, *, changes: bool = False) -> OperatorSession:
    """The request's operator session, or 401 (403 without the CSRF token if it `changes`)."""
    accounts = request.app.get(ACCOUNTS_KEY)
    if accounts is None:
        raise _error(web.HTTPUnauthorized, "unauthorized", "log in as an operator")
    return await accounts.require_operator(request, changes=changes)
