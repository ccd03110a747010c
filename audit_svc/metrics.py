"""The audit-service's Prometheus metrics (served on AUDIT_METRICS_LISTEN).

Counted where they happen, once per batch or group (never per event): ingest
results, group sizes and commit times, verify results. Read at scrape time from the
running app (`ServiceState`): queue depth and age, the chain head, sink failures.
Sink lag and the newest checkpoint need PostgreSQL, so `refresh` reads them every
AUDIT_METRICS_REFRESH_SECONDS into the same state. gRPC calls per method and code
(Query, GetStatistics... latency) come from meshkit.metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from meshkit.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from audit_svc.ingest.appender import Appender
    from audit_svc.sinks import Sinks
    from audit_svc.storage.protocols import SinkStore

log = logging.getLogger(__name__)

INGEST_EVENTS = Counter(
    "auditmesh_ingest_events_total",
    "Events answered by the audit-service, by result: stored, duplicate (stored "
    "before), rejected (invalid), failed (not committed; the caller retries).",
    ["result"],
)
INGEST_BATCHES = Counter(
    "auditmesh_ingest_batches_total",
    "Batches answered, by result: ok (every event stored or duplicate), partial "
    "(some rejected), refused (the batch as a whole), failed (not committed).",
    ["result"],
)
STORED, DUPLICATE, REJECTED, FAILED = (
    INGEST_EVENTS.labels(r) for r in ("stored", "duplicate", "rejected", "failed")
)
BATCH_OK, BATCH_PARTIAL, BATCH_REFUSED, BATCH_FAILED = (
    INGEST_BATCHES.labels(r) for r in ("ok", "partial", "refused", "failed")
)
EVENT_ID_CONFLICTS = Counter(
    "auditmesh_ingest_event_id_conflicts_total",
    "Events rejected as EVENT_ID_CONFLICT: a stored event_id sent again by another "
    "writer or with other content (each also logged as a warning).",
)
WRITE_QUOTA_EXCEEDED = Counter(
    "auditmesh_write_quota_exceeded_total",
    "Batches refused as WRITE_QUOTA_EXCEEDED (RESOURCE_EXHAUSTED), by principal and "
    "by the limit hit (events or bytes per second).",
    ["principal", "limit"],
)
WATCHERS_REFUSED = Counter(
    "auditmesh_watchers_refused_total",
    "Watch calls refused as TOO_MANY_WATCHERS, by the limit hit (caller or total).",
    ["limit"],
)
WATCHERS_DROPPED = Counter(
    "auditmesh_watchers_dropped_total",
    "Watchers ended as WATCHER_FELL_BEHIND (more than AUDIT_WATCH_QUEUE_EVENTS behind).",
)
GROUP_EVENTS = Histogram(
    "auditmesh_appender_group_events",
    "Events per group commit.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
COMMIT_SECONDS = Histogram(
    "auditmesh_appender_commit_seconds",
    "Time to write one group (COPY and commit).",
    buckets=LATENCY_BUCKETS,
)
FORWARDED = Counter(
    "auditmesh_forwarder_events_total",
    "Events a forwarder (syslog, webhook) sent (for syslog: written, confirmed later) or "
    "gave up on (dead_lettered).",
    ["sink", "result"],
)
VERIFY = Counter(
    "auditmesh_verify_total",
    "Chain verifications, by result: ok, failed (a bad event or checkpoint), error.",
    ["result"],
)
VERIFY_OK, VERIFY_FAILED, VERIFY_ERROR = (VERIFY.labels(r) for r in ("ok", "failed", "error"))
AMQP_MESSAGES = Counter(
    "auditmesh_amqp_messages_total",
    "RabbitMQ ingest messages, by result: acked (every event stored or duplicate), "
    "partial (acked, some events dead-lettered), dead_lettered (acked, the whole "
    "message dead-lettered), retried (a commit failed; kept unacked and tried again).",
    ["result"],
)
AMQP_ACKED, AMQP_PARTIAL, AMQP_DEAD, AMQP_RETRIED = (
    AMQP_MESSAGES.labels(r) for r in ("acked", "partial", "dead_lettered", "retried")
)
AMQP_DEAD_LETTERS = Counter(
    "auditmesh_amqp_dead_letters_total",
    "Messages published to the dead-letter queue: one per rejected event, or the "
    "whole message when it cannot be read or its publisher may not write.",
)


@dataclass
class QueueStatus:
    """The RabbitMQ consumer's state (audit_svc.api.amqp_consumer), for /metrics and
    Health; `ready` and `dead` are read from the broker every second or so."""

    queue: str
    connected: bool = False
    ready: int = 0  # messages waiting in the queue (the consumer's lag)
    unacked: int = 0  # delivered to this replica and not yet acked
    dead: int = 0  # messages in the dead-letter queue
    last_error: str = ""


@dataclass
class ServiceState:
    """What a running audit-service shows at scrape time; `lags` and `checkpoint`
    are refreshed from PostgreSQL by `refresh`."""

    store: SinkStore
    appender: Appender
    sinks: Sinks
    lags: dict[str, tuple[int, float]] = field(default_factory=dict)
    checkpoint: tuple[int, float] | None = None  # seq, unix time of the newest one
    amqp: QueueStatus | None = None  # the RabbitMQ consumer, when AUDIT_AMQP_URL is set


class _Collector(Collector):
    """Gauges of every ServiceState of this process (tests run several), by chain."""

    def __init__(self) -> None:
        self.states: list[ServiceState] = []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        queue = GaugeMetricFamily(
            "auditmesh_appender_queue_events",
            "Events accepted and not yet committed.",
            labels=["chain"],
        )
        age = GaugeMetricFamily(
            "auditmesh_appender_queue_age_seconds",
            "How long the oldest waiting batch has waited.",
            labels=["chain"],
        )
        head = GaugeMetricFamily(
            "auditmesh_chain_head_seq", "Seq of the chain's last committed event.", labels=["chain"]
        )
        lag_events = GaugeMetricFamily(
            "auditmesh_sink_lag_events",
            "Committed events a sink has not handled.",
            labels=["chain", "sink"],
        )
        lag_seconds = GaugeMetricFamily(
            "auditmesh_sink_lag_seconds",
            "How stale a sink is (checkpoints: age of the newest one while events wait).",
            labels=["chain", "sink"],
        )
        failures = CounterMetricFamily(
            "auditmesh_sink_failures",
            "Failed steps of a sink (each retried).",
            labels=["chain", "sink"],
        )
        cp_seq = GaugeMetricFamily(
            "auditmesh_checkpoint_last_seq",
            "Seq of the newest signed checkpoint.",
            labels=["chain"],
        )
        cp_time = GaugeMetricFamily(
            "auditmesh_checkpoint_last_timestamp_seconds",
            "Unix time of the newest signed checkpoint (age: time() - this).",
            labels=["chain"],
        )
        amqp = {
            name: GaugeMetricFamily(f"auditmesh_amqp_{name}", text, labels=["queue"])
            for name, text in (
                ("connected", "1 while the RabbitMQ consumer is connected and consuming."),
                ("queue_messages", "Messages waiting in the ingest queue (consumer lag)."),
                ("unacked_messages", "Messages delivered to this replica, not yet acked."),
                ("dead_letter_messages", "Messages in the dead-letter queue."),
            )
        }
        for s in list(self.states):
            if (q := s.amqp) is not None:
                for name, value in (
                    ("connected", int(q.connected)),
                    ("queue_messages", q.ready),
                    ("unacked_messages", q.unacked),
                    ("dead_letter_messages", q.dead),
                ):
                    amqp[name].add_metric([q.queue], value)
            chain = s.appender.chain_id
            queue.add_metric([chain], s.appender.queue_depth)
            age.add_metric([chain], s.appender.lag_seconds)
            head.add_metric([chain], s.appender.head_seq)
            for name, runner in s.sinks.runners.items():
                failures.add_metric([chain, name], runner.failures)
            for name, (events, seconds) in s.lags.items():
                lag_events.add_metric([chain, name], events)
                lag_seconds.add_metric([chain, name], seconds)
            if s.checkpoint is not None:
                cp_seq.add_metric([chain], s.checkpoint[0])
                cp_time.add_metric([chain], s.checkpoint[1])
        yield from (queue, age, head, lag_events, lag_seconds, failures, cp_seq, cp_time)
        yield from amqp.values()


_COLLECTOR = _Collector()
REGISTRY.register(_COLLECTOR)


def track(state: ServiceState) -> None:
    """Show `state` in /metrics until `untrack`."""
    _COLLECTOR.states.append(state)


def untrack(state: ServiceState) -> None:
    if state in _COLLECTOR.states:
        _COLLECTOR.states.remove(state)


async def refresh(state: ServiceState, every_seconds: float) -> None:
    """Read the chain head, sink lag and the newest checkpoint from PostgreSQL every
    `every_seconds`, until cancelled. A failed read keeps the last values (logged)."""
    chain = state.appender.chain_id
    while True:
        try:
            head = await state.store.head_seq(chain)
            last = await state.store.last_checkpoint(chain)
            state.appender.head_seq = max(state.appender.head_seq, head)
            if last is not None:
                state.checkpoint = (last.seq, last.checkpoint_time.timestamp())
            states = await state.sinks.states()
            state.lags = {k.name: (k.lag_events, k.lag_seconds) for k in states}
        except Exception as exc:
            log.warning("metrics refresh failed (values kept): %s", exc)
        await asyncio.sleep(every_seconds)


def count_batch(rejected: int, *, refused: bool = False) -> None:
    """Count one answered batch, `rejected` of its events invalid (the stored and
    duplicate ones are counted by the appender, per group); `refused`: as a whole."""
    (BATCH_REFUSED if refused else BATCH_PARTIAL if rejected else BATCH_OK).inc()
    if rejected:
        REJECTED.inc(rejected)


def count_conflicts(events: int) -> None:
    """Count events rejected as EVENT_ID_CONFLICT (also counted as rejected)."""
    if events:
        EVENT_ID_CONFLICTS.inc(events)


def count_over_quota(principal: str, limit: str) -> None:
    """Count a batch refused for its principal's write quota (also a refused batch)."""
    WRITE_QUOTA_EXCEEDED.labels(principal, limit).inc()
    BATCH_REFUSED.inc()


def count_failed(events: int) -> None:
    """Count a batch whose `events` valid events were not committed."""
    BATCH_FAILED.inc()
    FAILED.inc(events)
