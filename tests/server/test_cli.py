"""`netbewust-server`: administration in-process, `serve` as a real process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import signal
import stat
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from community_server.cli import main
from community_server.config import HttpConfig, MqttConfig, ServerConfig
from community_server.deployment import warn_without_tls
from community_server.mosquitto import DYNSEC_FILE, TlsFiles, broker_config
from community_server.store import Store
from netbewust_core.protocol.messages import Message, Telemetry
from tests.clock import clock_now

from .conftest import NOW, SERVER_ACCOUNT, Broker, free_port
from .household_client import HouseholdClient, wait_until

if TYPE_CHECKING:
    from community_server.store import HouseholdCredentials

REPO = Path(__file__).parents[2]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(
        f'[database]\npath = "{tmp_path / "cli.db"}"\n'
        f'[mosquitto]\nauth_dir = "{tmp_path / "auth"}"\n'
        '[mqtt]\npassword = "pw"\n'
    )
    return path


def _run(config: Path, *argv: str) -> int:
    return main(["--config", str(config), *argv], environ={})


@pytest.mark.usefixtures("freezer")  # the CLI issues the join code on the tests' clock
def test_administration_round_trip(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(config_file, "community", "create", "wijk-1", "--name", "Wijk Eén") == 0
    assert _run(config_file, "transformer", "create", "trafo-a", "--community", "wijk-1",
                "--name", "Trafo A", "--capacity-w", "400000") == 0  # fmt: skip
    capsys.readouterr()
    assert _run(config_file, "joincode", "issue", "--community", "wijk-1") == 0
    code = capsys.readouterr().out.strip()
    assert len(code) == 14
    assert _run(config_file, "joincode", "revoke", code) == 0
    assert _run(config_file, "joincode", "revoke", code) == 1
    assert "no such unused join code" in capsys.readouterr().err

    assert _run(config_file, "joincode", "issue", "--community", "wijk-1",
                "--transformer", "trafo-a", "--valid-hours", "1") == 0  # fmt: skip
    code = capsys.readouterr().out.strip()
    store = Store.open(config_file.parent / "cli.db")
    joined = store.redeem_join_code(code, clock_now(), "huis-1")
    store.close()

    assert _run(config_file, "household", "list", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["household"] == "huis-1"
    assert row["transformer"] == "trafo-a"
    assert row["online"] is False
    assert _run(config_file, "mosquitto", "sync") == 0
    accounts = config_file.parent / "auth" / DYNSEC_FILE
    assert '"huis-1"' in accounts.read_text()
    assert joined.password not in accounts.read_text()
    assert stat.S_IMODE(accounts.stat().st_mode) == 0o600
    assert stat.S_IMODE((config_file.parent / "cli.db").stat().st_mode) == 0o600

    assert _run(config_file, "household", "remove", "huis-1") == 0
    assert '"huis-1"' not in accounts.read_text()  # the accounts follow the database
    assert _run(config_file, "household", "remove", "huis-1") == 1
    capsys.readouterr()
    assert _run(config_file, "household", "list") == 0
    assert "huis-1" not in capsys.readouterr().out


def test_mosquitto_config_is_the_tested_one(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["mosquitto", "config", "--port", "8883", "--bind", "0.0.0.0", "--data-dir", "/d"]
    args += ["--dynsec-file", "/m/dynsec.json", "--plugin", "/p.so"]
    tls = ["--tls-ca", "/t/ca.pem", "--tls-cert", "/t/cert.pem", "--tls-key", "/t/key.pem"]
    assert _run(config_file, *args, *tls) == 0
    text = capsys.readouterr().out
    expected = broker_config(
        dynsec_file=Path("/m/dynsec.json"),
        data_dir=Path("/d"),
        port=8883,
        bind_address="0.0.0.0",
        tls=TlsFiles(Path("/t/ca.pem"), Path("/t/cert.pem"), Path("/t/key.pem")),
        plugin="/p.so",
    )
    assert text == expected
    assert _run(config_file, *args, "--tls-ca", "/t/ca.pem") == 2
    assert _run(config_file, "mosquitto", "config") == 0  # Debian: its own persistence location
    assert "persistence_location" not in capsys.readouterr().out
    assert not (tmp_path / "cli.db").exists()  # printing a configuration opens no database


def test_dynsec_init_writes_the_server_and_the_households_without_mosquitto(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mosquitto" / "netbewust" / DYNSEC_FILE
    assert _run(config_file, "mosquitto", "dynsec-init", str(target)) == 0
    assert not (tmp_path / "cli.db").exists()  # a fresh installation: none is created
    clients = json.loads(target.read_text())["clients"]
    assert [client["username"] for client in clients] == ["netbewust_server"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700

    store = Store.open(tmp_path / "cli.db")
    store.create_community("wijk-1", "Wijk", NOW)
    code = store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
    store.redeem_join_code(code, NOW, "huis-1")
    store.close()
    owner = pwd.getpwuid(os.geteuid()).pw_name
    assert _run(config_file, "mosquitto", "dynsec-init", str(target), "--owner", owner) == 0
    clients = json.loads(target.read_text())["clients"]
    assert [(c["username"], c.get("clientid")) for c in clients] == [
        ("netbewust_server", None),
        ("huis-1", "huis-1"),
    ]
    assert _run(config_file, "mosquitto", "dynsec-init", str(target), "--owner", "no-such") == 2
    without_password = tmp_path / "nopw.toml"
    without_password.write_text(f'[database]\npath = "{tmp_path / "cli.db"}"\n')
    assert main(["--config", str(without_password), "mosquitto", "dynsec-init"], environ={}) == 2
    assert "mqtt.password" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("settings", "plain"),
    [
        ({}, None),
        ({"http": {"host": "localhost"}, "mqtt": {"host": "::1"}}, None),
        ({"http": {"host": "0.0.0.0"}}, "HTTP on 0.0.0.0:8480"),
        (
            {"http": {"host": "0.0.0.0", "tls_cert_file": "/c", "tls_key_file": "/k"}},
            None,
        ),
        ({"mqtt": {"host": "broker.lan"}}, "MQTT to broker.lan:1883"),
        ({"mqtt": {"host": "broker.lan", "tls": True}}, "MQTT for households at broker.lan"),
        ({"http": {"enabled": False}, "mqtt": {"host": "10.0.0.2", "tls": True}}, None),
    ],
)
def test_serving_without_tls_beyond_loopback_is_one_warning(
    settings: dict[str, dict[str, object]], plain: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    config = ServerConfig(
        http=replace(HttpConfig(), **settings.get("http", {})),  # type: ignore[arg-type]
        mqtt=replace(MqttConfig(), **settings.get("mqtt", {})),  # type: ignore[arg-type]
    )
    with caplog.at_level(logging.WARNING):
        warn_without_tls(config)
    if plain is None:
        assert not caplog.records
    else:
        [record] = caplog.records
        assert plain in record.getMessage()


async def test_household_remove_cuts_it_off_the_running_broker(
    members: dict[str, HouseholdCredentials], broker: Broker, tmp_path: Path, server_store: Store
) -> None:
    config = tmp_path / "dynsec.toml"
    config.write_text(
        f'[database]\npath = "{tmp_path / "server.db"}"\n'
        "[mosquitto]\ndynamic_security = true\n"
        f'[mqtt]\nport = {broker.port}\npassword = "{SERVER_ACCOUNT.password}"\n'
    )
    online = HouseholdClient("wijk-1", "huis-1", broker.port, members["huis-1"].password)
    assert not (await online.connect()).is_failure
    assert await asyncio.to_thread(_run, config, "household", "remove", "huis-1") == 0
    await wait_until(lambda: not online.client.is_connected())
    await online.disconnect()
    again = HouseholdClient("wijk-1", "huis-1", broker.port, members["huis-1"].password)
    assert (await again.connect()).is_failure
    await again.disconnect()

    server_store.remove_household("huis-2")  # behind the broker's back, e.g. a restored backup
    assert await asyncio.to_thread(_run, config, "mosquitto", "sync") == 0
    gone = HouseholdClient("wijk-1", "huis-2", broker.port, members["huis-2"].password)
    assert (await gone.connect()).is_failure
    await gone.disconnect()

    code = server_store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
    server_store.redeem_join_code(code, NOW, "huis-3")  # behind the broker's back: no account
    assert await asyncio.to_thread(_run, config, "mosquitto", "sync") == 1  # reported missing
    broker.stop()  # the broker down: the household is removed, its account not yet
    assert await asyncio.to_thread(_run, config, "household", "remove", "huis-3") == 1
    assert server_store.households() == []


def test_errors_exit_non_zero_with_a_reason(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(config_file, "joincode", "issue", "--community", "nowhere") == 1
    assert "no community nowhere" in capsys.readouterr().err
    assert _run(config_file, "community", "create", "Bad/Id", "--name", "x") == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nport = 'x'\n")
    assert main(["--config", str(bad), "household", "list"], environ={}) == 2
    assert "mqtt.port" in capsys.readouterr().err
    without_password = tmp_path / "nopw.toml"
    without_password.write_text(f'[database]\npath = "{tmp_path / "x.db"}"\n')
    assert main(["--config", str(without_password), "serve"], environ={}) == 2
    assert "mqtt.password" in capsys.readouterr().err
    assert _run(config_file, "community", "create", "wijk-1", "--name", "Wijk") == 0
    assert _run(config_file, "joincode", "issue", "--community", "wijk-1",
                "--valid-hours", "0") == 1  # fmt: skip
    assert "valid for some time" in capsys.readouterr().err
    nowhere = tmp_path / "nowhere.toml"
    nowhere.write_text(f'[database]\npath = "{tmp_path / "missing" / "x.db"}"\n')
    assert main(["--config", str(nowhere), "household", "list"], environ={}) == 1
    assert "cannot open" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["household", "frobnicate"], environ={})


def _serve(broker: Broker, database: Path) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "NETBEWUST_DATABASE_PATH": str(database),
        "NETBEWUST_MQTT_PORT": str(broker.port),
        "NETBEWUST_MQTT_USERNAME": SERVER_ACCOUNT.username,
        "NETBEWUST_MQTT_PASSWORD": SERVER_ACCOUNT.password,
        "NETBEWUST_MQTT_CLIENT_ID": "netbewust-server-e2e",
        "NETBEWUST_HTTP_PORT": str(free_port()),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "community_server", "serve"],
        cwd=REPO,
        env=environ,
        stderr=(database.parent / "serve.log").open("ab"),
    )


def _telemetry(index: int) -> Message:
    moment = NOW + timedelta(seconds=10 * index)
    return Message(
        community="wijk-1",
        household="huis-1",
        sent_at=moment,
        message_id=f"t{index}",
        body=Telemetry(
            measured_at=moment, interval_s=10, power_w=(float(index),), participating=True
        ),
    )


@pytest.fixture
def member(server_store: Store) -> HouseholdCredentials:
    code = server_store.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
    return server_store.redeem_join_code(code, NOW, "huis-1")


async def test_serve_survives_kill_9_without_losing_a_report(
    member: HouseholdCredentials, broker: Broker, server_store: Store, tmp_path: Path
) -> None:
    database = tmp_path / "server.db"
    server = _serve(broker, database)
    log = tmp_path / "serve.log"
    # Until the server has subscribed once, the broker has no session to queue for. A fresh
    # interpreter importing the server takes 20 s on a loaded two-core machine.
    await wait_until(lambda: log.exists() and "serving" in log.read_text(), timeout_s=60)
    household = HouseholdClient("wijk-1", "huis-1", broker.port, member.password)
    await household.connect()
    total = 300

    def stored() -> int:
        return len(server_store.telemetry("huis-1"))

    async def report() -> None:
        for index in range(total):
            assert not (await household.publish(_telemetry(index))).is_failure

    try:
        reporting = asyncio.create_task(report())
        await wait_until(lambda: stored() >= 50)
        server.send_signal(signal.SIGKILL)  # mid-stream: no goodbye, no flush
        await asyncio.to_thread(server.wait)
        await reporting  # the household keeps reporting; the broker queues for the server
        server = _serve(broker, database)
        await wait_until(lambda: stored() == total, timeout_s=60)  # incl. its start
        server.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait, 10) == 0  # graceful stop
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        await household.disconnect()
    ids = {row.message_id for row in server_store.telemetry("huis-1")}
    assert ids == {f"t{index}" for index in range(total)}
