"""Ingest: one pass over a batch checks each event and makes the valid ones ready for
the chain (ingest.validation.admit), the appender commits them, and each event gets
its result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from audit_svc import metrics
from audit_svc.access import Policy, Principal
from audit_svc.access.policy import WriterGrant
from audit_svc.errors import EventIdConflict, InvalidArgument, PermissionDenied
from audit_svc.ingest.appender import Appender
from audit_svc.ingest.idempotency import StoredById, bind_duplicates
from audit_svc.ingest.quota import WriteQuotas
from audit_svc.ingest.validation import (
    INPUTS,
    RawEvent,
    Rules,
    SealHook,
    Wire,
    admit,
    validate_batch_size,
)
from audit_svc.model import Event, EventResult, Outcome, ready_event

# What an event weighs against the bytes quota when the entry point does not say.
ESTIMATED_EVENT_BYTES = 400


class BatchSealer(Protocol):
    """What seals a batch's personal fields (audit_svc.privacy.Sealer)."""

    async def for_batch(self, user_ids: Iterable[str]) -> SealHook: ...


class EventBudget:
    """How many events the service holds between reading a batch off a stream and
    answering it. A reader waits for room before taking the next batch, so many
    producers meet back-pressure (HTTP/2 flow control) instead of growing the service:
    its memory is bounded by the budget, not by streams x batches in flight."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._freed = asyncio.Event()

    async def take(self, events: int) -> None:
        """Wait until `events` fit (a batch larger than the budget goes in alone)."""
        while self.held and self.held + events > self.limit:
            self._freed.clear()
            await self._freed.wait()
        self.held += events

    def give(self, events: int) -> None:
        self.held -= events
        self._freed.set()


class Ingestor:
    """The one entry to the write path for gRPC unary, batch, stream and REST."""

    def __init__(
        self,
        appender: Appender,
        policy: Policy,
        store: StoredById,
        *,
        max_clock_skew: timedelta,
        max_event_age: timedelta,
        quotas: WriteQuotas,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sealer: BatchSealer | None = None,
    ) -> None:
        # Seals personal fields before the bytes are hashed (audit_svc.privacy).
        self._sealer = sealer
        self._appender = appender
        self._policy = policy
        self._store = store
        self._skew = max_clock_skew
        self._max_age = max_event_age
        self.quotas = quotas
        self._clock = clock
        # Bounded as the appender's queue is: nothing read ahead waits beyond it.
        self.budget = EventBudget(appender.max_queue_events)
        # Set on shutdown: streams stop reading and end once their acks are out.
        self.draining = asyncio.Event()
        # Told of each EVENT_ID_CONFLICT (the event sent, the one stored): the app
        # records a security.event_id_conflict event (read.audited.ServiceEvents).
        self.on_conflict: Callable[[Event, Event], None] | None = None

    def drain(self) -> None:
        """Shutting down: every stream stops reading new batches (see ingest.stream)."""
        self.draining.set()

    async def ingest(
        self,
        inputs: Sequence[RawEvent],
        principal: Principal,
        *,
        size: int | None = None,
        wire: Wire = INPUTS,
    ) -> list[EventResult]:
        """Store the valid events, each recording `principal`; one result per input, in
        order, after the commit. `wire` reads the events' details and times (the
        transport's: `EventInput`s by default).

        A batch over the size limit is refused as a whole (INVALID_ARGUMENT), and so is
        any batch of a principal the policy lets write nothing (PERMISSION_DENIED) or
        over its write quota (RESOURCE_EXHAUSTED, WRITE_QUOTA_EXCEEDED; `size` is the
        batch's bytes as received);
        inside a batch, each invalid event, and each event outside the principal's
        grant (SERVICE_MISMATCH, EVENT_TYPE_MISMATCH), each event older than the
        window of a writer that may not backfill (EVENT_TIME_TOO_OLD), and each reuse of a stored
        event_id by another writer or for other content (EVENT_ID_CONFLICT), is
        rejected by index and the rest are stored.
        """
        if problems := validate_batch_size(len(inputs)):
            metrics.count_batch(len(inputs), refused=True)
            raise InvalidArgument(problems, reason="BATCH_TOO_LARGE")
        grant = self._policy.writer_grant(principal)
        if grant is None:
            metrics.count_batch(len(inputs), refused=True)
            raise PermissionDenied(
                f"{principal.name} may not write audit events (audit_svc/policy.toml)",
                reason="NOT_A_WRITER",
                metadata={"principal": principal.name},
            )
        self.take_quota(principal, grant, len(inputs), size)
        seal = None
        if self._sealer is not None:
            seal = await self._sealer.for_batch(raw.user_id for raw in inputs)
        rules = Rules(
            seal=seal,
            now=self._clock(),
            max_skew=self._skew,
            max_age=None if grant.backfill else self._max_age,
            grant=grant,
            chain_id=self._appender.chain_id,
            principal=principal.name,
        )
        batch = admit(inputs, wire, rules)
        try:
            outcomes = await self._appender.submit(batch.ready)
        except Exception:
            metrics.count_failed(len(batch.ready))
            raise
        results = batch.rejected
        duplicates = []
        for index, ready, (outcome, receipt) in zip(
            batch.indexes, batch.ready, outcomes, strict=True
        ):
            results[index] = EventResult(index, ready.event_id, outcome, receipt)
            if outcome is Outcome.DUPLICATE:
                sent_time = wire.event_time(inputs[index]) is not None
                duplicates.append((index, ready_event(ready), sent_time))
        conflicts = await bind_duplicates(results, duplicates, self._store)
        metrics.count_conflicts(len(conflicts))
        metrics.count_batch(len(inputs) - len(batch.ready) + len(conflicts))
        if self.on_conflict is not None:
            for sent, stored in conflicts:
                self.on_conflict(sent, stored)
        return [results[i] for i in range(len(inputs))]

    def take_quota(
        self, principal: Principal, grant: WriterGrant, events: int, size: int | None
    ) -> None:
        """Take a batch of `events` (`size` bytes as received; None: estimated) from the
        principal's write quota, or raise WriteQuotaExceeded (RESOURCE_EXHAUSTED)."""
        self.quotas.take(
            principal.name,
            events,
            size if size is not None else events * ESTIMATED_EVENT_BYTES,
            events_per_second=grant.events_per_second,
            bytes_per_second=grant.bytes_per_second,
        )

    async def ingest_one(
        self, raw: RawEvent, principal: Principal, *, size: int | None = None, wire: Wire = INPUTS
    ) -> EventResult:
        """Store one event; an invalid one is an INVALID_ARGUMENT error, one outside
        the principal's grant PERMISSION_DENIED, not a result."""
        (result,) = await self.ingest([raw], principal, size=size, wire=wire)
        if result.outcome is Outcome.REJECTED and result.denied:
            message = "; ".join(f"{v.field}: {v.description}" for v in result.violations)
            raise PermissionDenied(message, reason=result.reason, violations=result.violations)
        if result.outcome is Outcome.REJECTED and result.conflict:
            raise EventIdConflict(result.violations[0].description, violations=result.violations)
        if result.outcome is Outcome.REJECTED:
            raise InvalidArgument(result.violations, reason=result.reason)
        return result
