"""Hostile DSO input: each bad OpenADR event is skipped and audited while the others
apply, and the HTTP DSO API answers 4xx with the reason, never 500.

Real components: the test VTN and the DSO API on loopback aiohttp servers, the real
openadr3-client underneath the VEN, and the DSO store in SQLite. A fuzz run over event
and frame shapes shows no input gets past validation as anything but a clear rejection.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings

from community_server.dso.audit import to_ms
from community_server.dso.http_routes import (
    DSO_PREFIX,
    DsoAccount,
    DsoHttpApi,
    hash_token,
    parse_frame,
    register_dso_routes,
)
from community_server.dso.in_force import Fallback, cap_in_force
from community_server.dso.openadr_events import EanMap, parse_event
from community_server.dso.signals import SignalError
from community_server.dso.ven import VenClient, VenConfig
from community_server.timestamps import CLOCK_TOLERANCE

from .conftest import NOW, QUARTER, Clock
from .shapes import EAN, FAR, TRANSFORMER, VALID_EVENT, VALID_FRAME, frame, json_values, mutated
from .vtn import CLIENT_ID, CLIENT_SECRET, TestVtn, dump, event, program

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from community_server.dso.audit import DsoStore

TOKEN = "dso-secret-token"
HUGE = int("9" * 400)  # a 400-digit number


def _bad_events() -> dict[str, dict[str, Any]]:
    """One event per way of being wrong, by a name that says how."""
    far = event("ev-9999", NOW, [40.0])
    far["intervalPeriod"]["start"] = FAR
    past_end = event("ev-9999-offset", NOW, [40.0])
    past_end["intervalPeriod"]["start"] = "9999-12-31T23:00:00-05:00"
    huge = event("ev-huge", NOW, [40.0])
    huge["intervals"][0]["payloads"][0]["values"] = [HUGE]
    long_duration = event("ev-duration", NOW, [40.0], duration="P99999999999999999999D")
    missing = event("ev-missing", NOW, [40.0])
    del missing["intervals"]
    wrong_type = event("ev-type", NOW, [40.0])
    wrong_type["intervals"][0]["payloads"] = "lots"
    string_value = event("ev-string", NOW, ["forty"])  # type: ignore[list-item]
    ahead = event("ev-ahead", NOW, [40.0], modified=NOW + CLOCK_TOLERANCE + timedelta(minutes=1))
    return {
        "start in year 9999": far,
        "start past the last UTC date-time": past_end,
        "a 400-digit value": huge,
        "a duration out of range": long_duration,
        "no intervals": missing,
        "payloads not a list": wrong_type,
        "a string value": string_value,
        "modified ahead of our clock": ahead,
    }


class Vtn(NamedTuple):
    served: TestVtn
    base_url: str


@pytest.fixture
async def vtn(socket_enabled: None, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Vtn]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the loopback VTN has no TLS
    test_vtn = TestVtn("3.0.1", Clock())
    test_vtn.programs.append(program(gac=False))
    test_vtn.events += [*_bad_events().values(), event("ev-cap", NOW, [50.0])]
    server = TestServer(test_vtn.application(), host="127.0.0.1")
    await server.start_server()
    yield Vtn(test_vtn, str(server.make_url(test_vtn.prefix)))
    await server.close()


def _ven(vtn: Vtn, store: DsoStore, clock: Clock) -> VenClient:
    base_url = vtn.base_url
    config = VenConfig(
        vtn_base_url=base_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_url=f"{base_url}/auth/token",
        eans=EanMap({EAN: TRANSFORMER}),
        emergency_import_w=150_000.0,
        default_import_w=200_000.0,
        link_lost_after_s=0.0,  # a single failed poll would declare it lost
        allow_insecure_http=True,
    )
    return VenClient(config, store, clock)


async def test_bad_vtn_events_are_skipped_and_audited_while_the_50_kw_cap_applies(
    vtn: Vtn, store: DsoStore, clock: Clock
) -> None:
    ven = _ven(vtn, store, clock)
    for _ in range(2):  # the VTN serves them on every poll: audited once
        status = await ven.poll_once()
        assert status.connected, status.last_error
        assert status.last_error is None
        assert (status.events, status.rejected_events) == (1, len(_bad_events()))
    assert not ven.link_lost()
    cap = cap_in_force(
        TRANSFORMER,
        store.signals_for(TRANSFORMER, NOW),
        NOW,
        link_lost=ven.link_lost(),
        fallback=ven.fallback(TRANSFORMER),
    )
    assert (cap.import_w, cap.source) == (50_000.0, "openadr")
    rejected = {
        e.detail.split(":")[0]: e.detail for e in store.audit(NOW) if e.action == "rejected"
    }
    bad_ids = {document["id"] for document in _bad_events().values()}
    assert set(rejected) == {f"event {event_id}" for event_id in bad_ids}
    assert "ahead of the server's clock" in rejected["event ev-ahead"]
    assert "days ahead" in rejected["event ev-9999"]
    assert "finite" in rejected["event ev-huge"]
    assert not any("internal error" in detail for detail in rejected.values())


async def test_an_events_list_with_a_5000_digit_number_is_still_read(
    vtn: Vtn, store: DsoStore, clock: Clock
) -> None:
    """Python refuses to parse such a number at all: read as is, it would fail the whole
    list and the link. The event holding it is the only one lost."""
    events = [event("ev-cap-2", NOW, [45.0]), event("ev-digits", NOW, [1.0])]
    vtn.served.events_body = dump(events).replace(b"[1.0]", b"[" + b"7" * 5000 + b"]")
    ven = _ven(vtn, store, clock)
    status = await ven.poll_once()
    assert status.connected, status.last_error
    assert (status.events, status.rejected_events) == (1, 1)
    [signal] = store.signals_for(TRANSFORMER, NOW)
    assert signal.intervals[0].import_w == 45_000.0


# --- the HTTP DSO API -------------------------------------------------------------------


@pytest.fixture
async def client(
    store: DsoStore, clock: Clock, socket_enabled: None
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], DsoHttpApi]]:
    api = DsoHttpApi(
        store,
        (DsoAccount("stedin", hash_token(TOKEN)),),
        {TRANSFORMER}.__contains__,
        clock,
        fallback_for=lambda _transformer: Fallback(),
    )
    app = web.Application(client_max_size=4096)
    register_dso_routes(app, api)
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    yield test_client, api
    await test_client.close()


def _raw_frame(request_id: str, import_kw: str, start: str = NOW.isoformat()) -> bytes:
    """JSON text, so a 400-digit number goes over the wire as digits."""
    end = (NOW + QUARTER).isoformat()
    return (
        f'{{"request_id": "{request_id}", "transformer": "{TRANSFORMER}", "intervals": '
        f'[{{"start": "{start}", "end": "{end}", "import_kw": {import_kw}}}]}}'
    ).encode()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_raw_frame("huge", str(HUGE)), "out of range"),
        (_raw_frame("huge-float", "1e400"), "finite"),
        (_raw_frame("above-any", "1e12"), "within"),
        (_raw_frame("year-9999", "50", FAR), "days ahead"),
        (_raw_frame("past-last", "50", "9999-12-31T23:00:00-05:00"), "out of range"),
        (_raw_frame("string", '"50"'), "number of kW"),
        (b"[" * 200_000 + b"]" * 200_000, "too_large"),
        (b"[" * 2000 + b"]" * 2000, "JSON"),
        (json.dumps({"transformer": TRANSFORMER}).encode(), "request_id"),
    ],
)
async def test_bad_frames_are_4xx_with_the_reason_and_audited(
    client: tuple[TestClient[web.Request, web.Application], DsoHttpApi],
    store: DsoStore,
    body: bytes,
    fragment: str,
) -> None:
    test_client, api = client
    async with test_client.post(
        f"{DSO_PREFIX}/frames",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    ) as response:
        text = await response.text()
    assert 400 <= response.status < 500, text
    assert fragment in text
    assert store.signals_for(TRANSFORMER, NOW) == []
    if response.status != 413:  # too large: refused before anything is read
        assert [e.action for e in store.audit(NOW - timedelta(days=1))] == ["rejected"]
        assert sum(api.rejected.values()) == 1


async def test_a_date_header_ahead_of_our_clock_is_refused_and_one_in_time_is_not(
    client: tuple[TestClient[web.Request, web.Application], DsoHttpApi], store: DsoStore
) -> None:
    test_client, api = client
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ahead = NOW + CLOCK_TOLERANCE + timedelta(minutes=1)
    async with test_client.post(
        f"{DSO_PREFIX}/frames",
        json=frame("ahead", import_kw=50.0),
        headers=headers | {"Date": ahead.strftime("%a, %d %b %Y %H:%M:%S GMT")},
    ) as response:
        document = await response.json()
    assert (response.status, document["error"]) == (400, "future_timestamp")
    assert "ahead of the server's clock" in document["message"]
    assert api.rejected["future_timestamp"] == 1
    in_time = NOW + timedelta(minutes=1)
    async with test_client.post(
        f"{DSO_PREFIX}/frames",
        json=frame("in-time", import_kw=50.0),
        headers=headers | {"Date": in_time.strftime("%a, %d %b %Y %H:%M:%S GMT")},
    ) as response:
        assert response.status == 201
    [signal] = store.signals_for(TRANSFORMER, NOW)
    assert signal.intervals[0].import_w == 50_000.0


# --- fuzz: any shape is a result or a SignalError ----------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID_EVENT) | json_values)
def test_any_event_shape_is_parsed_or_rejected_with_a_reason(document: object) -> None:
    with contextlib.suppress(SignalError):  # anything else fails the test
        parse_event(
            document if isinstance(document, dict) else {"intervals": document},
            EanMap({EAN: TRANSFORMER}, default_transformer=TRANSFORMER),
            now=NOW,
            emergency_import_w=150_000.0,
        )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID_FRAME) | json_values)
def test_any_frame_shape_is_parsed_or_rejected_with_a_reason(document: object) -> None:
    with contextlib.suppress(SignalError):  # anything else fails the test
        parse_frame(document, issuer="stedin", now=NOW, signal_id="dso-fuzz")


def _store_an_old_hostile_frame(database: Path) -> None:
    """A frame of 1e300 W, as the API stored it before today's checks (request id "old")."""
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "INSERT INTO dso_signals (signal_id, transformer_id, source, mode, issuer,"
            " request_id, received_at, start_at, end_at, intervals)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "old",
                TRANSFORMER,
                "http",
                "frame",
                "stedin",
                "old",
                to_ms(NOW),
                to_ms(NOW),
                to_ms(NOW + QUARTER),
                json.dumps([[to_ms(NOW), to_ms(NOW + QUARTER), 1e300, None, None, None]]),
            ),
        )
    connection.close()


