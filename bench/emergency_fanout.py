"""Emergency fan-out: from an emergency event at the VTN to every household acknowledging.

Processes on loopback: a real mosquitto and `netbewust-server serve` (started as in
`server_ingest.py`, with a `[dso.openadr]` section pointing at a test VTN), the test
VTN (`tests/dso/vtn.py`, in this process on its own thread), and 250 simulated
households (`simulation/member.py`: guard, protocol v1 over MQTT) in a separate
process (`households` mode) that prints the households' aggregate every 0.2 s.

On a winter evening with every household running unmanaged, the VTN gets one
emergency event (SIMPLE level 3). Measured from that moment:
- to every household's acknowledgement of its emergency limit, as received and
  stored by the server (the acks table), and
- to the households' aggregate first falling below the emergency cap (the guard acts
  on its next one-second meter reading, so this includes up to a second of it).
The VEN polls the VTN every `--poll-s` seconds, so the first part includes up to one
poll interval. Target: both under 5 s. A readable table, then one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from aiohttp import web  # noqa: E402
from server_ingest import (  # type: ignore[import-not-found]  # noqa: E402
    SERVER,
    _process_cpu_s,
    _start_mosquitto,
    _start_server,
)

from bench._net import free_port, wait_for_port  # noqa: E402
from community_server.mosquitto import DYNSEC_FILE, write_dynsec_file  # noqa: E402
from community_server.simulation.home import SimulatedHome  # noqa: E402
from community_server.simulation.member import MemberAccount, SimulatedMember  # noqa: E402
from community_server.simulation.profiles import HouseholdProfile  # noqa: E402
from community_server.store import Store  # noqa: E402
from tests.dso.vtn import CLIENT_ID, CLIENT_SECRET, TestVtn, event, program  # noqa: E402

COMMUNITY = "bench"
TRANSFORMER = "trafo-1"
EAN = "871685900000000011"
WINTER_EVENING = datetime(2026, 1, 14, 17, 45, tzinfo=UTC)  # 18:45 local
TARGET_S = 5.0
WARM_UP_S = 25.0  # everyone connected, baselines stored, a few telemetry rounds
TIMEOUT_S = 30.0


# --- the households' process ----------------------------------------------------------


async def _households(spec: dict[str, Any]) -> None:
    members = [
        SimulatedMember(
            MemberAccount(COMMUNITY, name, name, password, "127.0.0.1", spec["port"]),
            SimulatedHome(HouseholdProfile.draw(index), seed=index),
            profile_start=WINTER_EVENING,
        )
        for index, (name, password) in enumerate(spec["households"].items())
    ]
    tasks = [asyncio.create_task(member.run()) for member in members]
    started = time.monotonic()
    while time.monotonic() - started < spec["duration_s"]:
        await asyncio.sleep(0.2)
        aggregate = sum(sum(member.home.last_power_w) for member in members)
        connected = sum(member.connected for member in members)
        print(json.dumps({"t": time.time(), "w": aggregate, "connected": connected}), flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- the orchestration ------------------------------------------------------------------


class VtnThread:
    """The test VTN on its own event loop, so the orchestration can stay blocking."""

    def __init__(self) -> None:
        self.vtn = TestVtn("3.0.1", lambda: datetime.now(UTC))
        self.vtn.programs.append(program(gac=False))  # GAC allows no emergency payloads
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        runner = web.AppRunner(self.vtn.application(), access_log=None)

        async def serve() -> None:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)
        self._runner = runner

    def publish_emergency(self) -> float:
        """Add the event on the VTN's loop; returns the wall time it became visible."""

        def add() -> float:
            now = datetime.now(UTC)
            self.vtn.events.append(
                event(
                    "ev-emergency",
                    now.replace(microsecond=0),
                    [3],
                    payload_type="SIMPLE",
                    eans=(EAN,),
                    modified=now,
                    duration="PT1H",
                )
            )
            return time.time()

        return _on_loop(self._loop, add)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def _on_loop[T](loop: asyncio.AbstractEventLoop, call: Callable[[], T]) -> T:
    async def run() -> T:
        return call()

    return asyncio.run_coroutine_threadsafe(run(), loop).result(5)


def _prepare(work: Path, households: int) -> tuple[Path, dict[str, str]]:
    database = work / "server.db"
    store = Store.open(database)
    now = datetime.now(UTC)
    store.create_community(COMMUNITY, "Benchmark", now)
    store.create_transformer(TRANSFORMER, COMMUNITY, "Transformer 1", None)
    passwords = {}
    for number in range(households):
        code = store.issue_join_code(COMMUNITY, now, timedelta(hours=1), TRANSFORMER).code
        credentials = store.redeem_join_code(code, now, f"h{number:04d}")
        passwords[credentials.household_id] = credentials.password
    (work / "auth").mkdir(mode=0o700)
    write_dynsec_file(work / "auth" / DYNSEC_FILE, store.broker_accounts(), SERVER)
    store.close()
    return database, passwords


