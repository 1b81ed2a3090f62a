"""A real mosquitto on a free loopback port, configured by the server's own generators
(its dynamic-security plugin for accounts), and the embedded broker with the same document."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from community_server.config import MosquittoConfig, MqttConfig
from community_server.embedded_broker import EmbeddedBroker
from community_server.mosquitto import (
    DYNSEC_FILE,
    ServerAccount,
    TlsFiles,
    broker_config,
    find_plugin,
    write_dynsec_file,
)
from community_server.store import HouseholdCredentials, Store

from .certificates import make_tls_files

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SERVER_ACCOUNT = ServerAccount("netbewust_server", "server-test-password")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mosquitto exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"mosquitto did not listen on {port}: {log.read_text()}")


@dataclass
class Broker:
    port: int
    auth_dir: Path
    log: Path
    config_path: Path
    process: subprocess.Popen[bytes]
    protocol: str = "5"

    def mqtt_config(self, **changes: object) -> MqttConfig:
        settings: dict[str, object] = {
            "port": self.port,
            "username": SERVER_ACCOUNT.username,
            "password": SERVER_ACCOUNT.password,
            "client_id": "netbewust-server-test",
            **changes,
        }
        return MqttConfig(**settings)  # type: ignore[arg-type]

    def accounts_config(self) -> MosquittoConfig:
        """The server manages accounts over the plugin's control topic."""
        return MosquittoConfig(dynamic_security=True)

    def reload(self, store: Store) -> None:
        """Accounts straight from the database: the plugin takes no hashes over its control
        topic, so the file is rewritten while mosquitto is stopped (as `dynsec-init` does).
        Sessions and queued messages survive: mosquitto saves them when it stops."""
        self.stop()
        write_dynsec_file(self.auth_dir / DYNSEC_FILE, store.broker_accounts(), SERVER_ACCOUNT)
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)], stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.process, self.log)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """A crash: no chance to save anything."""
        self.process.kill()
        self.process.wait()


@pytest.fixture
def server_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "server.db")
    store.create_community("wijk-1", "Wijk Eén", NOW)
    yield store
    store.close()


@pytest.fixture
def members(server_store: Store) -> dict[str, HouseholdCredentials]:
    joined = {}
    for household in ("huis-1", "huis-2"):
        code = server_store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
        joined[household] = server_store.redeem_join_code(code, NOW, household)
    return joined


def _start_broker(tmp_path: Path, store: Store, tls: TlsFiles | None) -> Iterator[Broker]:
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    auth_dir = tmp_path / "mosquitto-auth"
    data_dir = tmp_path / "mosquitto-data"
    data_dir.mkdir()
    auth_dir.mkdir(mode=0o700)
    dynsec_file = write_dynsec_file(auth_dir / DYNSEC_FILE, store.broker_accounts(), SERVER_ACCOUNT)
    log = tmp_path / "mosquitto.log"
    config = broker_config(
        dynsec_file=dynsec_file, data_dir=data_dir, port=port, tls=tls, plugin=find_plugin()
    )
    config += f"log_dest file {log}\nlog_type all\n"
    if os.geteuid() == 0:
        config += "user root\n"  # otherwise mosquitto drops to a user who cannot read tmp
    config_path = tmp_path / "mosquitto.conf"
    config_path.write_text(config)
    process = subprocess.Popen([MOSQUITTO, "-c", str(config_path)], stderr=subprocess.DEVNULL)
    broker = Broker(port, auth_dir, log, config_path, process)
    try:
        wait_for_port(port, process, log)
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker(tmp_path: Path, server_store: Store, socket_enabled: None) -> Iterator[Broker]:
    yield from _start_broker(tmp_path, server_store, tls=None)


@dataclass
class EmbeddedUnderTest:
    """The embedded broker, with the same surface the tests use of mosquitto's `Broker`."""

    port: int
    auth_dir: Path
    protocol: str = "3.1.1"

    def mqtt_config(self, **changes: object) -> MqttConfig:
        settings: dict[str, object] = {
            "port": self.port,
            "username": SERVER_ACCOUNT.username,
            "password": SERVER_ACCOUNT.password,
            "client_id": "netbewust-server-test",
            "protocol": self.protocol,
            **changes,
        }
        return MqttConfig(**settings)  # type: ignore[arg-type]

    def accounts_config(self) -> MosquittoConfig:
        """The server rewrites the accounts file the embedded broker watches."""
        return MosquittoConfig(auth_dir=str(self.auth_dir))

    def reload(self, store: Store) -> None:
        """The embedded broker rereads its accounts file when it changes."""
        write_dynsec_file(self.auth_dir / DYNSEC_FILE, store.broker_accounts(), SERVER_ACCOUNT)


@pytest.fixture
def expected_lingering_timers(request: pytest.FixtureRequest) -> bool:
    """amqtt may leave a client's write-timeout timer scheduled when the embedded broker shuts
    down while that client disconnects. Home Assistant's cleanup check (made for its own tests)
    then warns and cancels the timer instead of failing a test that is not about it."""
    callspec = getattr(request.node, "callspec", None)
    parametrised_embedded = callspec is not None and "embedded" in callspec.params.values()
    return "embedded_broker" in request.fixturenames or parametrised_embedded


@pytest.fixture
async def embedded_broker(
    tmp_path: Path, server_store: Store, socket_enabled: None
) -> AsyncIterator[EmbeddedUnderTest]:
    auth_dir = tmp_path / "embedded-auth"
    auth_dir.mkdir(mode=0o700)
    write_dynsec_file(auth_dir / DYNSEC_FILE, server_store.broker_accounts(), SERVER_ACCOUNT)
    running = EmbeddedBroker(auth_dir, port=free_port())
    await running.start()
    yield EmbeddedUnderTest(running.port, auth_dir)
    await running.stop()


@pytest.fixture(params=["mosquitto", "embedded"])
def any_broker(request: pytest.FixtureRequest) -> Broker | EmbeddedUnderTest:
    """Each test using this runs once against real mosquitto and once against amqtt."""
    fixture: Broker | EmbeddedUnderTest = request.getfixturevalue(
        "broker" if request.param == "mosquitto" else "embedded_broker"
    )
    return fixture


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


@pytest.fixture
def tls_broker(
    tmp_path: Path, server_store: Store, tls_files: TlsFiles, socket_enabled: None
) -> Iterator[Broker]:
    yield from _start_broker(tmp_path, server_store, tls=tls_files)
