"""`GET /metrics`'s exposition: what the server counted, in the Prometheus text format."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from community_server.dso.signals import CapInterval, CapMode, CapSignal, SignalSource
from community_server.log_limits import LimitedLog
from community_server.metrics import Metrics
from community_server.prometheus import ServerCollector, exposition, server_registry
from community_server.rate_limit import AttemptLimiter
from community_server.serving import Serving

from .conftest import NOW


class _Server:
    """What `Serving.woken` reads of the server."""

    def __init__(self) -> None:
        self.metrics = Metrics()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_every_figure_is_exposed_with_its_labels() -> None:
    server = _Server()
    metrics = server.metrics
    metrics.received["telemetry"] += 7
    metrics.stored["telemetry"] += 6
    metrics.rejected["malformed"] += 3
    metrics.published["limits"] += 2
    metrics.store_failures += 1
    metrics.allocation_round("trafo-1", 0.004, failed=False)
    metrics.allocation_round("trafo-1", 0.006, failed=True)
    signal = CapSignal(
        signal_id="s-1",
        transformer_id="trafo-1",
        source=SignalSource.HTTP,
        mode=CapMode.EMERGENCY,
        received_at=NOW,
        intervals=(CapInterval(start=NOW, end=NOW + timedelta(hours=1), import_w=50_000.0),),
        issuer="dso",
    )
    Serving(server, dso=None).woken(signal)  # type: ignore[arg-type]
    limiter = AttemptLimiter("join")
    for _ in range(12):
        limiter.attempt("192.0.2.1")
    log = LimitedLog(logging.getLogger("test.prometheus"), first=1)
    log.log(logging.WARNING, "malformed", "one")
    log.log(logging.WARNING, "malformed", "two")
    collector = ServerCollector(metrics, lambda: True, [limiter], [log])
    samples = _samples(exposition(server_registry(collector)).decode())

    assert samples[("netbewust_messages_received_total", (("type", "telemetry"),))] == 7
    assert samples[("netbewust_messages_stored_total", (("type", "telemetry"),))] == 6
    assert samples[("netbewust_messages_rejected_total", (("reason", "malformed"),))] == 3
    assert samples[("netbewust_messages_published_total", (("type", "limits"),))] == 2
    assert samples[("netbewust_store_failures_total", ())] == 1
    assert samples[("netbewust_broker_connected", ())] == 1
    trafo = (("transformer", "trafo-1"),)
    assert samples[("netbewust_allocation_round_seconds_count", trafo)] == 2
    assert samples[("netbewust_allocation_round_seconds_sum", trafo)] == pytest.approx(0.01)
    assert samples[("netbewust_allocation_round_failures_total", trafo)] == 1
    assert samples[("netbewust_allocation_last_round_seconds", trafo)] == 0.006
    dso = (("mode", str(CapMode.EMERGENCY)), ("source", str(SignalSource.HTTP)))
    assert samples[("netbewust_dso_signals_total", dso)] == 1
    assert samples[("netbewust_auth_attempts_total", (("kind", "join"), ("outcome", "lockout")))]
    assert samples[("netbewust_log_lines_suppressed_total", ())] == 1


def test_members_left_out_and_refused_dso_frames_are_counted() -> None:
    metrics = Metrics()
    metrics.allocation_excluded["trafo-1", "excluded"] += 2
    metrics.dso_frames_rejected["future_timestamp"] += 1
    collector = ServerCollector(metrics, lambda: True, [], [])
    samples = _samples(exposition(server_registry(collector)).decode())
    left_out = (("reason", "excluded"), ("transformer", "trafo-1"))
    assert samples[("netbewust_allocation_members_excluded_total", left_out)] == 2
    refused = (("code", "future_timestamp"),)
    assert samples[("netbewust_dso_frames_rejected_total", refused)] == 1


def test_two_registries_do_not_share_figures() -> None:
    first, second = Metrics(), Metrics()
    first.rejected["malformed"] += 1
    texts = [
        exposition(server_registry(ServerCollector(m, lambda: False, [], []))).decode()
        for m in (first, second)
    ]
    assert "malformed" in texts[0]
    assert "malformed" not in texts[1]
    assert "netbewust_broker_connected 0.0" in texts[1]


def test_the_engine_never_imports_prometheus_client() -> None:
    code = (
        "import sys, pkgutil, importlib, netbewust_core\n"
        "for m in pkgutil.walk_packages(netbewust_core.__path__, 'netbewust_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "False"
