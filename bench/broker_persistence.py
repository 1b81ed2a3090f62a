"""How many acknowledged QoS 1 reports survive `kill -9` of mosquitto, per persistence setting.

The server's persistent session is offline (as while it restarts), so every report is only in
the broker's queue for it. A household publishes a burst at QoS 1; once `--kill-after` of them
are acknowledged (PUBACK), mosquitto is killed with SIGKILL, started again on the same
persistence file, and the server's session collects what the broker still has. A report is
lost when the broker acknowledged it and never delivered it afterwards.

    python bench/broker_persistence.py [--reports 900] [--kill-after 600]

Each line: the setting, reports acknowledged before the kill, lost, publish rate while
persisting. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._net import free_port, wait_for_port
from community_server.mosquitto import (
    DYNSEC_FILE,
    ServerAccount,
    broker_config,
    find_plugin,
    write_dynsec_file,
)
from community_server.store import Store

SERVER = ServerAccount("netbewust_server", "bench-password")
SETTINGS = {  # name: (autosave_on_changes, autosave_interval)
    "every 30 s (before)": (False, 30),
    "after 1000 changes": (True, 1000),
    "after 100 changes": (True, 100),
    "after 10 changes": (True, 10),
    "after every change": (True, 1),
}


def _client(client_id: str, username: str, password: str) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.username_pw_set(username, password)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    return client


def _connect(client: mqtt.Client, port: int, *, persistent: bool) -> None:
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600 if persistent else 0
    client.connect("127.0.0.1", port, clean_start=not persistent, properties=properties)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit("no CONNACK")


def _run(
    work: Path,
    name: str,
    *,
    on_changes: bool,
    interval: int,
    reports: int,
    kill_after: int,
    password: str,
) -> dict[str, object]:
    data = work / name.replace(" ", "-").replace("(", "").replace(")", "")
    data.mkdir()
    port = free_port()
    config = broker_config(
        dynsec_file=work / DYNSEC_FILE,
        data_dir=data,
        port=port,
        plugin=find_plugin(),
        autosave_changes=interval,
    )
    if not on_changes:  # mosquitto's default: every `interval` seconds
        config = config.replace("autosave_on_changes true\n", "")
    config += f"log_dest file {data / 'mosquitto.log'}\nuser root\n"
    (data / "mosquitto.conf").write_text(config)

    def start() -> subprocess.Popen[bytes]:
        broker = subprocess.Popen(["mosquitto", "-c", str(data / "mosquitto.conf")])
        wait_for_port(port)
        return broker

    broker = start()
    server = _client("netbewust-server", SERVER.username, SERVER.password)
    _connect(server, port, persistent=True)
    subscribed = threading.Event()
    server.on_subscribe = lambda *_args: subscribed.set()
    server.subscribe("netbewust/v1/+/+/telemetry", qos=1)
    subscribed.wait(10)
    server.disconnect()
    server.loop_stop()

    # The server's session has long existed in practice: a clean stop saves it.
    broker.terminate()
    broker.wait()
    broker = start()

    household = _client("huis-1", "huis-1", password)
    _connect(household, port, persistent=False)
    acknowledged: set[int] = set()  # message ids; paho's thread adds, this one reads
    enough = threading.Event()

    def on_publish(_c: object, _u: object, mid: int, _reason: object, _p: object) -> None:
        acknowledged.add(mid)
        if len(acknowledged) >= kill_after:
            enough.set()

    household.on_publish = on_publish
    numbers: dict[int, int] = {}  # message id -> report number
    started = time.monotonic()
    for number in range(reports):
        while len(numbers) - len(acknowledged) >= 100 and not enough.is_set():
            time.sleep(0.0005)
        if enough.is_set():
            break
        info = household.publish("netbewust/v1/wijk-1/huis-1/telemetry", f'{{"n":{number}}}', qos=1)
        numbers[info.mid] = number
    enough.wait(60)
    elapsed = time.monotonic() - started
    broker.kill()  # SIGKILL: no goodbye, no final save
    broker.wait()
    acked = {numbers[mid] for mid in list(acknowledged) if mid in numbers}
    household.loop_stop()

    broker = start()
    received: set[int] = set()
    server = _client("netbewust-server", SERVER.username, SERVER.password)
    server.on_message = lambda _c, _u, message: received.add(json.loads(message.payload)["n"])
    _connect(server, port, persistent=True)
    quiet = time.monotonic()
    while time.monotonic() - quiet < 1.5:
        before = len(received)
        time.sleep(0.3)
        if len(received) != before:
            quiet = time.monotonic()
    server.disconnect()
    server.loop_stop()
    broker.terminate()
    broker.wait()
    return {
        "setting": name,
        "acknowledged": len(acked),
        "lost": len(acked - received),
        "publish_rate_per_s": round(len(acked) / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=900)
    parser.add_argument("--kill-after", type=int, default=600)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="netbewust-persistence-") as directory:
        work = Path(directory)
        store = Store.open(work / "server.db")
        now = datetime(2026, 12, 1, tzinfo=UTC)
        store.create_community("wijk-1", "Wijk", now)
        code = store.issue_join_code("wijk-1", now, timedelta(hours=1)).code
        member = store.redeem_join_code(code, now, "huis-1")
        write_dynsec_file(work / DYNSEC_FILE, store.broker_accounts(), SERVER)
        store.close()
        for name, (on_changes, interval) in SETTINGS.items():
            result = _run(
                work,
                name,
                on_changes=on_changes,
                interval=interval,
                reports=args.reports,
                kill_after=args.kill_after,
                password=member.password,
            )
            results.append(result)
            print(
                f"{name:<22} acknowledged {result['acknowledged']:>5}  lost {result['lost']:>5}"
                f"  {result['publish_rate_per_s']:>6}/s",
                flush=True,
            )
    print(json.dumps({"kill_after": args.kill_after, "results": results}))


if __name__ == "__main__":
    main()
