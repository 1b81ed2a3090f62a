"""Ingest benchmark: 1,000 households reporting every second (10x protocol v1's rate) for 60 s.

Three processes on loopback: a real mosquitto (the generated configuration and ACL),
`netbewust-server serve`, and an asyncio load generator (this file, `generate` mode)
that speaks MQTT 3.1.1 itself: one connection per household, each publishing its own
telemetry at QoS 1 on its own topic. After the run the server's database is compared
with what mosquitto acknowledged to the generator:

- processed: telemetry rows in SQLite; lost: acknowledged by the broker but not stored
  (must be 0);
- processing latency: from the generator's publish to the start of the server's storing
  transaction (`received_at`, whole ms; the commit follows within the same batch),
  p50/p99/max;
- the server's CPU time and peak RSS, and the generator's CPU time, separately.

Usage: `python bench/server_ingest.py [--households 1000] [--duration 60] [--rate 1]`.
A readable table, then one JSON object as the last line. Exit code 1 if anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._net import free_port, wait_for_port  # noqa: E402
from community_server.mosquitto import (  # noqa: E402
    DYNSEC_FILE,
    ServerAccount,
    broker_config,
    find_plugin,
    write_dynsec_file,
)
from community_server.store import Store  # noqa: E402
from netbewust_core.protocol.messages import Channel as ProtocolChannel  # noqa: E402
from netbewust_core.protocol.messages import Message, Telemetry, Topic, encode  # noqa: E402

COMMUNITY = "bench"
SERVER = ServerAccount("netbewust_server", "bench-server-password")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DRAIN_TIMEOUT_S = 60.0
CONNECT_CONCURRENCY = 100


# --- a minimal asyncio MQTT 3.1.1 publisher (the generator needs nothing more) ---------


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _remaining_length(len(body)) + body


def _connect_packet(client_id: str, username: str, password: str) -> bytes:
    flags = 0x80 | 0x40 | 0x02  # username, password, clean session
    variable = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
    return _packet(0x10, variable + _string(client_id) + _string(username) + _string(password))


class Publisher:
    """One household's connection: QoS 1 publishes, PUBACKs matched by packet id."""

    def __init__(self, household: str, password: str) -> None:
        self.household = household
        self.password = password
        self.acked = 0
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        self._writer.write(_connect_packet(self.household, self.household, self.password))
        header = await self._reader.readexactly(4)
        if header[0] != 0x20 or header[3] != 0:
            raise RuntimeError(f"{self.household}: CONNACK refused ({header[3]})")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._reader is not None
        while True:
            header = await self._reader.readexactly(2)
            body = await self._reader.readexactly(header[1])
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
        body = _string(topic) + struct.pack("!H", self._next_id) + payload
        self._writer.write(_packet(0x32, body))  # PUBLISH, QoS 1
        return future

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.write(b"\xe0\x00")  # DISCONNECT
            await self._writer.drain()
            self._writer.close()
        if self._task is not None:
            self._task.cancel()


