"""A hostile member on MQTT: floods, oversized and deeply nested envelopes, thousands of
topics, replays and forged log lines. The well-behaved household loses nothing."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from netbewust_core.protocol.messages import MAX_MESSAGE_BYTES, encode

from .conftest import Deployment, publish_all, report, report_all

if TYPE_CHECKING:
    import pytest

HOSTILE_TOPIC = "netbewust/v1/wijk-1/huis-2/telemetry"
PUBACK_SUCCESS = 0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _rejection_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("rejected a message")]


def _malformed(number: int) -> bytes:
    valid = json.loads(encode(report(number, "huis-2")))
    match number % 4:
        case 0:
            return b"{not json" + bytes([number % 256])
        case 1:
            return json.dumps({**valid, "v": 99}).encode()
        case 2:
            return json.dumps({**valid, "body": {**valid["body"], "power_w": ["x"]}}).encode()
        case _:
            return b"\xff\xfe" * 20


async def test_a_flood_of_bad_messages_is_acknowledged_counted_and_summarised(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="community_server.server")
    server = deployment.running.server
    clock = Clock()
    server.rejection_log.clock = clock  # the summary's period passes when the test says so
    household = await deployment.household()
    hostile = await deployment.household("huis-2")
    try:
        flood = publish_all(hostile, [(HOSTILE_TOPIC, _malformed(n)) for n in range(2000)])
        await report_all(household, [report(i) for i in range(100)])
        codes = await flood
        assert codes == [PUBACK_SUCCESS] * 2000  # the broker took them all
        assert await deployment.wait_stored(100) == {f"huis-1-r{i}" for i in range(100)}
        for _ in range(500):
            if sum(server.metrics.rejected.values()) >= 2000:
                break
            await household.publish(report(1000))  # also a batch that flushes the log
        assert sum(server.metrics.rejected.values()) == 2000
        written = len(_rejection_lines(caplog))
        assert written <= 4 * server.rejection_log.first  # four reasons, ten lines each
        assert server.rejection_log.suppressed_total == 2000 - written
        assert "lines left out" not in caplog.text
        clock.now += server.rejection_log.period_s
        await household.publish(report(1001))
        await deployment.wait_stored(102)
        assert "lines left out in the last" in caplog.text
        metrics = await deployment.metrics()
        assert 'netbewust_messages_rejected_total{reason="malformed"}' in metrics
        assert "netbewust_log_lines_suppressed_total" in metrics
    finally:
        await hostile.disconnect()
        await household.disconnect()


async def test_oversized_and_deeply_nested_envelopes_are_rejected_not_fatal(
    deployment: Deployment,
) -> None:
    household = await deployment.household()
    hostile = await deployment.household("huis-2")
    try:
        envelopes = [
            (HOSTILE_TOPIC, b" " * (MAX_MESSAGE_BYTES + 1)),  # above the protocol's limit
            (HOSTILE_TOPIC, b"[" * (MAX_MESSAGE_BYTES - 1)),  # parser recursion
            (HOSTILE_TOPIC, b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
            (HOSTILE_TOPIC, json.dumps({"k" * 60_000: 1}).encode()),
        ]
        assert await publish_all(hostile, envelopes) == [PUBACK_SUCCESS] * 4
        rejected = deployment.running.server.metrics.rejected
        await report_all(household, [report(i) for i in range(20)])
        assert len(await deployment.wait_stored(20)) == 20
        assert sum(rejected.values()) == 4
        assert rejected["too_large"] == 1
        # Beyond the broker's packet limit the broker itself drops the connection.
        await hostile.disconnect()  # its client id is bound to it: one connection at a time
        giant = await deployment.household("huis-2")
        giant.client.publish(HOSTILE_TOPIC, b"x" * 200_000, qos=1)
        await report_all(household, [report(i) for i in range(20, 30)])
        assert len(await deployment.wait_stored(30)) == 30
        assert sum(rejected.values()) == 4
        await giant.disconnect()
    finally:
        await household.disconnect()


async def test_thousands_of_topics_leave_no_state_behind(deployment: Deployment) -> None:
    server = deployment.running.server
    household = await deployment.household()
    hostile = await deployment.household("huis-2")
    try:
        metrics_before = await deployment.metrics()
        valid = encode(report(0, "huis-2"))
        topics = [
            *(f"netbewust/v1/wijk-1/huis-2/junk-{n}" for n in range(1000)),
            *(f"netbewust/v1/wijk-1/h{n}/telemetry" for n in range(1000)),  # not its own
            *(f"netbewust/v1/wijk-{n}/huis-2/telemetry" for n in range(2, 502)),
        ]
        codes = await publish_all(hostile, [(topic, valid) for topic in topics])
        assert len(codes) == 2500
        await report_all(household, [report(i) for i in range(20)])
        assert len(await deployment.wait_stored(20)) == 20
        assert await deployment.stored("huis-2") == set()
        assert set(server.latest_telemetry) == {"huis-1"}
        households = await server.run_in_db(deployment.store.households)
        assert {h.household_id for h in households} == {"huis-1", "huis-2"}
        # No per-topic labels: the exposition does not grow with the topics tried.
        assert len(await deployment.metrics()) < len(metrics_before) + 2000
    finally:
        await hostile.disconnect()
        await household.disconnect()


async def test_replayed_messages_are_stored_once_and_never_move_time_back(
    deployment: Deployment,
) -> None:
    server = deployment.running.server
    household = await deployment.household()
    hostile = await deployment.household("huis-2")
    try:
        captured = report(5)
        await report_all(household, [captured] * 100)  # redelivered, or replayed by the home
        await report_all(household, [report(0)])
        assert await deployment.wait_stored(2) == {"huis-1-r5", "huis-1-r0"}
        latest = server.latest_telemetry["huis-1"]
        await report_all(household, [captured] * 10)  # an older report again
        await report_all(household, [report(1)])
        await deployment.wait_stored(3)
        assert server.latest_telemetry["huis-1"] == latest  # still the newest measurement
        # Another member replaying huis-1's report: the ACL or the topic check stops it.
        await publish_all(hostile, [(HOSTILE_TOPIC, encode(captured))] * 10)
        await publish_all(hostile, [(str(captured.topic), encode(captured))] * 10)
        await report_all(household, [report(2)])
        assert await deployment.wait_stored(4) == {f"huis-1-r{i}" for i in (0, 1, 2, 5)}
        assert await deployment.stored("huis-2") == set()
    finally:
        await hostile.disconnect()
        await household.disconnect()


async def test_a_field_name_with_a_newline_cannot_forge_a_log_line(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="community_server")
    hostile = await deployment.household("huis-2")
    household = await deployment.household()
    forged = "x\n2026-12-07 10:00:00 WARNING community_server.audit: operator admin removed\r"
    try:
        valid = json.loads(encode(report(0, "huis-2")))
        payloads = [
            json.dumps({**valid, forged: 1}).encode(),
            json.dumps({**valid, "body": {**valid["body"], forged: 1}}).encode(),
            json.dumps({**valid, "type": forged}).encode(),
        ]
        assert await publish_all(hostile, [(HOSTILE_TOPIC, p) for p in payloads]) == [0] * 3
        await report_all(household, [report(0)])
        await deployment.wait_stored(1)
        lines = _rejection_lines(caplog)
        assert len(lines) == 3
        for record in lines:
            message = record.getMessage()
            assert "\n" not in message
            assert "\r" not in message
        assert "x\\n2026-12-07 10:00:00 WARNING" in caplog.text
    finally:
        await hostile.disconnect()
        await household.disconnect()
