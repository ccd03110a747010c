"""The audit client's Prometheus metrics, in the default registry of the process that
uses the client (the user-service serves them on its /metrics).

Every counter of `Counters` is exported as `auditmesh_audit_client_<name>_total`,
read at scrape time from each running client (so emit() pays nothing for metrics),
summed over the clients of the process; the state (buffered events, batches in
flight, spool depth, breaker state) as gauges. Ack latency is a histogram, observed
once per acked batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from audit_client.breaker import BreakerState
from audit_client.counters import Counters

if TYPE_CHECKING:
    from audit_client.client import AuditClient

ACK_SECONDS = Histogram(
    "auditmesh_audit_client_ack_seconds",
    "Time from sending a batch on the stream to its ack (after the audit-service's commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

_HELP = {
    "emitted": "Events accepted by emit().",
    "acked": "Events the audit-service answered for (stored + duplicates + rejected).",
    "stored": "Events the audit-service stored.",
    "duplicates": "Events the audit-service had stored before (a harmless resend).",
    "rejected": "Events the audit-service rejected as invalid (each logged).",
    "spooled": "Events written to the Redis spool.",
    "replayed": "Events acked after a replay from the Redis spool.",
    "queued": "Events the RabbitMQ broker confirmed (transport amqp); stored from its queue.",
    "dropped": "Events lost under fail_open: audit-service and Redis down, memory full.",
    "spool_lost": "Spooled events Redis lost (restart without them, flush); each logged at ERROR.",
    "disk_spooled": "Events written to the local disk spool (audit-service and Redis down).",
    "recovered": "Events found in the disk spool at start (moved to Redis, then replayed).",
    "refused": "emit() calls refused under fail_closed (AuditUnavailable).",
    "batches_sent": "Batches sent on the stream.",
    "stream_failures": "Streams that failed and were reopened.",
}
COUNTER_NAMES = tuple(f.name for f in dataclasses.fields(Counters))


class _Collector(Collector):
    """Counters and state of every running client of this process."""

    def __init__(self) -> None:
        self.clients: list[AuditClient] = []
        self.retired = Counters()  # what closed clients counted: counters never go back

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = [c.stats() for c in list(self.clients)]
        for name in COUNTER_NAMES:
            yield CounterMetricFamily(
                f"auditmesh_audit_client_{name}",
                _HELP.get(name, f"Audit client count: {name}."),
                value=getattr(self.retired, name) + sum(int(getattr(s, name)) for s in stats),
            )
        gauges = {
            "buffered_events": ("Events in memory, not yet sent.", "buffered"),
            "in_flight_batches": ("Batches sent and awaiting their ack.", "in_flight"),
            "spool_depth_batches": ("Batches in the Redis spool when last seen.", "spool_depth"),
            "disk_segments": ("Segment files in the disk spool.", "disk_segments"),
        }
        for metric, (text, field) in gauges.items():
            yield GaugeMetricFamily(
                f"auditmesh_audit_client_{metric}",
                text,
                value=sum(int(getattr(s, field)) for s in stats),
            )
        breaker = GaugeMetricFamily(
            "auditmesh_audit_client_breaker_state",
            "Clients whose circuit breaker is in each state (1 = open: events go to the spool).",
            labels=["state"],
        )
        for state in BreakerState:
            breaker.add_metric([str(state)], sum(1 for s in stats if s.breaker == str(state)))
        yield breaker


_COLLECTOR = _Collector()
REGISTRY.register(_COLLECTOR)


def track(client: AuditClient) -> None:
    """Show the client in /metrics until `untrack` (its start and close do both)."""
    _COLLECTOR.clients.append(client)


def untrack(client: AuditClient) -> None:
    """Stop showing the client's state; its counts stay in the totals."""
    if client in _COLLECTOR.clients:
        _COLLECTOR.clients.remove(client)
        stats = client.stats()
        for name in COUNTER_NAMES:
            setattr(
                _COLLECTOR.retired, name, getattr(_COLLECTOR.retired, name) + getattr(stats, name)
            )
