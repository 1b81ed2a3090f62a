"""`GET /metrics`: the server's counters in the Prometheus text format.

The figures live in `Metrics` and the attempt limiters (plain counters on the event
loop); a collector reads them at each scrape into a registry of the server's own, so
nothing else in the process (or a second server in a test) adds to or reads from it.
Only the community server imports prometheus_client; the engine never does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from prometheus_client.metrics_core import Metric

    from .log_limits import LimitedLog
    from .metrics import Metrics
    from .rate_limit import AttemptLimiter

CONTENT_TYPE = "text/plain; version=0.0.4"


class ServerCollector(Collector):
    def __init__(
        self,
        metrics: Metrics,
        connected: Callable[[], bool],
        limiters: Iterable[AttemptLimiter],
        logs: Iterable[LimitedLog],
        *,
        connections_dropped: Callable[[], int] = lambda: 0,
    ) -> None:
        self._metrics = metrics
        self._connected = connected
        self._limiters = tuple(limiters)
        self._logs = tuple(logs)
        self._connections_dropped = connections_dropped

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        for name, counts, label, text in (
            ("received", metrics.received, "type", "valid messages received from households"),
            ("stored", metrics.stored, "type", "messages stored durably (then acknowledged)"),
            ("rejected", metrics.rejected, "reason", "messages rejected, by reason"),
            ("published", metrics.published, "type", "messages published to households"),
        ):
            family = CounterMetricFamily(f"netbewust_messages_{name}", text, labels=[label])
            for value, count in sorted(counts.items()):
                family.add_metric([value], count)
            yield family
        yield CounterMetricFamily(
            "netbewust_store_failures",
            "times the database was unavailable while storing",
            value=metrics.store_failures,
        )
        yield GaugeMetricFamily(
            "netbewust_broker_connected",
            "1 while the server is connected to the MQTT broker",
            value=1.0 if self._connected() else 0.0,
        )
        yield from self._allocation()
        signals = CounterMetricFamily(
            "netbewust_dso_signals", "DSO signals received", labels=["mode", "source"]
        )
        for (mode, source), count in sorted(metrics.dso_signals.items()):
            signals.add_metric([mode, source], count)
        yield signals
        frames = CounterMetricFamily(
            "netbewust_dso_frames_rejected",
            "frames the HTTP DSO API refused, by error code",
            labels=["code"],
        )
        for code, count in sorted(metrics.dso_frames_rejected.items()):
            frames.add_metric([code], count)
        yield frames
        notices = CounterMetricFamily(
            "netbewust_household_notices",
            "notices telling a household why its messages are refused (suppressed: within "
            "the household's notice window)",
            labels=["code", "outcome"],
        )
        for (code, outcome), count in sorted(metrics.notices.items()):
            notices.add_metric([code, outcome], count)
        yield notices
        yield CounterMetricFamily(
            "netbewust_heat_pump_pauses",
            "heat-pump steering pauses households began (their telemetry's paused_until)",
            value=metrics.heat_pump_pauses,
        )
        attempts = CounterMetricFamily(
            "netbewust_auth_attempts",
            "join, login and HTTP Basic attempts, by what the limiter did",
            labels=["kind", "outcome"],
        )
        for limiter in self._limiters:
            for outcome, count in sorted(limiter.counts.items()):
                attempts.add_metric([limiter.kind, outcome], count)
        yield attempts
        yield CounterMetricFamily(
            "netbewust_http_connections_dropped",
            "HTTP connections from locked-out addresses dropped before any parsing",
            value=self._connections_dropped(),
        )
        yield CounterMetricFamily(
            "netbewust_log_lines_suppressed",
            "log lines left out by the per-reason log limit",
            value=sum(log.suppressed_total for log in self._logs),
        )

    def _allocation(self) -> Iterator[Metric]:
        rounds = self._metrics.allocation
        failures = CounterMetricFamily(
            "netbewust_allocation_round_failures",
            "allocation rounds that raised",
            labels=["transformer"],
        )
        durations = SummaryMetricFamily(
            "netbewust_allocation_round_seconds",
            "allocation rounds and their duration",
            labels=["transformer"],
        )
        last = GaugeMetricFamily(
            "netbewust_allocation_last_round_seconds",
            "the duration of the latest allocation round",
            labels=["transformer"],
        )
        for transformer, figures in sorted(rounds.items()):
            failures.add_metric([transformer], figures.failures)
            durations.add_metric([transformer], figures.count, figures.seconds_total)
            last.add_metric([transformer], figures.last_seconds)
        excluded = CounterMetricFamily(
            "netbewust_allocation_members_excluded",
            "members left out of an allocation round (counted per round), by reason",
            labels=["transformer", "reason"],
        )
        for (transformer, reason), count in sorted(self._metrics.allocation_excluded.items()):
            excluded.add_metric([transformer, reason], count)
        yield from (durations, failures, last, excluded)
        yield from self._heat_pumps()

    def _heat_pumps(self) -> Iterator[Metric]:
        metrics = self._metrics
        begun = CounterMetricFamily(
            "netbewust_heat_pump_curtailments",
            "heat-pump curtailments the live allocation began (a pump counts once per curtailment)",
            labels=["transformer"],
        )
        held = GaugeMetricFamily(
            "netbewust_heat_pumps_curtailed",
            "members whose heat-pump power the latest allocation round takes",
            labels=["transformer"],
        )
        refused = CounterMetricFamily(
            "netbewust_heat_pump_facts_refused",
            "member-rounds whose heat-pump facts the allocation refused (e.g. a pause beyond 48 h)",
            labels=["transformer"],
        )
        for transformer, count in sorted(metrics.heat_pump_curtailments.items()):
            begun.add_metric([transformer], count)
        for transformer, count in sorted(metrics.heat_pumps_curtailed.items()):
            held.add_metric([transformer], count)
        for transformer, count in sorted(metrics.heat_pump_facts_refused.items()):
            refused.add_metric([transformer], count)
        days = CounterMetricFamily(
            "netbewust_daily_load_rejected",
            "days of members' load refused for the temperature forecast (values out of range)",
            labels=["transformer"],
        )
        for transformer, count in sorted(metrics.daily_load_rejected.items()):
            days.add_metric([transformer], count)
        yield from (begun, held, refused, days)


def server_registry(collector: ServerCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