async def _generate(spec: dict[str, Any]) -> dict[str, Any]:
    households: dict[str, str] = spec["households"]
    period = 1.0 / spec["rate"]
    duration = float(spec["duration"])
    publishers = [Publisher(name, password) for name, password in households.items()]
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(publisher: Publisher) -> None:
        async with limit:
            await publisher.connect(spec["port"])

    await asyncio.gather(*(connect(p) for p in publishers))
    sent_at_ms: dict[str, int] = {}
    acks: list[asyncio.Future[None]] = []
    start = time.monotonic() + 0.5
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)

    async def report(index: int, publisher: Publisher) -> None:
        topic = str(Topic(COMMUNITY, publisher.household, ProtocolChannel.TELEMETRY))
        sequence = 0
        offset = period * index / len(publishers)  # spread evenly over each period
        while True:
            due = start + offset + sequence * period
            if due - start >= duration:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = datetime.now(UTC)
            moment = now.replace(microsecond=now.microsecond // 1000 * 1000)
            message_id = f"{publisher.household}-{sequence}"
            message = Message(
                community=COMMUNITY,
                household=publisher.household,
                sent_at=moment,
                message_id=message_id,
                body=Telemetry(
                    measured_at=moment,
                    interval_s=max(1, round(period)),
                    power_w=(1000.0 + index, 200.0, -300.0),
                    participating=True,
                ),
            )
            sent_at_ms[message_id] = int(time.time() * 1000)
            acks.append(publisher.publish(topic, encode(message)))
            sequence += 1

    await asyncio.gather(*(report(i, p) for i, p in enumerate(publishers)))
    async with asyncio.timeout(60):
        await asyncio.gather(*acks)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for publisher in publishers:
        await publisher.close()
    return {
        "published": len(acks),
        "acked": sum(p.acked for p in publishers),
        "cpu_s": (cpu_after.ru_utime - cpu_before.ru_utime)
        + (cpu_after.ru_stime - cpu_before.ru_stime),
        "sent_at_ms": sent_at_ms,
    }


# --- the orchestration ------------------------------------------------------------------


def _process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _stored(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        count: int = db.execute("SELECT count(*) FROM telemetry").fetchone()[0]
        return count


def _percentile(values: list[int], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


def _prepare(work: Path, households: int) -> tuple[Path, dict[str, str]]:
    database = work / "server.db"
    store = Store.open(database)
    now = datetime.now(UTC)
    store.create_community(COMMUNITY, "Benchmark", now)
    passwords = {}
    for number in range(households):
        code = store.issue_join_code(COMMUNITY, now, timedelta(hours=1)).code
        credentials = store.redeem_join_code(code, now, f"h{number:04d}")
        passwords[credentials.household_id] = credentials.password
    (work / "auth").mkdir(mode=0o700)
    write_dynsec_file(work / "auth" / DYNSEC_FILE, store.broker_accounts(), SERVER)
    store.close()
    return database, passwords


def _start_mosquitto(work: Path, port: int) -> subprocess.Popen[bytes]:
    (work / "mosquitto-data").mkdir()
    config = broker_config(
        dynsec_file=work / "auth" / DYNSEC_FILE,
        data_dir=work / "mosquitto-data",
        port=port,
        plugin=find_plugin(),
    )
    config += "max_connections -1\n"
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


def _start_server(
    work: Path, database: Path, mqtt_port: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "NETBEWUST_DATABASE_PATH": str(database),
        "NETBEWUST_MQTT_PORT": str(mqtt_port),
        "NETBEWUST_MQTT_PASSWORD": SERVER.password,
        "NETBEWUST_HTTP_ENABLED": "false",
        "NETBEWUST_LOG_LEVEL": "INFO",  # no per-message logging at INFO
        "PYTHONPATH": str(REPO),
        **(extra_env or {}),
    }
    log = (work / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "community_server", "serve"],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = (work / "server.log").read_text()
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {text}")
        if "serving;" in text:  # connected; its SUBSCRIBE went out before that
            return process
        time.sleep(0.1)
    raise RuntimeError("the server did not connect")


def run(households: int, duration: float, rate: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="netbewust-ingest-"))
    mosquitto = server = None
    try:
        database, passwords = _prepare(work, households)
        mqtt_port = free_port()
        mosquitto = _start_mosquitto(work, mqtt_port)
        server = _start_server(work, database, mqtt_port)
        time.sleep(0.5)
        server_cpu_before = _process_cpu_s(server.pid)
        spec = {"households": passwords, "duration": duration, "rate": rate, "port": mqtt_port}
        (work / "spec.json").write_text(json.dumps(spec))
        started = time.monotonic()
        generator = subprocess.run(
            [sys.executable, __file__, "generate", str(work / "spec.json")],
            capture_output=True,
            check=True,
        )
        result = json.loads(generator.stdout)
        generated_s = time.monotonic() - started
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while _stored(database) < result["acked"] and time.monotonic() < deadline:
            time.sleep(0.2)
        drained_s = time.monotonic() - started
        server_cpu_s = _process_cpu_s(server.pid) - server_cpu_before
        server_rss_mb = _peak_rss_mb(server.pid)
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT message_id, received_at FROM telemetry").fetchall()
        sent = result["sent_at_ms"]
        latencies = [received - sent[mid] for mid, received in rows if mid in sent]
        stored_ids = {mid for mid, _ in rows}
        lost = sum(1 for mid in sent if mid not in stored_ids)
        return {
            "households": households,
            "duration_s": duration,
            "reports_per_household_per_s": rate,
            "published": result["published"],
            "acked_by_broker": result["acked"],
            "processed": len(rows),
            "lost": lost,
            "stored_per_s_whole_run": round(len(rows) / drained_s, 1),
            "drain_after_generator_s": round(drained_s - generated_s, 2),
            "latency_p50_ms": _percentile(latencies, 0.50),
            "latency_p99_ms": _percentile(latencies, 0.99),
            "latency_max_ms": float(max(latencies, default=0)),
            "server_cpu_s": round(server_cpu_s, 2),
            "server_cpu_pct_of_one_core": round(100 * server_cpu_s / drained_s, 1),
            "server_peak_rss_mb": round(server_rss_mb, 1),
            "generator_cpu_s": round(result["cpu_s"], 2),
            "load_average": os.getloadavg()[0],
        }
    finally:
        for process in (server, mosquitto):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["generate"]:
        spec = json.loads(Path(argv[1]).read_text())
        print(json.dumps(asyncio.run(_generate(spec))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--households", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--rate", type=float, default=1.0, help="reports per household per s")
    args = parser.parse_args(argv)
    row = run(args.households, args.duration, args.rate)
    width = max(len(key) for key in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {value}")
    ok = row["lost"] == 0 and row["processed"] == row["published"]
    print(json.dumps({**row, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
