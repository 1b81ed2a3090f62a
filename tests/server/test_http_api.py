"""HTTP API v1 over a real socket, with a real mosquitto behind the join."""

from __future__ import annotations

import json
import re
import ssl
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp
import jsonschema
import pytest
import yaml  # type: ignore[import-untyped]
from aiohttp import web

from community_server.config import HttpConfig, MosquittoConfig, ServerConfig
from community_server.dashboard import Dashboard
from community_server.dso.http_routes import DsoHttpApi, register_dso_routes
from community_server.dso.notifications import NOTIFICATION_PATH
from community_server.http_api import API_PREFIX, OPENAPI_FILE, HttpApi, start_site
from community_server.server import CommunityServer
from netbewust_core.limits import ExternalLimit, LimitInterval, LimitSource
from netbewust_core.protocol.messages import Message, Telemetry, encode

from .conftest import NOW, Broker, free_port
from .household_client import HouseholdClient, wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from community_server.mosquitto import TlsFiles
    from community_server.store import HouseholdCredentials, Store


class Api:
    def __init__(self, base: str, server: CommunityServer, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.server = server
        self.session = session

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: object,
    ) -> tuple[int, dict[str, object], aiohttp.ClientResponse]:
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
        async with self.session.request(
            method,
            f"{self.base}{API_PREFIX}{path}",
            headers=headers,
            **kwargs,  # type: ignore[arg-type]
        ) as response:
            text = await response.text()
            body = json.loads(text) if response.content_type == "application/json" else {}
            return response.status, body, response


def _config(broker: Broker, tmp_path: Path, **http: object) -> ServerConfig:
    return ServerConfig(
        mqtt=broker.mqtt_config(),
        mosquitto=MosquittoConfig(dynamic_security=True),
        http=HttpConfig(port=free_port(), public_mqtt_host="mqtt.example.nl", **http),  # type: ignore[arg-type]
    )


@pytest.fixture
async def api(broker: Broker, server_store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    config = _config(broker, tmp_path)
    server = CommunityServer(config, server_store, clock=lambda: NOW)
    await server.start()
    runner = await start_site(HttpApi(server, server_store, config), config)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(f"http://127.0.0.1:{config.http.port}", server, session)
    finally:
        await runner.cleanup()
        await server.stop()


@pytest.fixture
def member(server_store: Store) -> HouseholdCredentials:
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
    return server_store.redeem_join_code(code, NOW, "huis-1")


async def test_join_gives_credentials_the_broker_accepts(
    api: Api, broker: Broker, server_store: Store
) -> None:
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    status, answer, _ = await api.request("POST", "/join", json={"join_code": code})
    assert status == 201
    household = str(answer["household"])
    mqtt = answer["mqtt"]
    assert isinstance(mqtt, dict)
    assert mqtt["host"] == "mqtt.example.nl"
    assert mqtt["username"] == household
    assert answer["topic_prefix"] == f"netbewust/v1/wijk-1/{household}"
    assert mqtt["client_id"] == household

    # The account exists before the answer: no reload to wait for, no retry.
    client = HouseholdClient("wijk-1", household, broker.port, str(mqtt["password"]))
    assert not (await client.connect()).is_failure
    try:
        telemetry = Telemetry(measured_at=NOW, interval_s=10, power_w=(900.0,), participating=True)
        await client.publish(
            Message(community="wijk-1", household=household, sent_at=NOW, body=telemetry)
        )
        await wait_until(lambda: api.server.metrics.stored["telemetry"] == 1)
    finally:
        await client.disconnect()

    status, again, _ = await api.request("POST", "/join", json={"join_code": code})
    assert (status, again["error"]) == (403, "invalid_join_code")
    assert "used" not in str(again["message"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"join_code": 12}', 400),
        (b'{"join_code": ""}', 400),
        (b'{"join_code": "ABCD-EFGH-JKLM", "household": "x"}', 400),
        (json.dumps({"join_code": "A" * 65}).encode(), 400),
        (json.dumps({"join_code": "A" * 10_000}).encode(), 413),
        (b'{"join_code": "ABCD-EFGH-JKLM"}', 403),
    ],
)
async def test_bad_join_requests_are_refused(api: Api, body: bytes, status: int) -> None:
    answer_status, _, _ = await api.request(
        "POST", "/join", data=body, headers={"Content-Type": "application/json"}
    )
    assert answer_status == status