def _emergency_cap_w(households: int) -> tuple[float, float]:
    """(cap, unmanaged aggregate): halfway between the households' base load and their
    unmanaged aggregate on this evening, from a dry run of the same profiles."""
    homes = [SimulatedHome(HouseholdProfile.draw(index), seed=index) for index in range(households)]
    moment = WINTER_EVENING
    for second in range(20):
        now = moment + timedelta(seconds=second)
        for home in homes:
            home.step(now, now, 1.0)
    unmanaged = sum(sum(home.last_power_w) for home in homes)
    base = sum(sum(home.inflexible_power_w(moment)) for home in homes)
    return round((base + unmanaged) / 2, -3), unmanaged


def _acks(database: Path, since_ms: int) -> tuple[int, int | None]:
    """(households that acknowledged an emergency limit, when the last of them did, ms)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT count(DISTINCT a.household_id), max(a.received_at) FROM acks a"
            " JOIN sent s ON a.ref_id = s.message_id WHERE s.kind = 'limits'"
            ' AND s.payload LIKE \'%"source":"emergency"%\' AND s.sent_at >= ?'
            " AND a.status = 'applied'",
            (since_ms,),
        ).fetchone()
    return int(row[0]), row[1]


def _read_lines(process: subprocess.Popen[str], timeout_s: float) -> list[dict[str, Any]]:
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.05)
        if not ready:
            continue
        line = process.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
    return lines


def run(households: int, poll_s: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="netbewust-fanout-"))
    cap_w, dry_unmanaged_w = _emergency_cap_w(households)
    mosquitto = server = members = None
    vtn = VtnThread()
    try:
        database, passwords = _prepare(work, households)
        vtn.start()
        wait_for_port(vtn.port)
        base_url = f"http://127.0.0.1:{vtn.port}{vtn.vtn.prefix}"
        (work / "server.toml").write_text(
            "[dso.openadr]\n"
            f'vtn_base_url = "{base_url}"\n'
            f'client_id = "{CLIENT_ID}"\n'
            f'token_url = "{base_url}/auth/token"\n'
            f"emergency_import_w = {cap_w}\n"
            f"poll_interval_s = {poll_s}\n"
            "allow_insecure_http = true\n"
            f'[dso.openadr.eans]\n"{EAN}" = "{TRANSFORMER}"\n'
        )
        mqtt_port = free_port()
        mosquitto = _start_mosquitto(work, mqtt_port)
        server = _start_server(
            work,
            database,
            mqtt_port,
            {
                "NETBEWUST_CONFIG": str(work / "server.toml"),
                "NETBEWUST_DSO_OPENADR_CLIENT_SECRET": CLIENT_SECRET,
                "OAUTHLIB_INSECURE_TRANSPORT": "1",  # the loopback VTN has no TLS
            },
        )
        spec = {"households": passwords, "port": mqtt_port, "duration_s": WARM_UP_S + TIMEOUT_S}
        (work / "households.json").write_text(json.dumps(spec))
        members = subprocess.Popen(
            [sys.executable, __file__, "households", str(work / "households.json")],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        warm = _read_lines(members, WARM_UP_S)
        connected = warm[-1]["connected"] if warm else 0
        unmanaged_w = warm[-1]["w"] if warm else float("nan")
        server_cpu_before = _process_cpu_s(server.pid)
        event_at = vtn.publish_emergency()
        since_ms = int(event_at * 1000) - 1000
        acked, last_ack_ms, below_at = 0, None, None
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and (acked < households or below_at is None):
            for line in _read_lines(members, 0.1):
                if below_at is None and line["t"] >= event_at and line["w"] < cap_w:
                    below_at = line["t"]
            acked, last_ack_ms = _acks(database, since_ms)
        all_acked_s = (
            last_ack_ms / 1000 - event_at
            if acked == households and last_ack_ms is not None
            else None
        )
        below_s = None if below_at is None else below_at - event_at
        return {
            "households": households,
            "connected": connected,
            "vtn_poll_interval_s": poll_s,
            "unmanaged_aggregate_kw": round(unmanaged_w / 1000, 1),
            "dry_run_unmanaged_kw": round(dry_unmanaged_w / 1000, 1),
            "emergency_cap_kw": round(cap_w / 1000, 1),
            "acknowledged": acked,
            "event_to_all_acked_s": None if all_acked_s is None else round(all_acked_s, 2),
            "event_to_aggregate_below_cap_s": None if below_s is None else round(below_s, 2),
            "server_cpu_s_during": round(_process_cpu_s(server.pid) - server_cpu_before, 2),
            "target_s": TARGET_S,
            "load_average": os.getloadavg()[0],
        }
    finally:
        for process in (members, server, mosquitto):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        vtn.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["households"]:
        asyncio.run(_households(json.loads(Path(argv[1]).read_text())))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--households", type=int, default=250)
    parser.add_argument("--poll-s", type=float, default=1.0, help="the VEN's poll interval")
    args = parser.parse_args(argv)
    row = run(args.households, args.poll_s)
    width = max(len(key) for key in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {value}")
    times = (row["event_to_all_acked_s"], row["event_to_aggregate_below_cap_s"])
    ok = all(t is not None and t < TARGET_S for t in times)
    print(json.dumps({**row, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