def test_a_stored_signal_that_no_longer_validates_is_left_out_not_fatal(
    store: DsoStore, tmp_path: Path
) -> None:
    """Reading it must not fail every allocation round."""
    good, _ = parse_frame(frame("good", import_kw=50.0), issuer="stedin", now=NOW, signal_id="a")
    store.save(good)
    _store_an_old_hostile_frame(tmp_path / "server.db")
    assert [s.signal_id for s in store.signals_for(TRANSFORMER, NOW)] == ["a"]


async def test_replaying_or_cancelling_an_old_hostile_frame_is_a_4xx(
    client: tuple[TestClient[web.Request, web.Application], DsoHttpApi],
    store: DsoStore,
    tmp_path: Path,
) -> None:
    test_client, api = client
    _store_an_old_hostile_frame(tmp_path / "server.db")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with test_client.post(
        f"{DSO_PREFIX}/frames", json=frame("old", import_kw=50.0), headers=headers
    ) as response:
        assert response.status == 409
        assert (await response.json())["error"] == "stored_signal_invalid"
    async with test_client.delete(f"{DSO_PREFIX}/frames/old", headers=headers) as response:
        assert response.status == 409
        assert (await response.json())["error"] == "stored_signal_invalid"
    assert api.rejected == {"stored_signal_invalid": 2}
    assert store.signals_for(TRANSFORMER, NOW) == []


async def test_an_event_stamped_ahead_is_audited_once_and_applies_once_the_clock_catches_up(
    vtn: Vtn, store: DsoStore, clock: Clock
) -> None:
    vtn.served.events[:] = [event("ev-early", NOW, [45.0], modified=NOW + timedelta(minutes=10))]
    ven = _ven(vtn, store, clock)
    for minutes in (0, 2, 4):  # the gap shrinks with every poll: still one audit entry
        clock.now = NOW + timedelta(minutes=minutes)
        status = await ven.poll_once()
        assert (status.connected, status.events, status.rejected_events) == (True, 0, 1)
    rejected = [e for e in store.audit(NOW) if e.action == "rejected"]
    assert len(rejected) == 1
    assert "ahead of the server's clock" in rejected[0].detail
    clock.now = NOW + timedelta(minutes=6)  # within the tolerance now
    status = await ven.poll_once()
    assert (status.events, status.rejected_events) == (1, 0)
    [signal] = store.signals_for(TRANSFORMER, clock.now)
    assert signal.intervals[0].import_w == 45_000.0
