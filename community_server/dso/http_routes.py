"""Plain HTTP DSO API (aiohttp), for DSOs without OpenADR.

Routes, all under `/api/v1/dso`, all needing `Authorization: Bearer <token>` of a DSO
account (the DSO role):
- `POST /frames` — a capacity frame, emergency or dynamic limit for one transformer;
  idempotent by `request_id` (a replay returns the stored signal with 200).
- `GET /transformers/{id}/in-force` — the cap in force now and the signals still to come.
- `DELETE /frames/{signal_id}` — cancel one's own signal from now on.
- `GET /audit?since=ISO` — the audit trail.
Errors are `{"error": code, "message": text}` like the rest of the server's API. Every
value that cannot be used (a start in year 9999 or over a year ahead, a 400-digit
number, a `Date` header ahead of our clock) is a 4xx with the reason, audited and
counted in `DsoHttpApi.rejected`; never a 500.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import logging
import math
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..log_limits import LimitedLog
from ..timestamps import FUTURE_TIMESTAMP, future_reason
from .audit import IdempotencyConflict
from .in_force import CapInForce, Fallback, cap_in_force
from .signals import (
    MAX_INTERVALS,
    CapInterval,
    CapMode,
    CapSignal,
    SignalError,
    SignalSource,
    check_ahead,
    parse_timestamp,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from .audit import AuditEntry, DsoStore

_LOGGER = logging.getLogger(__name__)
DSO_PREFIX = "/api/v1/dso"
MAX_FRAME_BYTES = 256 * 1024  # read by us: the server app's own body limit is for join codes
MAX_ID_LENGTH = 128
_FRAME_FIELDS = {"request_id", "transformer", "mode", "intervals"}
_INTERVAL_FIELDS = {
    "start",
    "end",
    "import_kw",
    "export_kw",
    "non_member_load_kw",
    "load_forecast_kw",
}


def hash_token(token: str) -> str:
    """How DSO tokens are configured: only their SHA-256 is kept."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class DsoAccount:
    name: str
    token_sha256: str


def _error(status: type[web.HTTPException], code: str, message: str) -> web.HTTPException:
    headers = (
        {"WWW-Authenticate": 'Bearer realm="netbewust-dso"'}
        if status is web.HTTPUnauthorized
        else None
    )
    return status(
        text=json.dumps({"error": code, "message": message}),
        content_type="application/json",
        headers=headers,
    )


