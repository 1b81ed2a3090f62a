"""The plain HTTP DSO API over a real loopback socket."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from community_server.dso.http_routes import (
    DSO_PREFIX,
    DsoAccount,
    DsoHttpApi,
    hash_token,
    register_dso_routes,
)
from community_server.dso.in_force import Fallback

from .conftest import NOW, QUARTER, Clock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import datetime

    from community_server.dso.audit import DsoStore
    from community_server.dso.signals import CapSignal

TOKEN = "dso-secret-token"
OTHER_TOKEN = "other-dso-token"
TRANSFORMERS = {"trafo-12"}


class Dso:
    def __init__(self, client: TestClient[web.Request, web.Application], clock: Clock) -> None:
        self.client = client
        self.clock = clock
        self.link_lost = False
        self.seen: list[CapSignal] = []

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.client.request(
            method, f"{DSO_PREFIX}{path}", headers=headers, **kwargs
        ) as response:
            body = await response.read()
            return response.status, json.loads(body) if body else None


def _interval(start: datetime, import_kw: object, **extra: Any) -> dict[str, Any]:
    return {
        "start": start.isoformat(),
        "end": (start + QUARTER).isoformat(),
        "import_kw": import_kw,
        **extra,
    }


def _frame(request_id: str = "req-1", **overrides: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "request_id": request_id,
        "transformer": "trafo-12",
        "mode": "frame",
        "intervals": [
            _interval(NOW, 320.0, export_kw=250.0),
            _interval(NOW + QUARTER, 300.0, non_member_load_kw=40.0),
        ],
    }
    frame.update(overrides)
    return frame


@pytest.fixture
async def dso(store: DsoStore, clock: Clock, socket_enabled: None) -> AsyncIterator[Dso]:
    holder: dict[str, Dso] = {}
    seen: list[CapSignal] = []
    api = DsoHttpApi(
        store,
        (DsoAccount("stedin", hash_token(TOKEN)), DsoAccount("other", hash_token(OTHER_TOKEN))),
        TRANSFORMERS.__contains__,
        clock,
        link_lost=lambda: holder["dso"].link_lost,
        fallback_for=lambda _transformer: Fallback(
            default_import_w=200_000.0, non_member_estimate_w=30_000.0
        ),
        on_signal=seen.append,
    )
    app = web.Application(client_max_size=4096)  # as small as the server's own app
    register_dso_routes(app, api)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    holder["dso"] = Dso(client, clock)
    holder["dso"].seen = seen
    yield holder["dso"]
    await client.close()


async def test_frame_is_stored_audited_and_in_force(dso: Dso, store: DsoStore) -> None:
    status, body = await dso.call("POST", "/frames", json=_frame())
    assert status == 201
    assert body["source"] == "http"
    assert body["issuer"] == "stedin"
    assert [i["import_kw"] for i in body["intervals"]] == [320.0, 300.0]
    assert len(dso.seen) == 1

    status, body = await dso.call("GET", "/transformers/trafo-12/in-force")
    assert status == 200
    in_force = body["in_force"]
    assert in_force["import_kw"] == 320.0
    assert in_force["export_kw"] == 250.0
    assert in_force["mode"] == "frame"
    # No DSO measurement in the first interval: the configured estimate, and it says so.
    assert in_force["non_member_load_kw"] == 30.0
    assert in_force["non_member_load_source"] == "configured_estimate"

    dso.clock.now = NOW + QUARTER
    _, body = await dso.call("GET", "/transformers/trafo-12/in-force")
    assert body["in_force"]["import_kw"] == 300.0
    assert body["in_force"]["non_member_load_kw"] == 40.0
    assert body["in_force"]["non_member_load_source"] == "dso_measurement"

    actions = [entry.action for entry in store.audit(NOW)]
    assert actions == ["received"]


async def test_a_replayed_request_id_is_idempotent(dso: Dso, store: DsoStore) -> None:
    first_status, first = await dso.call("POST", "/frames", json=_frame())
    second_status, second = await dso.call("POST", "/frames", json=_frame())
    assert (first_status, second_status) == (201, 200)
    assert first["signal_id"] == second["signal_id"]
    assert len(store.signals_for("trafo-12", NOW)) == 1
    assert len(dso.seen) == 1

    changed = _frame(intervals=[_interval(NOW, 100.0)])
    status, body = await dso.call("POST", "/frames", json=changed)
    assert status == 409
    assert body["error"] == "request_id_reused"

    # Request ids are per DSO: another DSO may use the same one.
    status, _ = await dso.call("POST", "/frames", json=_frame(), token=OTHER_TOKEN)
    assert status == 201


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (_frame(intervals=[_interval(NOW, -5.0)]), "must not be negative"),
        (_frame(intervals=[_interval(NOW, float("nan"))]), "number of kW"),
        (_frame(intervals=[_interval(NOW, "300")]), "number of kW"),
        (_frame(intervals=[_interval(NOW, True)]), "number of kW"),
        (_frame(intervals=[_interval(NOW - 2 * QUARTER, 300.0)]), "ends in the past"),
        (
            _frame(intervals=[_interval(NOW, 300.0), _interval(NOW + QUARTER / 3, 200.0)]),
            "overlap",
        ),
        (_frame(intervals=[]), "non-empty"),
        (_frame(intervals=[_interval(NOW, None)]), "caps nothing"),
        (_frame(mode="panic"), "mode must be"),
        (_frame(request_id=""), "request_id"),
        (_frame(extra=1), "unknown fields"),
        (
            _frame(intervals=[{"start": "yesterday", "end": NOW.isoformat()}]),
            "not an ISO 8601",
        ),
        (
            _frame(intervals=[{"start": "2026-11-22T12:00:00", "end": "2026-11-22T13:00:00"}]),
            "UTC offset",
        ),
        (_frame(intervals=[_interval(NOW + QUARTER, 1.0) | {"end": NOW.isoformat()}]), "before"),
        (_frame(intervals=[_interval(NOW, 1.0)] * 2001), "at most 2000"),
        ([1, 2, 3], "JSON object"),
        (
            _frame(intervals=[_interval(NOW, 300.0, load_forecast_kw=-5.0)]),
            "load_forecast_kw must not be negative",
        ),
    ],
)
async def test_bad_frames_get_clear_errors(
    dso: Dso, store: DsoStore, frame: object, fragment: str
) -> None:
    status, body = await dso.call(
        "POST",
        "/frames",
        data=json.dumps(frame, allow_nan=True),
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert fragment in body["message"]
    assert store.signals_for("trafo-12", NOW) == []
    assert [entry.action for entry in store.audit(NOW)] == ["rejected"]


async def test_a_dynamic_limit_carries_the_dsos_load_forecast(dso: Dso, store: DsoStore) -> None:
    frame = _frame(mode="dynamic", intervals=[_interval(NOW, 300.0, load_forecast_kw=340.0)])
    status, body = await dso.call("POST", "/frames", json=frame)
    assert status == 201, body
    assert body["intervals"][0]["load_forecast_kw"] == 340.0
    _, body = await dso.call("GET", "/transformers/trafo-12/in-force")
    assert (body["in_force"]["mode"], body["in_force"]["load_forecast_kw"]) == ("dynamic", 340.0)
    (stored,) = store.signals_for("trafo-12", NOW)  # the forecast survives the database
    assert stored.intervals[0].load_forecast_w == 340_000.0


async def test_unknown_transformer_is_refused(dso: Dso, store: DsoStore) -> None:
    status, body = await dso.call("POST", "/frames", json=_frame(transformer="trafo-99"))
    assert status == 422
    assert body["error"] == "unknown_transformer"
    status, _ = await dso.call("GET", "/transformers/trafo-99/in-force")
    assert status == 404


async def test_huge_and_garbage_bodies_are_refused(dso: Dso) -> None:
    status, body = await dso.call("POST", "/frames", data=b"x" * 300_000)
    assert status == 413
    assert body["error"] == "too_large"
    status, body = await dso.call("POST", "/frames", data=b"\xff\xfe not json")
    assert status == 400
    assert body["error"] == "malformed"


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
async def test_every_route_needs_a_dso_token(dso: Dso, token: str | None) -> None:
    for method, path in [
        ("POST", "/frames"),
        ("DELETE", "/frames/dso-1"),
        ("GET", "/transformers/trafo-12/in-force"),
        ("GET", "/audit"),
    ]:
        status, body = await dso.call(method, path, token=token, json=_frame())
        assert status == 401, (method, path)
        assert body["error"] == "unauthorized"


async def test_cancel_ends_the_frame_and_is_idempotent(dso: Dso, store: DsoStore) -> None:
    _, posted = await dso.call("POST", "/frames", json=_frame())
    signal_id = posted["signal_id"]

    status, _ = await dso.call("DELETE", f"/frames/{signal_id}", token=OTHER_TOKEN)
    assert status == 404  # another DSO cannot cancel it

    dso.clock.now = NOW + QUARTER / 3
    status, body = await dso.call("DELETE", f"/frames/{signal_id}")
    assert status == 200
    assert body["cancelled_at"] == dso.clock.now.isoformat()
    dso.clock.now = NOW + QUARTER / 2
    status, again = await dso.call("DELETE", f"/frames/{signal_id}")
    assert status == 200
    assert again["cancelled_at"] == body["cancelled_at"]

    _, in_force = await dso.call("GET", "/transformers/trafo-12/in-force")
    assert in_force["in_force"]["import_kw"] is None
    assert in_force["signals"] == []
    assert [entry.action for entry in store.audit(NOW)] == ["received", "cancelled"]


async def test_emergency_lowers_the_frame_and_newer_frames_supersede(dso: Dso) -> None:
    await dso.call("POST", "/frames", json=_frame())
    await dso.call(
        "POST", "/frames", json=_frame("req-2", intervals=[_interval(NOW, 310.0, export_kw=None)])
    )
    _, body = await dso.call("GET", "/transformers/trafo-12/in-force")
    assert body["in_force"]["import_kw"] == 310.0  # newest frame wins
    assert body["in_force"]["export_kw"] is None

    await dso.call(
        "POST", "/frames", json=_frame("req-3", mode="emergency", intervals=[_interval(NOW, 240.0)])
    )
    _, body = await dso.call("GET", "/transformers/trafo-12/in-force")
    assert body["in_force"]["import_kw"] == 240.0
    assert body["in_force"]["mode"] == "emergency"
    assert len(body["in_force"]["signal_ids"]) == 2


async def test_lost_link_falls_back_to_the_configured_default_after_the_frame(dso: Dso) -> None:
    await dso.call("POST", "/frames", json=_frame())
    dso.link_lost = True
    _, body = await dso.call("GET", "/transformers/trafo-12/in-force")
    assert body["in_force"]["import_kw"] == 320.0  # the last frame stays in force

    dso.clock.now = NOW + 2 * QUARTER
    _, body = await dso.call("GET", "/transformers/trafo-12/in-force")
    assert body["in_force"]["import_kw"] == 200.0
    assert body["in_force"]["source"] == "configured_default"


async def test_audit_lists_what_happened(dso: Dso) -> None:
    await dso.call("POST", "/frames", json=_frame())
    await dso.call("POST", "/frames", json=_frame(transformer="nope"))
    status, body = await dso.call("GET", "/audit", params={"since": NOW.isoformat()})
    assert status == 200
    assert [(e["action"], e["issuer"]) for e in body["entries"]] == [
        ("received", "stedin"),
        ("rejected", "stedin"),
    ]
    status, body = await dso.call("GET", "/audit", params={"since": "garbage"})
    assert status == 400
