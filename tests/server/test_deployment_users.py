"""The systemd deployment's steps (docs/deployment.md) with separate system users.

Debian's mosquitto, started as root from a main file shaped like Debian's, drops to the
`mosquitto` user; the server and every administration command run as a system user of their
own through `setpriv`, as the unit and the guide's `nb` helper do. Nothing is signalled across
users: a household joins over HTTP and connects at once, and after `household remove` it is
disconnected and refused while another member keeps reporting. Needs root (CI runs as root;
there is no systemd there, so the units' commands are run directly).
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from community_server.mosquitto import DYNSEC_FILE
from netbewust_core.protocol.messages import Channel

from .conftest import MOSQUITTO, free_port, wait_for_port
from .household_client import HouseholdClient, wait_until
from .messages import telemetry

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
SERVICE_USER = "netbewust-ci"  # the guide's `netbewust`, under a name no real host uses
BROKER_USER = "mosquitto"  # created by Debian's mosquitto package

pytestmark = [
    # About ten fresh Python processes, each importing the server: slow on a loaded machine.
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="creates system users and switches to them"),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("setpriv", "useradd", "userdel")),
        reason="needs util-linux setpriv and shadow's useradd",
    ),
]


def _user(name: str) -> Iterator[pwd.struct_passwd]:
    created = False
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        nologin = "/usr/sbin/nologin"
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", nologin, name],
            check=True,
        )
        created = True
        entry = pwd.getpwnam(name)
    yield entry
    if created:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture
def service_user() -> Iterator[pwd.struct_passwd]:
    yield from _user(SERVICE_USER)


@pytest.fixture
def broker_user() -> Iterator[pwd.struct_passwd]:
    yield from _user(BROKER_USER)


@pytest.fixture
def interpreter_reachable(service_user: pwd.struct_passwd) -> Iterator[None]:
    """Let the service user reach this Python and this checkout (CI unpacks the interpreter
    under root's 0700 home)."""
    paths = (Path(sys.executable), Path(sys.executable).resolve(), REPO / "pyproject.toml")
    blocked = sorted(
        {
            directory
            for path in paths
            for directory in path.parents
            if not os.stat(directory).st_mode & stat.S_IXOTH
        }
    )
    if not os.stat(REPO / "community_server" / "cli.py").st_mode & stat.S_IROTH:
        pytest.skip("this checkout is not readable by other users (cloned with umask 077)")
    if blocked and not shutil.which("setfacl"):
        pytest.skip(f"{blocked[0]} is closed to other users and setfacl (acl) is missing")
    for directory in blocked:
        subprocess.run(["setfacl", "-m", f"u:{service_user.pw_name}:x", directory], check=True)
    yield
    for directory in blocked:
        subprocess.run(["setfacl", "-x", f"u:{service_user.pw_name}", directory], check=False)


@pytest.fixture
def host_root() -> Iterator[Path]:
    """Stands for `/`: pytest's own temporary directory is closed to other users."""
    root = Path(tempfile.mkdtemp(prefix="netbewust-host-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class Host:
    root: Path
    service: pwd.struct_passwd
    broker: pwd.struct_passwd
    mqtt_port: int
    http_port: int

    @property
    def config(self) -> Path:
        return self.root / "etc/netbewust/server.toml"

    @property
    def secrets(self) -> Path:
        return self.root / "etc/netbewust/secrets.env"

    @property
    def dynsec(self) -> Path:
        return self.root / "var/lib/mosquitto/netbewust" / DYNSEC_FILE

    @property
    def database(self) -> Path:
        return self.root / "var/lib/netbewust/netbewust-server.db"

    def as_root(self, *argv: str) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "NETBEWUST_CONFIG": str(self.config)}
        return self._run([sys.executable, "-m", "community_server", *argv], environ)

    def as_service(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self._run(self.service_command(*argv), dict(os.environ))

    def service_command(self, *argv: str) -> list[str]:
        """The guide's `nb`: setpriv to the service user, its configuration and secret."""
        name = self.service.pw_name
        return [
            "setpriv", f"--reuid={name}", f"--regid={name}", "--init-groups",
            "env", f"NETBEWUST_CONFIG={self.config}", self.secrets.read_text().strip(),
            # The checkout's __pycache__ is root's: compile once, not in every command.
            f"PYTHONPYCACHEPREFIX={self.root / 'var/cache/netbewust'}",
            sys.executable, "-m", "community_server", *argv,
        ]  # fmt: skip

    @staticmethod
    def _run(argv: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=REPO, env=environ, capture_output=True, text=True, timeout=60, check=False
        )


def _install(root: Path, service: pwd.struct_passwd, broker: pwd.struct_passwd) -> Host:
    """The guide's directories and files, under `root` instead of `/`."""
    host = Host(root, service, broker, free_port(), free_port())
    for directory, mode, owner in (
        ("var/lib/netbewust", 0o700, service),
        ("var/cache/netbewust", 0o700, service),
        ("var/lib/mosquitto", 0o755, broker),
        ("var/log/mosquitto", 0o750, broker),
        ("run/mosquitto", 0o755, broker),
        ("etc/mosquitto/conf.d", 0o755, None),
        ("etc/netbewust", 0o755, None),
    ):
        path = root / directory
        path.mkdir(parents=True)
        path.chmod(mode)
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    # Debian's /etc/mosquitto/mosquitto.conf, with this root's paths.
    (root / "etc/mosquitto/mosquitto.conf").write_text(
        f"pid_file {root}/run/mosquitto/mosquitto.pid\n\n"
        f"persistence true\npersistence_location {root}/var/lib/mosquitto/\n\n"
        f"log_dest file {root}/var/log/mosquitto/mosquitto.log\n\n"
        f"include_dir {root}/etc/mosquitto/conf.d\n"
    )
    # deploy/server.toml, on loopback without certificates.
    host.config.write_text(
        f'[database]\npath = "{host.database}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {host.mqtt_port}\n'
        'username = "netbewust_server"\nclient_id = "netbewust-server"\n'
        "[mosquitto]\ndynamic_security = true\n"
        f'[http]\nhost = "127.0.0.1"\nport = {host.http_port}\n'
    )
    subprocess.run(
        ["sh", "-c", f"umask 0137 && printf 'NETBEWUST_MQTT_PASSWORD=%s\\n' "
         f"\"$(od -An -tx1 -N32 /dev/urandom | tr -d ' \\n')\" > {host.secrets}"],
        check=True,
    )  # fmt: skip
    os.chown(host.secrets, 0, service.pw_gid)
    return host


@pytest.fixture
def host(
    host_root: Path,
    service_user: pwd.struct_passwd,
    broker_user: pwd.struct_passwd,
    interpreter_reachable: None,
    socket_enabled: None,
) -> Host:
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return _install(host_root, service_user, broker_user)


def _started(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(argv, cwd=REPO, stdout=output, stderr=output)


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _join(host: Host, code: str) -> dict[str, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{host.http_port}/api/v1/join",
        data=json.dumps({"join_code": code}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
        mqtt: dict[str, str] = json.load(answer)["mqtt"]
        return mqtt


def _household(host: Host, mqtt: dict[str, str]) -> HouseholdClient:
    return HouseholdClient(
        "wijk-1",
        mqtt["username"],
        host.mqtt_port,
        mqtt["password"],
        client_id=mqtt["client_id"],
    )


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Uid:")[1].split()[0])


def _wait_for_log(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in the log:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def _configure_broker(host: Host) -> subprocess.Popen[bytes]:
    """As root, before mosquitto starts: its configuration and the plugin's file; then
    start it as Debian's unit does (as root, from the main file)."""
    generated = host.as_root(
        "mosquitto", "config", "--port", str(host.mqtt_port), "--bind", "127.0.0.1",
        "--dynsec-file", str(host.dynsec),
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    (host.root / "etc/mosquitto/conf.d/netbewust.conf").write_text(generated.stdout)
    secret = host.secrets.read_text().strip()
    initialised = subprocess.run(
        ["env", secret, sys.executable, "-m", "community_server", "mosquitto", "dynsec-init",
         str(host.dynsec), "--owner", host.broker.pw_name],
        cwd=REPO, env={**os.environ, "NETBEWUST_CONFIG": str(host.config)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert initialised.returncode == 0, initialised.stderr
    assert not host.database.exists()  # root created no database
    dynsec_dir = host.dynsec.parent.stat()
    assert (dynsec_dir.st_uid, stat.S_IMODE(dynsec_dir.st_mode)) == (host.broker.pw_uid, 0o700)
    return subprocess.Popen(
        [MOSQUITTO, "-c", str(host.root / "etc/mosquitto/mosquitto.conf")],
        stderr=subprocess.DEVNULL,
    )


async def test_the_documented_steps_work_with_separate_users(host: Host) -> None:
    broker = await asyncio.to_thread(_configure_broker, host)
    mosquitto_log = host.root / "var/log/mosquitto/mosquitto.log"
    server: subprocess.Popen[bytes] | None = None
    clients: list[HouseholdClient] = []
    try:
        wait_for_port(host.mqtt_port, broker, mosquitto_log)
        assert _uid(broker.pid) == host.broker.pw_uid  # mosquitto dropped to its own user

        for argv in (
            ("community", "create", "wijk-1", "--name", "Wijk Een"),
            ("transformer", "create", "trafo-12", "--community", "wijk-1",
             "--name", "Trafo 12", "--capacity-w", "400000"),
        ):  # fmt: skip
            done = host.as_service(*argv)
            assert done.returncode == 0, done.stderr
        database = host.database.stat()
        assert (database.st_uid, stat.S_IMODE(database.st_mode)) == (host.service.pw_uid, 0o600)

        serve_log = host.root / "serve.log"
        server = _started(host.service_command("serve"), serve_log)
        _wait_for_log(serve_log, "serving;", server)
        assert _uid(server.pid) == host.service.pw_uid

        joined = []
        for _member in range(2):
            issued = host.as_service("joincode", "issue", "--community", "wijk-1",
                                     "--transformer", "trafo-12")  # fmt: skip
            assert issued.returncode == 0, issued.stderr
            joined.append(_join(host, issued.stdout.strip()))
        leaving, staying = (_household(host, mqtt) for mqtt in joined)
        clients += [leaving, staying]
        for client in clients:
            assert not (await client.connect()).is_failure  # at once: no reload, no retry
            assert not (await client.publish(telemetry(1, client.household))).is_failure

        removed = host.as_service("household", "remove", leaving.household)
        assert removed.returncode == 0, removed.stderr
        await wait_until(lambda: not leaving.client.is_connected())
        again = _household(host, joined[0])
        clients.append(again)
        assert (await again.connect()).is_failure
        assert not (await staying.publish(telemetry(2, staying.household))).is_failure
        await staying.subscribe(staying.topic(Channel.LIMITS))
        assert staying.client.is_connected()

        assert server.poll() is None  # never refused a signal, never exited
        assert _stop(server) == 0
        server = None
        assert "Operation not permitted" not in serve_log.read_text()
    finally:
        for client in clients:
            await client.disconnect()
        if server is not None:
            _stop(server)
        _stop(broker)
    # mosquitto saved the plugin's file itself, still inside its closed directory.
    assert host.dynsec.stat().st_uid == host.broker.pw_uid
    assert leaving.household not in host.dynsec.read_text()
    assert staying.household in host.dynsec.read_text()