async def test_a_household_sees_only_itself(
    api: Api, member: HouseholdCredentials, server_store: Store
) -> None:
    own = ("huis-1", member.password)
    status, body, _ = await api.request("GET", "/households/huis-1", auth=own)
    assert status == 200
    assert body["household"] == "huis-1"
    assert body["online"] is False
    assert body["connection"] is None

    status, body, response = await api.request("GET", "/households/huis-1")
    assert status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    status, _, _ = await api.request("GET", "/households/huis-1", auth=("huis-1", "guess"))
    assert status == 401
    status, _, _ = await api.request(
        "GET", "/households/huis-1", headers={"Authorization": "Basic !!!notbase64"}
    )
    assert status == 401

    code = server_store.issue_join_code("wijk-1", NOW, timedelta(hours=1)).code
    other = server_store.redeem_join_code(code, NOW, "huis-2")
    status, body, _ = await api.request(
        "GET", "/households/huis-1", auth=("huis-2", other.password)
    )
    assert (status, body["error"]) == (403, "forbidden")
    server_store.remove_household("huis-1")
    status, _, _ = await api.request("GET", "/households/huis-1", auth=own)
    assert status == 401


async def test_limits_are_served_as_published(api: Api, member: HouseholdCredentials) -> None:
    own = ("huis-1", member.password)
    status, body, _ = await api.request("GET", "/households/huis-1/limits", auth=own)
    assert (status, body) == (200, {"limit": None, "emergency": None})
    limit = ExternalLimit(
        source=LimitSource.COMMUNITY,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=15),
        intervals=(LimitInterval(start=NOW, end=NOW + timedelta(hours=1), max_import_w=4000.0),),
    )
    sent = await api.server.send_limit("huis-1", limit)
    status, body, _ = await api.request("GET", "/households/huis-1/limits", auth=own)
    assert status == 200
    assert body["limit"] == json.loads(encode(sent))


async def test_health_and_openapi_describe_every_route(api: Api, server_store: Store) -> None:
    status, body, _ = await api.request("GET", "/health")
    assert (status, body["broker_connected"], body["protocol_version"]) == (200, True, 1)
    # The public info document names the server by the identity kept in its database.
    assert body["server_id"] == server_store.server_id
    assert re.fullmatch(r"[0-9a-f]{32}", str(body["server_id"]))
    async with api.session.get(f"{api.base}{API_PREFIX}/openapi.yaml") as response:
        assert response.status == 200
        document = yaml.safe_load(await response.text())
    health_schema = document["paths"]["/health"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    jsonschema.Draft202012Validator(health_schema).validate(body)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(health_schema).validate({**body, "server_id": "x"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(health_schema).validate(
            {key: value for key, value in body.items() if key != "server_id"}
        )
    described = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    app = HttpApi(api.server, None, ServerConfig()).application()  # type: ignore[arg-type]
    Dashboard(api.server, None).register(app)  # type: ignore[arg-type]
    dso_api = DsoHttpApi(None, (), lambda _t: False, api.server.now)  # type: ignore[arg-type]
    register_dso_routes(app, dso_api)
    app.router.add_post(NOTIFICATION_PATH, _no_content)
    served = {
        (route.resource.canonical.removeprefix(API_PREFIX), route.method)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical.startswith(API_PREFIX)
    }
    assert described == served
    assert yaml.safe_load(OPENAPI_FILE.read_text())["openapi"].startswith("3.1")


async def test_the_api_speaks_tls(
    broker: Broker, server_store: Store, tmp_path: Path, tls_files: TlsFiles
) -> None:
    config = _config(
        broker,
        tmp_path,
        tls_cert_file=str(tls_files.cert_file),
        tls_key_file=str(tls_files.key_file),
    )
    server = CommunityServer(config, server_store)
    runner = await start_site(HttpApi(server, server_store, config), config)
    trust = ssl.create_default_context(cafile=str(tls_files.ca_file))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"https://127.0.0.1:{config.http.port}{API_PREFIX}/health", ssl=trust
            ) as response,
        ):
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
    finally:
        await runner.cleanup()
        await server.stop()


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response()
