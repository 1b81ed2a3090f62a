"""Abuse benchmark: attackers guess secrets and flood bad messages while households report.

On loopback only: a real mosquitto, the server (`serving()`: MQTT ingest, allocation, HTTP)
in this process, and two child processes:

- `household`: the well-behaved members on 127.0.0.1, reporting telemetry at QoS 1 (one
  MQTT connection each) and reading their own `/api/v1/households/{id}` with HTTP Basic;
- `attack` (attack phases only): attackers, each on its own loopback address (127.0.R.2
  and up in round R, the client socket's local address), brute-forcing join codes and one
  member's HTTP Basic password at a fixed rate each, and one hostile member flooding
  malformed messages over MQTT. It runs at nice 10 (real attackers bring their own CPUs).

`--rounds` times an idle phase, then an attack phase. Each phase is a window of
`--duration` s that starts once its children are connected (start-up is not measured),
and measures the households' report latency (from the publish to the server's storing
transaction, as in `server_ingest.py`), the allocation round time (rounds run back to back
here, timed on the server's event loop) and the server's CPU, by thread. The samples of
all idle phases and of all attack phases are pooled: on a busy machine one stall then
moves p99 less, and alternating phases meet the same background load; each round's own
ratios are listed too.

Printed: a table, then one JSON object as the last line, with the ratios of the attack
phases' p99s to the idle ones (target: within 2x), reports lost (acknowledged by the
broker, not stored: must be 0), the attempt after which each attacker address was locked
out (target: within 20) and whether any household request was refused (target: never).
The attack rates achieved are printed next to the asked ones, with what held them back
(the attacker's own CPU: on a CPU or waiting for one nearly all the window; or the
server's answers).

Usage: `python bench/abuse.py [--attackers 3] [--rate 500] [--flood 1000] [--duration 10]
[--rounds 3]`. Bounded: at most `--duration` seconds of attack per phase. Exit code 1 if
a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from bench._net import free_port, wait_for_port  # noqa: E402
from community_server.config import (  # noqa: E402
    DatabaseConfig,
    HttpConfig,
    MqttConfig,
    ServerConfig,
)
from community_server.mosquitto import (  # noqa: E402
    DYNSEC_FILE,
    ServerAccount,
    broker_config,
    find_plugin,
    write_dynsec_file,
)
from community_server.serving import serving  # noqa: E402
from community_server.store import Store  # noqa: E402
from netbewust_core.protocol.messages import Channel, Message, Telemetry, Topic, encode  # noqa: E402

COMMUNITY = "bench"
TRANSFORMER = "trafo-1"
HOSTILE = "hostile"
SERVER = ServerAccount("netbewust_server", "abuse-bench-server-password")
METRICS_TOKEN = secrets.token_urlsafe(24)
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
LOCKOUT_RETRY_AFTER_S = 60  # a 429 telling to wait longer than this is a lockout
LOCKED_WITHIN = 20
ATTEMPT_CONCURRENCY = 32  # in flight per attacker and kind; a fixed rate needs a few
HTTP_CHECK_EVERY_S = 0.2
ATTACKER_NICENESS = 10


# --- a minimal asyncio MQTT 3.1.1 publisher (QoS 1; the client id is the household's) ----


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([first_byte]) + bytes(encoded) + body


class Publisher:
    """One member's connection: QoS 1 publishes, PUBACKs matched by packet id."""

    def __init__(self, household: str, password: str) -> None:
        self.household = household
        self.password = password
        self.acked = 0
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int) -> None:
        reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        flags = 0x80 | 0x40 | 0x02  # user name, password, clean session
        variable = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
        payload = _string(self.household) + _string(self.household) + _string(self.password)
        self._writer.write(_packet(0x10, variable + payload))
        connack = await reader.readexactly(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"{self.household}: CONNACK refused ({connack[3]})")
        self._task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            header = await reader.readexactly(2)
            body = await reader.readexactly(header[1])
            if header[0] >> 4 == 4:  # PUBACK
                future = self._pending.pop(struct.unpack("!H", body[:2])[0], None)
                if future is not None and not future.done():
                    future.set_result(None)
                    self.acked += 1

    def publish(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        assert self._writer is not None
        self._next_id = self._next_id % 65535 + 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        self._writer.write(
            _packet(0x32, _string(topic) + struct.pack("!H", self._next_id) + payload)
        )
        return future

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.write(b"\xe0\x00")  # DISCONNECT
            await self._writer.drain()
            self._writer.close()
        if self._task is not None:
            self._task.cancel()


# --- child processes --------------------------------------------------------------------


def _report(household: str, phase: str, sequence: int) -> tuple[str, bytes, str]:
    now = datetime.now(UTC)
    moment = now.replace(microsecond=now.microsecond // 1000 * 1000)
    message_id = f"{household}-{phase}-{sequence}"
    message = Message(
        community=COMMUNITY,
        household=household,
        sent_at=moment,
        message_id=message_id,
        body=Telemetry(
            measured_at=moment, interval_s=1, power_w=(1500.0, 300.0, 200.0), participating=True
        ),
    )
    return str(Topic(COMMUNITY, household, Channel.TELEMETRY)), encode(message), message_id


async def _households(spec: dict[str, Any]) -> dict[str, Any]:
    """Report telemetry for every household and read one household's own resource."""
    passwords: dict[str, str] = spec["households"]
    publishers = [Publisher(name, password) for name, password in passwords.items()]
    for publisher in publishers:
        await publisher.connect(spec["mqtt_port"])
    period = 1.0 / spec["report_rate"]
    sent_at_ms: dict[str, int] = {}
    acks: list[asyncio.Future[None]] = []
    start = await _ready_and_go()

    async def report(index: int, publisher: Publisher) -> None:
        offset = period * index / len(publishers)
        for sequence in range(int(spec["duration"] / period)):
            await asyncio.sleep(max(0.0, start + offset + sequence * period - time.monotonic()))
            topic, payload, message_id = _report(publisher.household, spec["phase"], sequence)
            sent_at_ms[message_id] = int(time.time() * 1000)
            acks.append(publisher.publish(topic, payload))

    http: Counter[int] = Counter()
    http_ms: list[float] = []

    async def read_own() -> None:
        name, password = next(iter(passwords.items()))
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.1", 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"http://127.0.0.1:{spec['http_port']}/api/v1/households/{name}"
            auth = {"Authorization": aiohttp.encode_basic_auth(name, password)}
            while time.monotonic() < start + spec["duration"]:
                began = time.monotonic()
                async with session.get(url, headers=auth) as answer:
                    await answer.read()
                    http[answer.status] += 1
                http_ms.append((time.monotonic() - began) * 1000)
                await asyncio.sleep(HTTP_CHECK_EVERY_S)

    await asyncio.gather(read_own(), *(report(i, p) for i, p in enumerate(publishers)))
    async with asyncio.timeout(30):
        await asyncio.gather(*acks)
    for publisher in publishers:
        await publisher.close()
    return {
        "published": len(acks),
        "acked": sum(p.acked for p in publishers),
        "sent_at_ms": sent_at_ms,
        "http_statuses": {str(k): v for k, v in http.items()},
        "http_p99_ms": _percentile(http_ms, 0.99),
    }


def _guess_request(kind: str, victim: str) -> bytes:
    """One fresh guess as raw HTTP/1.1, one connection each (the cheapest client there is)."""
    if kind == "join":
        body = json.dumps({"join_code": secrets.token_hex(6).upper()}).encode()
        head = (
            "POST /api/v1/join HTTP/1.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
    else:
        body = b""
        guess = base64.b64encode(f"{victim}:{secrets.token_urlsafe(12)}".encode()).decode()
        head = f"GET /api/v1/households/{victim} HTTP/1.1\r\nAuthorization: Basic {guess}\r\n"
    return f"{head}Host: 127.0.0.1\r\nConnection: close\r\n\r\n".encode() + body


async def _attempt(address: str, port: int, request: bytes) -> tuple[int, int]:
    """The status and Retry-After of one attempt; (0, 0): closed unanswered."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    except OSError:
        return 0, 0
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
    except OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError:
        return 0, 0
    finally:
        writer.close()
    retry_after = re.search(rb"\r\nRetry-After: (\d+)", head, re.IGNORECASE)
    return int(head[9:12]), int(retry_after[1]) if retry_after else 0


async def _guess(
    kind: str, address: str, spec: dict[str, Any], start: float, results: dict[str, Any]
) -> None:
    """`rate` attempts per second from `address`, each a fresh guess, for `duration` s from
    `start`; an attempt not begun by then is not made (the achieved rate says so)."""
    statuses: Counter[int] = Counter()
    # answered: attempts the server judged (401, 403, or 429 "wait"); locked: the lockout
    # 429 or a connection dropped unanswered (only a locked-out address's are).
    record: dict[str, Any] = {"statuses": statuses, "answered": 0, "locked": 0, "late": 0}
    results[f"{address} {kind}"] = record
    deadline = start + spec["duration"]
    slots = asyncio.Semaphore(ATTEMPT_CONCURRENCY)

    async def one() -> None:
        try:
            status, retry_after = await _attempt(
                address, spec["http_port"], _guess_request(kind, spec["victim"])
            )
        finally:
            slots.release()
        statuses[status] += 1
        locked = status == 0 or (status == 429 and retry_after > LOCKOUT_RETRY_AFTER_S)
        record["locked" if locked else "answered"] += 1

    tasks: list[asyncio.Task[None]] = []
    while (due := start + len(tasks) / spec["rate"]) < deadline:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if slots.locked():
            record["late"] += 1  # all in flight: waiting for the server's answers
        await slots.acquire()
        if time.monotonic() >= deadline:
            slots.release()
            break
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    record["attempts"] = len(tasks)


async def _flood(publisher: Publisher, spec: dict[str, Any], start: float) -> dict[str, Any]:
    """Malformed messages from a member, at `flood` per second for `duration` s from
    `start`, on its own topic."""
    topic = str(Topic(COMMUNITY, HOSTILE, Channel.TELEMETRY))
    deadline = start + spec["duration"]
    acks: list[asyncio.Future[None]] = []
    while (due := start + len(acks) / spec["flood"]) < deadline:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        payload = b'{"v": 1, "type": "telemetry", "x\\n": %d}' % len(acks)
        acks.append(publisher.publish(topic, payload))
    async with asyncio.timeout(30):
        await asyncio.gather(*acks)
    await publisher.close()
    return {"published": len(acks), "acked": publisher.acked}


def _scheduled_s() -> tuple[float, float]:
    """This process's seconds on a CPU and waiting for one (`/proc/self/schedstat`)."""
    on_cpu_ns, waiting_ns, _ = Path("/proc/self/schedstat").read_text().split()
    return int(on_cpu_ns) / 1e9, int(waiting_ns) / 1e9


async def _attack(spec: dict[str, Any]) -> dict[str, Any]:
    publisher = Publisher(HOSTILE, spec["hostile_password"])
    await publisher.connect(spec["mqtt_port"])
    start = await _ready_and_go()
    results: dict[str, Any] = {}
    guesses = [
        _guess(kind, address, spec, start, results)
        for address in spec["attackers"]
        for kind in ("join", "basic")
    ]
    on_cpu, waiting = _scheduled_s()
    outcomes = await asyncio.gather(_flood(publisher, spec, start), *guesses)
    elapsed = time.monotonic() - start
    on_cpu_after, waiting_after = _scheduled_s()
    for record in results.values():
        record["statuses"] = {str(k): v for k, v in record["statuses"].items()}
    return {
        "guessing": results,
        "flood": outcomes[0],
        # An attacker that is on a CPU or waiting for one all the time cannot go faster.
        "cpu_pct": round(100 * (on_cpu_after - on_cpu) / elapsed, 1),
        "cpu_wait_pct": round(100 * (waiting_after - waiting) / elapsed, 1),
    }


async def _ready_and_go() -> float:
    """Tell the benchmark this child is connected, wait for its go; the start (monotonic,
    the same clock in every process)."""
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    return time.monotonic()


# --- the orchestration ------------------------------------------------------------------


def _thread_cpu_s() -> defaultdict[str, float]:
    """This process's CPU seconds so far by thread name (a pool's workers together), to
    show where the server's CPU goes: event loop, MQTT thread, database, KDF."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: defaultdict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        name = "event loop" if task.name == str(os.getpid()) else re.sub(r"_\d+$", "", name)
        seconds[name] += (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]), 2)


def _prepare(work: Path, households: int) -> tuple[Path, dict[str, str], str]:
    database = work / "server.db"
    store = Store.open(database)
    now = datetime.now(UTC)
    store.create_community(COMMUNITY, "Benchmark", now)
    store.create_transformer(TRANSFORMER, COMMUNITY, "Benchmark transformer", 250_000.0)
    passwords = {}
    for name in [*(f"h{n:03d}" for n in range(households)), HOSTILE]:
        code = store.issue_join_code(COMMUNITY, now, timedelta(hours=1), TRANSFORMER).code
        passwords[name] = store.redeem_join_code(code, now, name).password
    (work / "auth").mkdir(mode=0o700)
    write_dynsec_file(work / "auth" / DYNSEC_FILE, store.broker_accounts(), SERVER)
    store.close()
    hostile = passwords.pop(HOSTILE)
    return database, passwords, hostile


def _start_mosquitto(work: Path, port: int) -> subprocess.Popen[bytes]:
    (work / "mosquitto-data").mkdir()
    config = broker_config(
        dynsec_file=work / "auth" / DYNSEC_FILE,
        data_dir=work / "mosquitto-data",
        port=port,
        plugin=find_plugin(),
    )
    if os.geteuid() == 0:
        config += "user root\n"
    (work / "mosquitto.conf").write_text(config)
    process = subprocess.Popen(
        [MOSQUITTO, "-c", str(work / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return process


class _Child:
    """A child process (`household` or `attack`): started and connected first, then all
    told to go at once, so that every phase measures the same window."""

    def __init__(self, mode: str, process: asyncio.subprocess.Process) -> None:
        self.mode = mode
        self._process = process

    @classmethod
    async def start(cls, mode: str, spec: dict[str, Any], work: Path) -> _Child:
        path = work / f"{mode}.json"
        path.write_text(json.dumps(spec))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            mode,
            str(path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        if await process.stdout.readline() != b"ready\n":
            raise RuntimeError(f"the {mode} process failed to start")
        return cls(mode, process)

    def go(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(b"go\n")

    async def result(self) -> dict[str, Any]:
        stdout, _ = await self._process.communicate()
        if self._process.returncode != 0:
            raise RuntimeError(f"the {self.mode} process failed")
        result: dict[str, Any] = json.loads(stdout)
        return result


class _RejectionLines(logging.Handler):
    """Counts the warning lines the server writes about rejected messages."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage().startswith("rejected a message")


async def _phase(
    running: Any, database: Path, spec: dict[str, Any], work: Path, *, phase: str, attack: bool
) -> dict[str, Any]:
    """One window of `duration` s, the households reporting (and, with `attack`, the
    attackers at work): its raw samples, CPU seconds and the children's results."""
    control = running.control(TRANSFORMER)
    rounds_ms: list[float] = []
    stop = asyncio.Event()

    async def allocate() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            await control.step(running.server.now())
            rounds_ms.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.05)

    starting = [_Child.start("household", {**spec, "phase": phase}, work)]
    if attack:
        starting.append(_Child.start("attack", spec, work))
    children = await asyncio.gather(*starting)
    # The window: from the go to `duration` later; the children's start-up is not in it.
    cpu_before, started = time.process_time(), time.monotonic()
    threads_before = _thread_cpu_s()
    allocating = asyncio.create_task(allocate())
    for child in children:
        child.go()
    await asyncio.sleep(spec["duration"])
    stop.set()
    await allocating
    # The server's CPU (all its threads: event loop, MQTT, database, KDF) in the window.
    elapsed = time.monotonic() - started
    cpu_s = time.process_time() - cpu_before
    by_thread = {name: seconds - threads_before[name] for name, seconds in _thread_cpu_s().items()}
    results = await asyncio.gather(*(child.result() for child in children))
    household = results[0]
    sent: dict[str, int] = household["sent_at_ms"]
    deadline = time.monotonic() + 30
    rows: list[tuple[str, int]] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT message_id, received_at FROM telemetry").fetchall()
        if len({mid for mid, _ in rows} & sent.keys()) >= household["acked"]:
            break
        await asyncio.sleep(0.2)
    stored = {mid: received for mid, received in rows if mid in sent}
    latencies = [float(received - sent[mid]) for mid, received in stored.items()]
    return {
        "household": household,
        "attack": results[1] if attack else None,
        "lost": household["acked"] - len(stored),
        "latencies_ms": latencies,
        "rounds_ms": rounds_ms,
        "seconds": elapsed,
        "cpu_s": cpu_s,
        "cpu_s_by_thread": by_thread,
    }


async def _measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    database, passwords, hostile = _prepare(work, args.households)
    mqtt_port, http_port = free_port(), free_port()
    mosquitto = _start_mosquitto(work, mqtt_port)
    store = Store.open(database)
    lines = _RejectionLines()
    logging.getLogger("community_server.server").addHandler(lines)
    config = ServerConfig(
        database=DatabaseConfig(path=database),
        mqtt=MqttConfig(port=mqtt_port, username=SERVER.username, password=SERVER.password),
        http=HttpConfig(port=http_port, metrics_token=METRICS_TOKEN),
    )
    spec = {
        "households": passwords,
        "hostile_password": hostile,
        "victim": next(iter(passwords)),
        "mqtt_port": mqtt_port,
        "http_port": http_port,
        "report_rate": args.report_rate,
        "rate": args.rate,
        "flood": args.flood,
        "duration": args.duration,
    }
    idle: list[dict[str, Any]] = []
    attacked: list[dict[str, Any]] = []
    try:
        async with serving(config, store) as running:
            for number in range(args.rounds):
                # Fresh attacker addresses each round: every attack starts unlocked.
                attackers = [f"127.0.{number}.{2 + n}" for n in range(args.attackers)]
                idle.append(
                    await _phase(running, database, spec, work, phase=f"idle{number}", attack=False)
                )
                attacked.append(
                    await _phase(
                        running,
                        database,
                        {**spec, "attackers": attackers},
                        work,
                        phase=f"attack{number}",
                        attack=True,
                    )
                )
            rejected = sum(running.server.metrics.rejected.values())
    finally:
        store.close()
        mosquitto.terminate()
        mosquitto.wait(timeout=10)
    return _summary(args, idle, attacked, rejected, lines.count)


def _summary(
    args: argparse.Namespace,
    idle: list[dict[str, Any]],
    attacked: list[dict[str, Any]],
    rejected: int,
    rejection_lines: int,
) -> dict[str, Any]:
    """The figures over all rounds: each phase's samples pooled, so that one stall of a
    busy machine moves p99 less; each round's own p99 ratios are listed too."""
    guessing: dict[str, Any] = {
        who: record for phase in attacked for who, record in phase["attack"]["guessing"].items()
    }
    # Locked out at the attempt after the last one the server judged (None: never).
    locked = {
        who: record["answered"] + 1 if record["locked"] else None
        for who, record in guessing.items()
    }
    achieved = min(record["attempts"] for record in guessing.values()) / args.duration
    late = sum(record["late"] for record in guessing.values())
    refused = sum(
        count
        for phase in (*idle, *attacked)
        for status, count in phase["household"]["http_statuses"].items()
        if status != "200"
    )
    attacks = [phase["attack"] for phase in attacked]
    attacker = {
        share: round(sum(attack[share] for attack in attacks) / len(attacks), 1)
        for share in ("cpu_pct", "cpu_wait_pct")
    }
    flood = {
        count: sum(attack["flood"][count] for attack in attacks) for count in ("published", "acked")
    }
    achieved_flood = flood["published"] / args.duration / args.rounds
    phases = {"idle": idle, "attack": attacked}
    latency = {name: _pooled(rounds, "latencies_ms") for name, rounds in phases.items()}
    allocation = {name: _pooled(rounds, "rounds_ms") for name, rounds in phases.items()}
    return {
        "attackers": args.attackers,
        "rounds": args.rounds,
        "attempts_per_s_per_attacker_and_kind": args.rate,
        "achieved_attempts_per_s_min": round(achieved, 1),
        "late_attempts": late,
        "bad_messages_per_s": args.flood,
        "achieved_bad_messages_per_s": round(achieved_flood, 1),
        "attack_rate_limited_by": _limited_by(
            achieved / args.rate, achieved_flood / args.flood, attacker, late
        ),
        "attacker_cpu_pct_of_one_core": attacker["cpu_pct"],
        "attacker_waiting_for_cpu_pct": attacker["cpu_wait_pct"],
        "households": args.households,
        "duration_s_per_phase": args.duration,
        "idle_latency_p50_ms": _percentile(latency["idle"], 0.5),
        "idle_latency_p99_ms": _percentile(latency["idle"], 0.99),
        "attack_latency_p50_ms": _percentile(latency["attack"], 0.5),
        "attack_latency_p99_ms": _percentile(latency["attack"], 0.99),
        "latency_p99_ratio": _p99_ratio(latency["attack"], latency["idle"]),
        "latency_p99_ratio_by_round": [
            _p99_ratio(a["latencies_ms"], i["latencies_ms"])
            for i, a in zip(idle, attacked, strict=True)
        ],
        "idle_allocation_p99_ms": _percentile(allocation["idle"], 0.99),
        "attack_allocation_p99_ms": _percentile(allocation["attack"], 0.99),
        "allocation_p99_ratio": _p99_ratio(allocation["attack"], allocation["idle"]),
        "allocation_p99_ratio_by_round": [
            _p99_ratio(a["rounds_ms"], i["rounds_ms"]) for i, a in zip(idle, attacked, strict=True)
        ],
        "allocation_rounds": len(allocation["idle"]) + len(allocation["attack"]),
        "idle_server_cpu_pct_of_one_core": _cpu_pct(idle),
        "attack_server_cpu_pct_of_one_core": _cpu_pct(attacked),
        "idle_server_cpu_pct_by_thread": _cpu_pct_by_thread(idle),
        "attack_server_cpu_pct_by_thread": _cpu_pct_by_thread(attacked),
        "reports_published": sum(phase["household"]["published"] for phase in (*idle, *attacked)),
        "lost": sum(phase["lost"] for phase in (*idle, *attacked)),
        "household_http_refused": refused,
        "household_http_p99_ms_idle": max(phase["household"]["http_p99_ms"] for phase in idle),
        "household_http_p99_ms_attack": max(
            phase["household"]["http_p99_ms"] for phase in attacked
        ),
        "locked_out_after_attempt": locked,
        "worst_lockout_attempt": max((n or 10**9) for n in locked.values()),
        "bad_messages_published": flood["published"],
        "bad_messages_acked": flood["acked"],
        "bad_messages_rejected": rejected,
        "rejection_log_lines": rejection_lines,
        "load_average": os.getloadavg()[0],
    }


def _pooled(phases: list[dict[str, Any]], samples: str) -> list[float]:
    return [value for phase in phases for value in phase[samples]]


def _p99_ratio(attacked: list[float], idle: list[float]) -> float:
    return _ratio(_percentile(attacked, 0.99), _percentile(idle, 0.99))


def _cpu_pct(phases: list[dict[str, Any]]) -> float:
    cpu_s: float = sum(phase["cpu_s"] for phase in phases)
    seconds: float = sum(phase["seconds"] for phase in phases)
    return round(100 * cpu_s / seconds, 1)


def _cpu_pct_by_thread(phases: list[dict[str, Any]]) -> dict[str, float]:
    seconds: float = sum(phase["seconds"] for phase in phases)
    by_thread: defaultdict[str, float] = defaultdict(float)
    for phase in phases:
        for name, cpu_s in phase["cpu_s_by_thread"].items():
            by_thread[name] += cpu_s
    return {name: round(100 * cpu_s / seconds, 1) for name, cpu_s in by_thread.items() if cpu_s}


def _limited_by(attempts: float, flood: float, attack: dict[str, Any], late: int) -> str:
    """What held the attack below the asked rates (`attempts`, `flood`: the achieved share)."""
    if min(attempts, flood) >= 0.95:
        return "nothing: as asked"
    busy = attack["cpu_pct"] + attack["cpu_wait_pct"]
    if busy >= 90:  # on a CPU or waiting for one nearly all the window: it could not go faster
        return (
            f"the attacker's own CPU (nice {ATTACKER_NICENESS}: on a CPU {attack['cpu_pct']} %,"
            f" waiting for one {attack['cpu_wait_pct']} % of the time)"
        )
    if late:
        return f"the server's answers ({ATTEMPT_CONCURRENCY} attempts in flight per kind)"
    return "unknown"


def _ratio(attacked: float, idle: float) -> float:
    return round(attacked / idle, 2) if idle > 0 else float("inf")


def run(argv: list[str]) -> dict[str, Any]:
    """Parse the options, run both phases, and return the figures (with `ok`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--attackers", type=int, default=3, help="addresses 127.0.0.2 and up")
    parser.add_argument("--rate", type=float, default=500.0, help="attempts/s per address, kind")
    parser.add_argument("--flood", type=float, default=1000.0, help="bad messages per s")
    parser.add_argument("--households", type=int, default=20)
    parser.add_argument("--report-rate", type=float, default=2.0, help="per household per s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="idle, then attack; this often")
    args = parser.parse_args(argv)
    if not 1 <= args.attackers <= 200 or args.duration > 120 or args.rate > 5000:
        parser.error("at most 200 attackers, 120 s per phase and 5,000 attempts/s")
    work = Path(tempfile.mkdtemp(prefix="netbewust-abuse-"))
    try:
        row = asyncio.run(_measure(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = (
        row["lost"] == 0
        and row["household_http_refused"] == 0
        and row["worst_lockout_attempt"] <= LOCKED_WITHIN
        and row["latency_p99_ratio"] <= 2
        and row["allocation_p99_ratio"] <= 2
    )
    return {**row, "ok": ok}


def main(argv: list[str]) -> int:
    if argv[:1] in (["household"], ["attack"]):
        spec = json.loads(Path(argv[1]).read_text())
        if argv[0] == "attack":
            # Real attackers bring their own CPUs; here they share the server's, so they
            # yield it: what is measured is the defences, not the scheduler.
            os.nice(ATTACKER_NICENESS)
        job = _households(spec) if argv[0] == "household" else _attack(spec)
        print(json.dumps(asyncio.run(job)))
        return 0
    row = run(argv)
    width = max(len(key) for key in row)
    for key, value in row.items():
        if key != "ok":
            print(f"{key:<{width}}  {value}")
    print(json.dumps(row))
    return 0 if row["ok"] else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
