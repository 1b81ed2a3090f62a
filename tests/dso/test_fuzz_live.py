"""Fuzz through the running servers: any event a VTN serves, any body a DSO posts.

The HTTP DSO API and the test VTN run on loopback aiohttp servers in a thread of their
own, so each hypothesis example is a real request: a posted frame is answered below 500
with a reason, and a poll of a VTN serving a hostile event next to a valid one stays
connected with the valid cap in force. The shapes are `shapes.py`'s.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import TYPE_CHECKING, Any

import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, given, settings

from community_server.dso.audit import DsoStore
from community_server.dso.http_routes import DSO_PREFIX, DsoAccount, DsoHttpApi, hash_token
from community_server.dso.in_force import Fallback, cap_in_force
from community_server.dso.openadr_events import EanMap
from community_server.dso.ven import VenClient, VenConfig

from .conftest import NOW, Clock
from .shapes import EAN, TRANSFORMER, VALID_EVENT, VALID_FRAME, json_values, mutated
from .vtn import CLIENT_ID, CLIENT_SECRET, TestVtn, event, program

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "dso-fuzz-token"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Served:
    """An aiohttp application on a free loopback port, run by a loop in its own thread."""

    def __init__(self, app: web.Application) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self._call(self._start())

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _start(self) -> int:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port: int = self._runner.addresses[0][1]  # port 0: the one the system gave
        return port

    def close(self) -> None:
        self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def dso_api(tmp_path: Path, socket_enabled: None) -> Iterator[tuple[str, DsoStore]]:
    store = DsoStore.open(tmp_path / "fuzz.db")
    api = DsoHttpApi(
        store,
        (DsoAccount("stedin", hash_token(TOKEN)),),
        {TRANSFORMER}.__contains__,
        Clock(),
        fallback_for=lambda _transformer: Fallback(),
    )
    app = web.Application()
    api.register(app)
    served = Served(app)
    yield f"http://127.0.0.1:{served.port}{DSO_PREFIX}", store
    served.close()
    store.close()


@FUZZ
@given(document=mutated(VALID_FRAME) | json_values)
def test_any_posted_frame_is_answered_below_500_with_a_reason(
    dso_api: tuple[str, DsoStore], document: object
) -> None:
    base_url, _store = dso_api
    body = json.dumps(document, allow_nan=True)
    response = requests.post(
        f"{base_url}/frames",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        answer = response.json()
        assert answer["error"]
        assert answer["message"]


@pytest.fixture
def vtn(
    tmp_path: Path, socket_enabled: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestVtn, VenClient, DsoStore]]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the loopback VTN has no TLS
    clock = Clock()
    test_vtn = TestVtn("3.0.1", clock)
    test_vtn.programs.append(program(gac=False))
    served = Served(test_vtn.application())
    base_url = f"http://127.0.0.1:{served.port}{test_vtn.prefix}"
    store = DsoStore.open(tmp_path / "fuzz.db")
    config = VenConfig(
        vtn_base_url=base_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_url=f"{base_url}/auth/token",
        eans=EanMap({EAN: TRANSFORMER}, default_transformer=TRANSFORMER),
        emergency_import_w=150_000.0,
        link_lost_after_s=0.0,  # any failed poll would declare the link lost
        allow_insecure_http=True,
    )
    yield test_vtn, VenClient(config, store, clock), store
    served.close()
    store.close()


@FUZZ
@given(hostile=mutated(VALID_EVENT) | json_values)
def test_a_poll_survives_any_event_next_to_a_valid_cap(
    vtn: tuple[TestVtn, VenClient, DsoStore], hostile: object
) -> None:
    test_vtn, ven, store = vtn
    test_vtn.events[:] = [hostile, event("ev-cap", NOW, [50.0])]  # type: ignore[list-item]
    status = asyncio.run(ven.poll_once())
    assert status.connected, status.last_error
    assert not ven.link_lost()
    cap = cap_in_force(
        TRANSFORMER,
        store.signals_for(TRANSFORMER, NOW),
        NOW,
        link_lost=False,
        fallback=Fallback(),
    )
    # The valid 50 kW cap applies, unless the hostile event is itself a valid lower one.
    assert cap.import_w is not None
    assert cap.import_w <= 50_000.0
