"""Starts the pinned Home Assistant (`hass --skip-pip`) on loopback and talks to it as a user.

The configuration is a copy of demo/ha_config with this checkout's integration linked in,
as scripts/run-ha sets it up. Home Assistant 2026.10 takes its HTTP settings from
`.storage/http`; an `http:` section in the YAML would be migrated into a trial there that
reverts after five minutes, so the port is written to the store's confirmed (`stable`) slot
before the start instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import sys
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from homeassistant.components.http.config import (
    HTTP_STORAGE_SCHEMA,
    STORAGE_KEY,
    STORAGE_MINOR_VERSION,
    STORAGE_VERSION,
)
from homeassistant.helpers.json import json_dumps

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ROOT = Path(__file__).resolve().parents[2]
HASS = Path(sys.executable).with_name("hass")
DEMO_CONFIG = ROOT / "demo" / "ha_config"
# Home Assistant starts in about 20 s on a quiet machine; much slower under load.
START_TIMEOUT_S = 150
STOP_TIMEOUT_S = 30
# What scripts/run-ha and Home Assistant leave in demo/ha_config (git-ignored there).
RUNTIME_FILES = shutil.ignore_patterns(
    ".storage",
    "custom_components",
    "blueprints",
    "deps",
    "tts",
    ".cloud",
    ".HA_VERSION",
    ".ha_run.lock",
    "home-assistant*",
    "automations.yaml",
    "scripts.yaml",
    "scenes.yaml",
    "secrets.yaml",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def prepare_config(config: Path, port: int) -> None:
    """demo/ha_config with the integration linked in, serving on 127.0.0.1:`port` only."""
    shutil.copytree(DEMO_CONFIG, config, ignore=RUNTIME_FILES)
    (config / "custom_components").mkdir(exist_ok=True)
    (config / "custom_components" / "netbewust").symlink_to(
        ROOT / "custom_components" / "netbewust"
    )
    (config / "automations.yaml").write_text("[]\n")
    stable = dict(HTTP_STORAGE_SCHEMA({"server_host": ["127.0.0.1"], "server_port": port}))
    stable |= {"created_at": "2026-01-01T00:00:00+00:00", "error": None, "error_message": None}
    store = {
        "version": STORAGE_VERSION,
        "minor_version": STORAGE_MINOR_VERSION,
        "key": STORAGE_KEY,
        "data": {"stable": stable, "pending": None, "yaml_migration_done": True},
    }
    (config / ".storage").mkdir()
    (config / ".storage" / STORAGE_KEY).write_text(json_dumps(store))


@dataclass
class HomeAssistantProcess:
    """A running `hass` and an HTTP session to it; `token` once onboarded."""

    base: str
    config: Path
    session: aiohttp.ClientSession
    token: str = ""
    refresh_token: str = ""
    _socket: aiohttp.ClientWebSocketResponse | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def client_id(self) -> str:
        """The frontend's client id: the address it is served from."""
        return f"{self.base}/"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, payload: object = None) -> Any:
        async with self.session.post(
            f"{self.base}{path}", json=payload, headers=self._headers()
        ) as response:
            assert response.status == HTTPStatus.OK, (path, await response.text())
            return await response.json()

    async def get(self, path: str) -> Any:
        async with self.session.get(f"{self.base}{path}", headers=self._headers()) as response:
            assert response.status == HTTPStatus.OK, (path, await response.text())
            return await response.json()

    async def state(self, entity_id: str) -> dict[str, Any]:
        state: dict[str, Any] = await self.get(f"/api/states/{entity_id}")
        return state

    async def onboard(self, language: str) -> None:
        """The onboarding a person clicks through, over its REST API; keeps the tokens."""
        user = {
            "client_id": self.client_id,
            "name": "Tester",
            "username": "tester",
            "password": "a long test password",
            "language": language,
        }
        async with self.session.post(f"{self.base}/api/onboarding/users", json=user) as response:
            assert response.status == HTTPStatus.OK, await response.text()
            code = (await response.json())["auth_code"]
        grant = {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        async with self.session.post(f"{self.base}/auth/token", data=grant) as response:
            assert response.status == HTTPStatus.OK, await response.text()
            tokens = await response.json()
        self.token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
        await self.post("/api/onboarding/core_config", {})
        await self.post("/api/onboarding/analytics", {})
        redirect = f"{self.base}/?auth_callback=1"
        await self.post(
            "/api/onboarding/integration", {"client_id": self.client_id, "redirect_uri": redirect}
        )

    async def wait_running(self) -> None:
        """Until Home Assistant has started every integration (its frontend answers earlier)."""
        for _attempt in range(START_TIMEOUT_S * 4):
            if (await self.get("/api/config"))["state"] == "RUNNING":
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"Home Assistant was not running within {START_TIMEOUT_S} s")

    async def command(self, message_type: str, **payload: object) -> Any:
        """One websocket command; its result."""
        if self._socket is None:
            self._socket = await self.session.ws_connect(f"{self.base}/api/websocket")
            assert (await self._socket.receive_json())["type"] == "auth_required"
            await self._socket.send_json({"type": "auth", "access_token": self.token})
            assert (await self._socket.receive_json())["type"] == "auth_ok"
        call_id = next(self._ids)
        await self._socket.send_json({"id": call_id, "type": message_type, **payload})
        while True:
            answer = await self._socket.receive_json(timeout=30)
            if answer.get("id") == call_id and answer["type"] == "result":
                assert answer["success"], answer
                return answer["result"]

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()


async def _wait_until_up(process: asyncio.subprocess.Process, base: str, log: Path) -> None:
    async with aiohttp.ClientSession() as probe:
        for _attempt in range(START_TIMEOUT_S * 4):
            if process.returncode is not None:
                raise AssertionError(f"hass exited with {process.returncode}; see {log}")
            with contextlib.suppress(aiohttp.ClientError):
                async with probe.get(f"{base}/api/onboarding") as response:
                    if response.status == HTTPStatus.OK:
                        return
            await asyncio.sleep(0.25)
    raise AssertionError(f"Home Assistant did not answer within {START_TIMEOUT_S} s; see {log}")


@contextlib.asynccontextmanager
async def running_home_assistant(config: Path, log: Path) -> AsyncIterator[HomeAssistantProcess]:
    """Starts `hass` on `config` (made by `prepare_config`) and stops it at the end."""
    port = free_port()
    prepare_config(config, port)
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            str(HASS), "--config", str(config), "--skip-pip", stdout=output, stderr=output
        )
    try:
        await _wait_until_up(process, base, log)
        async with aiohttp.ClientSession() as session:
            home_assistant = HomeAssistantProcess(base, config, session)
            try:
                yield home_assistant
            finally:
                await home_assistant.close()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
