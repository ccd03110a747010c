"""One ingest stream, pipelined: batches are read and committed while earlier acks
are sent, acks leave in the order the batches came, and the service's event budget
bounds what is read ahead (a reader waits for room before taking the next batch).
A malformed batch is answered event by event, as rejections; the stream goes on.

Draining (on shutdown, `Ingestor.drain()`): the stream stops reading, the batches it
already read are committed and acked, then it ends with ShuttingDown (UNAVAILABLE):
the client resends whatever was not acked, to the next replica or after the restart.
So a shutdown waits about one group commit, not for streams that never end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from audit_svc.access import Principal
from audit_svc.errors import InvalidArgument, ShuttingDown
from audit_svc.ingest.ingestor import EventBudget, Ingestor
from audit_svc.ingest.validation import INPUTS, RawEvent, Wire
from audit_svc.model import EventResult, FieldViolation, Outcome

# Batches of one stream being committed at once; more wait in the transport.
MAX_IN_FLIGHT = 64
Received = TypeVar("Received")


class _Drained:
    """Queued after the batches read before a drain began."""


DRAINED = _Drained()


@dataclass(slots=True)
class StreamBatch:
    """A batch as it came off a stream; an empty `batch_id` is refused."""

    batch_id: str
    events: Sequence[RawEvent]
    # Its bytes as received (for the write quota); None: estimated.
    size: int | None = None
    wire: Wire = INPUTS  # how the ingest pass reads the events' details and times


@dataclass(slots=True)
class BatchAck:
    """The answer to one batch: one result per event, in order."""

    batch_id: str
    results: list[EventResult]


async def ingest_stream(
    ingestor: Ingestor,
    principal: Principal,
    received: AsyncIterable[Received],
    to_batch: Callable[[Received], StreamBatch],
    max_in_flight: int = MAX_IN_FLIGHT,
) -> AsyncIterator[BatchAck]:
    """The ack of each batch `received` from `principal` (each made a `StreamBatch` by
    `to_batch`, the transport's conversion), in order, each after its commit."""
    in_flight: asyncio.Queue[asyncio.Task[BatchAck] | _Drained | None] = asyncio.Queue(
        max_in_flight
    )
    budget = ingestor.budget

    async def read() -> None:
        try:
            async for message in received:
                batch = to_batch(message)
                size = len(batch.events)
                await budget.take(size)
                task = asyncio.create_task(_ack(ingestor, principal, batch))
                task.add_done_callback(functools.partial(_give_back, budget, size))
                await in_flight.put(task)
        finally:
            await in_flight.put(None)

    async def stop_reading() -> None:
        await ingestor.draining.wait()
        reader.cancel()
        # After every batch already read: those are acked first. (A gRPC read may not
        # end at once on cancel; what it still hands over is left unacked: resent.)
        await in_flight.put(DRAINED)

    reader = asyncio.create_task(read())
    stopper = asyncio.create_task(stop_reading())
    try:
        while (task := await in_flight.get()) is not None:
            if isinstance(task, _Drained):
                raise ShuttingDown("the audit-service is shutting down; reconnect and resend")
            yield await task
        await reader  # surfaces a read error, if any
    finally:
        reader.cancel()
        stopper.cancel()
        while not in_flight.empty():
            if isinstance(task := in_flight.get_nowait(), asyncio.Task):
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        with contextlib.suppress(asyncio.CancelledError):
            await stopper


def _give_back(budget: EventBudget, events: int, _: object) -> None:
    budget.give(events)


async def _ack(ingestor: Ingestor, principal: Principal, batch: StreamBatch) -> BatchAck:
    try:
        if not batch.batch_id:
            raise InvalidArgument([FieldViolation("batch_id", "is required")])
        results = await ingestor.ingest(batch.events, principal, size=batch.size, wire=batch.wire)
    except InvalidArgument as exc:
        results = [
            EventResult(i, raw.event_id, Outcome.REJECTED, None, exc.reason, exc.violations)
            for i, raw in enumerate(batch.events)
        ]
    return BatchAck(batch.batch_id, results)
