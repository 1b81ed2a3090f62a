"""The callback a VTN posts notifications to (OpenADR 3 subscriptions).

A notification only wakes the VEN's poller: the poll then reads the VTN again, so a
forged or stale notification cannot put a cap in force by itself. The VTN must send back
the bearer token the VEN gave it when subscribing.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from .http_routes import read_limited_body

if TYPE_CHECKING:
    from .ven import VenClient

_LOGGER = logging.getLogger(__name__)
NOTIFICATION_PATH = "/api/v1/dso/openadr/notifications"
MAX_NOTIFICATION_BYTES = 64 * 1024
_OBJECT_TYPES = {"PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"}
# 3.0.1 names HTTP methods, 3.1.0 CRUD operations.
_OPERATIONS = {"GET", "POST", "PUT", "DELETE", "CREATE", "READ", "UPDATE"}


def _answer(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def register_notification_route(
    app: web.Application, ven: VenClient, path: str = NOTIFICATION_PATH
) -> None:
    async def notified(request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), ven.callback_token.encode()
        ):
            return _answer(401, "unauthorized", "not the token of our subscription")
        body = await read_limited_body(request, MAX_NOTIFICATION_BYTES)
        try:
            document = json.loads(body)
        except ValueError, UnicodeDecodeError:
            return _answer(400, "malformed", "a notification is a JSON object")
        if (
            not isinstance(document, dict)
            or document.get("objectType") not in _OBJECT_TYPES
            or document.get("operation") not in _OPERATIONS
            or not isinstance(document.get("object"), dict)
        ):
            return _answer(400, "malformed", "needs objectType, operation and object")
        _LOGGER.info("VTN notification: %s %s", document["operation"], document["objectType"])
        ven.poll_now()
        return web.json_response({"status": "polling"})

    app.router.add_post(path, notified)
