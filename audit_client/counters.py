"""What the client has done so far, for metrics and for tests that check what happened."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Counters:
    """Monotonic event and batch counts, updated by the client's tasks."""

    emitted: int = 0
    acked: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0
    spool_lost: int = 0
    disk_spooled: int = 0
    recovered: int = 0
    refused: int = 0
    batches_sent: int = 0
    stream_failures: int = 0
    queued: int = 0


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of the client (`AuditClient.stats()`).

    Event counts: `emitted` events were accepted by emit(); the audit-service answered for
    `acked` of them (= `stored` + `duplicates` + `rejected`), `replayed` of those from the
    Redis spool; `spooled` were written to the spool; `dropped` were lost under fail_open
    (each one logged); `spool_lost` were spooled, then lost by Redis (a restart without
    them, a flush; logged at ERROR with their range); `disk_spooled` were written to
    the disk spool, `recovered` were found there at start; `refused` emit() calls
    raised AuditUnavailable under fail_closed; `queued` were confirmed by the RabbitMQ
    broker (`transport = amqp`: the audit-service stores them from its queue, so
    `acked` stays 0).
    A replaying client also acks events other processes spooled on the same key.

    State: `buffered` events in memory, `in_flight` batches awaiting an ack,
    `spool_depth` batches in the Redis list when last seen, `disk_segments` segment
    files in the disk spool, `spool_available` whether
    Redis answered last time, `spooling` whether new batches go to the spool (until it
    is seen empty, so they do not overtake spooled ones), `replaying` whether this
    process holds the replay lease, `breaker` closed / open / half_open and how often
    it entered each state.
    """

    emitted: int
    acked: int
    stored: int
    duplicates: int
    rejected: int
    spooled: int
    replayed: int
    dropped: int
    spool_lost: int
    disk_spooled: int
    recovered: int
    refused: int
    batches_sent: int
    stream_failures: int
    queued: int
    buffered: int
    in_flight: int
    spool_depth: int
    disk_segments: int
    spool_available: bool
    spooling: bool
    replaying: bool
    breaker: str
    breaker_opened: int
    breaker_half_opened: int
    breaker_closed: int

    def as_dict(self) -> dict[str, int | bool | str]:
        """The snapshot as a plain dict (for JSON or a metrics exporter)."""
        return asdict(self)
