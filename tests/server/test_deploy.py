"""The deployment files in deploy/ and docs/deployment.md agree with the program."""

from __future__ import annotations

import re
import shlex
from datetime import timedelta
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from community_server.cli import _parser, main
from community_server.config import load_config
from community_server.store import Store

from .conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "deployment.md"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "netbewust.conf"
COMMAND = re.compile(r"(?:^|[\s/`])netbewust-server ([^`|#>\n]*)")
AS_SERVICE = re.compile(r"^nb (.*)$", re.MULTILINE)  # the guide's helper: as the service user
DYNSEC_FILE = "/var/lib/mosquitto/netbewust/dynamic-security.json"


def _documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in [GUIDE, *sorted(DEPLOY.iterdir())]:
        if path.is_file():
            text = path.read_text()
            for match in [*COMMAND.finditer(text), *AS_SERVICE.finditer(text)]:
                words = shlex.split(match.group(1).replace("…", ""), comments=True)
                # A path (`ln -s …/netbewust-server /usr/local/bin/`) or "$@" is no command line.
                if words and not words[0].startswith(("/", "$")):
                    found.append((f"{path.name}: {match.group(0).strip()}", words))
    return found


def test_every_documented_command_exists() -> None:
    commands = _documented_commands()
    assert len(commands) >= 10
    parser = _parser()
    for where, words in commands:
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"not a valid command line: {where}")


def test_the_mosquitto_config_is_exactly_what_the_program_generates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    documented = next(
        line
        for line in GUIDE.read_text().splitlines()
        if line.startswith("netbewust-server mosquitto config") and "/mosquitto/data" in line
    )
    assert main(shlex.split(documented)[1:], environ={}) == 0
    assert capsys.readouterr().out == MOSQUITTO_CONF.read_text()


def test_the_settings_files_load_and_agree_with_the_broker_files() -> None:
    config = load_config(DEPLOY / "server.toml", {"NETBEWUST_MQTT_PASSWORD": "x"})
    conf = dict(
        line.split(" ", 1) for line in MOSQUITTO_CONF.read_text().splitlines() if " " in line
    )
    assert config.mosquitto.dynamic_security
    assert conf["plugin"] == "/usr/lib/mosquitto_dynamic_security.so"  # eclipse-mosquitto's
    assert conf["plugin_opt_config_file"] == DYNSEC_FILE
    assert not {"password_file", "acl_file", "pid_file"} & set(conf)
    assert conf["listener"].split()[0] == str(config.mqtt.port) == str(config.http.public_mqtt_port)
    assert conf["cafile"] == config.mqtt.tls_ca_file
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mosquitto, server = compose["services"]["mosquitto"], compose["services"]["server"]
    assert "./mosquitto/netbewust.conf:/mosquitto/config/netbewust.conf:ro" in mosquitto["volumes"]
    assert mosquitto["command"][-1] == "/mosquitto/config/netbewust.conf"
    assert config.mqtt.host in mosquitto["networks"]["default"]["aliases"]
    assert _parser().parse_args(server["command"]).command == "serve"
    assert "pid" not in server  # no signals: accounts go over MQTT
    mounts = {volume.split(":")[1] for volume in server["volumes"]}
    broker_mounts = {volume.split(":")[1] for volume in mosquitto["volumes"]}
    assert str(Path(DYNSEC_FILE).parent) in mounts & broker_mounts  # dynsec-init writes it
    assert str(Path(config.database.path).parent) in mounts
    load_config(None, server["environment"])  # every variable is a setting
    containerfile = (DEPLOY / "Containerfile").read_text()
    assert 'ENTRYPOINT ["netbewust-server"]' in containerfile


def test_the_systemd_units_run_existing_commands() -> None:
    for unit in ("netbewust-server.service", "netbewust-backup.service"):
        text = (DEPLOY / unit).read_text()
        exec_start = re.search(r"^ExecStart=(\S+) (.*)$", text, re.MULTILINE)
        assert exec_start is not None
        assert exec_start.group(1).endswith("/bin/netbewust-server")
        _parser().parse_args(shlex.split(exec_start.group(2)))
        assert "Environment=NETBEWUST_CONFIG=/etc/netbewust/server.toml" in text
    assert "Unit" not in (DEPLOY / "netbewust-backup.timer").read_text().split("[Timer]")[1]


def test_backup_copies_the_live_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "server.db"
    live = Store.open(database)  # stays open, as a serving server would
    live.create_community("wijk-1", "Wijk Eén", NOW)
    code = live.issue_join_code("wijk-1", NOW, timedelta(days=1)).code
    live.redeem_join_code(code, NOW, "huis-1")
    environ = {"NETBEWUST_DATABASE_PATH": str(database)}
    target = tmp_path / "backups" / "copy.db"
    target.parent.mkdir()
    assert main(["backup", str(target)], environ=environ) == 0
    live.create_community("wijk-2", "Later", NOW)  # after the backup: not in it
    copy = Store.open(target)
    try:
        assert [h.household_id for h in copy.households()] == ["huis-1"]
        assert [c.community_id for c in copy.communities()] == ["wijk-1"]
    finally:
        copy.close()
        live.close()
    assert main(["backup", str(database)], environ=environ) == 2
    assert "cannot replace the database" in capsys.readouterr().err
    assert main(["backup", str(tmp_path / "missing" / "x.db")], environ=environ) == 1