def _kw_to_w(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignalError(f"{name} must be a number of kW or null, got {str(value)[:40]}")
    try:
        watts = float(value) * 1000.0
    except OverflowError:  # an integer of hundreds of digits
        raise SignalError(f"{name} is out of range") from None
    if not math.isfinite(watts):
        raise SignalError(f"{name} must be a finite number of kW, got {str(value)[:40]}")
    if watts < 0:
        raise SignalError(f"{name} must not be negative, got {value!r}")
    return watts


def _identifier(value: object, name: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise SignalError(f"{name} must be a string of 1 to {MAX_ID_LENGTH} characters")
    return value


def parse_frame(
    document: object, *, issuer: str, now: datetime, signal_id: str
) -> tuple[CapSignal, str]:
    """Validate a posted frame; returns the signal and its request id. Raises SignalError."""
    if not isinstance(document, dict):
        raise SignalError("the body must be a JSON object")
    unknown = set(document) - _FRAME_FIELDS
    if unknown:
        raise SignalError(f"unknown fields: {', '.join(sorted(map(str, unknown)))[:200]}")
    request_id = _identifier(document.get("request_id"), "request_id")
    transformer = _identifier(document.get("transformer"), "transformer")
    try:
        mode = CapMode(document.get("mode", "frame"))
    except ValueError:
        raise SignalError("mode must be one of: frame, emergency, dynamic") from None
    raw_intervals = document.get("intervals")
    if not isinstance(raw_intervals, list) or not raw_intervals:
        raise SignalError("intervals must be a non-empty list")
    if len(raw_intervals) > MAX_INTERVALS:
        raise SignalError(f"at most {MAX_INTERVALS} intervals per frame")
    intervals = []
    for index, raw in enumerate(raw_intervals):
        where = f"intervals[{index}]"
        if not isinstance(raw, dict) or not {"start", "end"} <= set(raw) <= _INTERVAL_FIELDS:
            raise SignalError(
                f"{where} must have start and end, and only import_kw, export_kw, "
                "non_member_load_kw, load_forecast_kw besides"
            )
        start = parse_timestamp(raw["start"], f"{where}.start")
        check_ahead(start, now, f"{where}.start")
        end = parse_timestamp(raw["end"], f"{where}.end")
        import_w = _kw_to_w(raw.get("import_kw"), f"{where}.import_kw")
        export_w = _kw_to_w(raw.get("export_kw"), f"{where}.export_kw")
        non_member_w = _kw_to_w(raw.get("non_member_load_kw"), f"{where}.non_member_load_kw")
        forecast_w = _kw_to_w(raw.get("load_forecast_kw"), f"{where}.load_forecast_kw")
        try:
            interval = CapInterval(start, end, import_w, export_w, non_member_w, forecast_w)
        except SignalError as err:
            raise SignalError(f"{where}: {err}") from None
        if end <= now:
            raise SignalError(f"{where} ends in the past ({end.isoformat()})")
        intervals.append(interval)
    signal = CapSignal(
        signal_id=signal_id,
        transformer_id=transformer,
        source=SignalSource.HTTP,
        mode=mode,
        received_at=now,
        intervals=tuple(intervals),
        issuer=issuer,
        request_id=request_id,
    )
    return signal, request_id


def _kw(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


def signal_document(signal: CapSignal) -> dict[str, Any]:
    return {
        "signal_id": signal.signal_id,
        "request_id": signal.request_id,
        "transformer": signal.transformer_id,
        "source": signal.source.value,
        "mode": signal.mode.value,
        "issuer": signal.issuer,
        "received_at": signal.received_at.isoformat(),
        "cancelled_at": signal.cancelled_at.isoformat() if signal.cancelled_at else None,
        "intervals": [
            {
                "start": interval.start.isoformat(),
                "end": interval.end.isoformat(),
                "import_kw": _kw(interval.import_w),
                "export_kw": _kw(interval.export_w),
                "non_member_load_kw": _kw(interval.non_member_load_w),
                "load_forecast_kw": _kw(interval.load_forecast_w),
            }
            for interval in signal.intervals
        ],
    }


def in_force_document(cap: CapInForce) -> dict[str, Any]:
    return {
        "transformer": cap.transformer_id,
        "at": cap.at.isoformat(),
        "import_kw": _kw(cap.import_w),
        "export_kw": _kw(cap.export_w),
        "mode": cap.mode.value if cap.mode else None,
        "source": cap.source.value if cap.source else None,
        "signal_ids": list(cap.signal_ids),
        "until": cap.until.isoformat() if cap.until else None,
        "non_member_load_kw": _kw(cap.non_member_load_w),
        "non_member_load_source": cap.non_member_load_source.value,
        "load_forecast_kw": _kw(cap.load_forecast_w),
    }


def _audit_document(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "action": entry.action,
        "source": entry.source,
        "issuer": entry.issuer,
        "transformer": entry.transformer_id,
        "signal_id": entry.signal_id,
        "detail": entry.detail,
    }


class DsoHttpApi:
    """Handlers over a `DsoStore`; blocking store calls run off the event loop."""

    def __init__(
        self,
        store: DsoStore,
        accounts: tuple[DsoAccount, ...],
        transformer_exists: Callable[[str], bool],
        clock: Callable[[], datetime],
        *,
        link_lost: Callable[[], bool] = lambda: False,
        fallback_for: Callable[[str], Fallback] | None = None,
        on_signal: Callable[[CapSignal], None] | None = None,
        rejected: Counter[str] | None = None,
    ) -> None:
        """`rejected`: where to count refused frames by code (the server's metrics)."""
        self._store = store
        self._accounts = accounts
        self._transformer_exists = transformer_exists
        self._clock = clock
        self._link_lost = link_lost
        # The VEN's `fallback` (safe mode changes with the VTN), or the configured one.
        self._fallback_for = fallback_for or (lambda _transformer: Fallback())
        self._on_signal = on_signal
        self.rejected: Counter[str] = Counter() if rejected is None else rejected
        self._log = LimitedLog(_LOGGER)  # a few lines per code a minute, then a count

    def register(self, app: web.Application) -> None:
        app.add_routes(
            [
                web.post(f"{DSO_PREFIX}/frames", self.post_frame),
                web.delete(f"{DSO_PREFIX}/frames/{{signal_id}}", self.cancel_frame),
                web.get(f"{DSO_PREFIX}/transformers/{{transformer_id}}/in-force", self.in_force),
                web.get(f"{DSO_PREFIX}/audit", self.audit),
            ]
        )

    def _authenticate(self, request: web.Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _error(web.HTTPUnauthorized, "unauthorized", "send a DSO bearer token")
        presented = hash_token(token.strip())
        for account in self._accounts:
            if hmac.compare_digest(presented, account.token_sha256):
                return account.name
        raise _error(web.HTTPUnauthorized, "unauthorized", "unknown or revoked DSO token")

    async def _reject(
        self, issuer: str, code: str, message: str, transformer: str | None = None
    ) -> None:
        self.rejected[code] += 1
        self._log.flush()
        self._log.log(
            logging.WARNING, code, "rejected a DSO frame from %s: %s", issuer, message[:300]
        )
        await asyncio.to_thread(
            self._store.record,
            self._clock(),
            "rejected",
            SignalSource.HTTP.value,
            message,
            issuer=issuer,
            transformer_id=transformer,
        )

    async def post_frame(self, request: web.Request) -> web.Response:
        issuer = self._authenticate(request)
        body = await read_limited_body(request, MAX_FRAME_BYTES)
        now = self._clock()
        skew = _date_ahead(request.headers.get("Date"), now)
        if skew is not None:
            await self._reject(issuer, FUTURE_TIMESTAMP, skew)
            raise _error(web.HTTPBadRequest, FUTURE_TIMESTAMP, skew)
        try:
            document = json.loads(body)
        except ValueError, UnicodeDecodeError, RecursionError:
            await self._reject(issuer, "malformed", "body is not JSON")
            raise _error(web.HTTPBadRequest, "malformed", "the body must be JSON") from None
        try:
            signal, _ = parse_frame(
                document, issuer=issuer, now=now, signal_id=f"dso-{uuid.uuid4().hex}"
            )
        except SignalError as err:
            await self._reject(issuer, "invalid_frame", str(err))
            raise _error(web.HTTPBadRequest, "invalid_frame", str(err)) from None
        except Exception:  # an unforeseen value is the frame's fault until shown otherwise
            _LOGGER.exception("could not read a DSO frame from %s", issuer)
            message = "the frame could not be read"
            await self._reject(issuer, "invalid_frame", message)
            raise _error(web.HTTPBadRequest, "invalid_frame", message) from None
        if not await asyncio.to_thread(self._transformer_exists, signal.transformer_id):
            message = f"unknown transformer {signal.transformer_id!r}"
            await self._reject(issuer, "unknown_transformer", message)
            raise _error(web.HTTPUnprocessableEntity, "unknown_transformer", message)
        try:
            stored, created = await asyncio.to_thread(
                self._store.save, signal, hashlib.sha256(body).hexdigest()
            )
        except IdempotencyConflict as err:
            await self._reject(issuer, "request_id_reused", str(err), signal.transformer_id)
            raise _error(web.HTTPConflict, "request_id_reused", str(err)) from None
        except SignalError as err:  # the replayed request's stored signal fails today's checks
            message = f"the signal stored under this request_id is no longer valid: {err}"
            await self._reject(issuer, "stored_signal_invalid", message, signal.transformer_id)
            raise _error(web.HTTPConflict, "stored_signal_invalid", message) from None
        if created:
            _LOGGER.info(
                "DSO %s: %s for %s, %d intervals",
                issuer,
                stored.mode.value,
                stored.transformer_id,
                len(stored.intervals),
            )
            if self._on_signal is not None:
                self._on_signal(stored)
        return web.json_response(signal_document(stored), status=201 if created else 200)

    async def cancel_frame(self, request: web.Request) -> web.Response:
        issuer = self._authenticate(request)
        signal_id = request.match_info["signal_id"][:MAX_ID_LENGTH]
        try:
            cancelled = await asyncio.to_thread(
                self._store.cancel, signal_id, issuer, self._clock()
            )
        except SignalError as err:  # stored before today's checks: already ignored
            message = f"the stored signal is no longer valid and is ignored: {err}"
            await self._reject(issuer, "stored_signal_invalid", message)
            raise _error(web.HTTPConflict, "stored_signal_invalid", message) from None
        if cancelled is None:
            raise _error(web.HTTPNotFound, "not_found", f"you have no signal {signal_id!r}")
        if self._on_signal is not None:
            self._on_signal(cancelled)
        return web.json_response(signal_document(cancelled))

    async def in_force(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        transformer = request.match_info["transformer_id"][:MAX_ID_LENGTH]
        if not await asyncio.to_thread(self._transformer_exists, transformer):
            raise _error(web.HTTPNotFound, "unknown_transformer", f"no transformer {transformer!r}")
        now = self._clock()
        signals = await asyncio.to_thread(self._store.signals_for, transformer, now)
        cap = cap_in_force(
            transformer,
            signals,
            now,
            link_lost=self._link_lost(),
            fallback=self._fallback_for(transformer),
        )
        return web.json_response(
            {
                "in_force": in_force_document(cap),
                "signals": [signal_document(s) for s in signals if s.is_active(now)],
            }
        )

    async def audit(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        raw_since = request.query.get("since")
        try:
            since = (
                parse_timestamp(raw_since, "since")
                if raw_since
                else self._clock() - timedelta(days=1)
            )
        except SignalError as err:
            raise _error(web.HTTPBadRequest, "malformed", str(err)) from None
        entries = await asyncio.to_thread(self._store.audit, since)
        return web.json_response({"entries": [_audit_document(entry) for entry in entries]})


def _date_ahead(header: str | None, now: datetime) -> str | None:
    """Why a request's `Date` header is refused (ahead of our clock), else None. A missing
    or unreadable one is not the frame's content and is ignored."""
    if header is None or len(header) > 64:
        return None
    try:
        sent = email.utils.parsedate_to_datetime(header).astimezone(UTC)
    except ValueError, TypeError, OverflowError:
        return None
    return future_reason("the request's Date header", sent, now)


def _too_large(limit: int, size: int) -> web.HTTPException:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=size,
        text=json.dumps({"error": "too_large", "message": f"at most {limit} bytes"}),
        content_type="application/json",
    )


async def read_limited_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, size)
        chunks.append(chunk)
    return b"".join(chunks)


def register_dso_routes(app: web.Application, api: DsoHttpApi) -> None:
    """Add the DSO routes to the server's application (before it starts)."""
    api.register(app)
