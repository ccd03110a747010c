"""The dispatcher: keeps one StreamIngest stream open, sends batches (spooled ones first,
then direct ones) with a bounded number in flight, matches each ack to its batch, and on
any failure ends the stream and hands the unacknowledged batches to the spooler."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import event_pb2
from audit_client.batcher import Batch
from audit_client.breaker import BreakerState, CircuitBreaker
from audit_client.counters import Counters
from audit_client.errors import TransportError
from audit_client.ids import new_id
from audit_client.metrics import ACK_SECONDS
from audit_client.outbox import Outbox, wait_until
from audit_client.replay import Replayer, ReplayItem
from audit_client.transport import IngestStream, Transport

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class _Sent:
    request: pb.StreamIngestRequest
    size: int
    sent_at: float
    batch: Batch | None = None
    replay: ReplayItem | None = None


class _SessionEnded(Exception):
    """The stream failed; `cause` says how."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Dispatcher:
    """See the module docstring. `run` is its task."""

    def __init__(
        self,
        transport: Transport,
        outbox: Outbox,
        replayer: Replayer,
        breaker: CircuitBreaker,
        counters: Counters,
        *,
        max_in_flight: int,
        ack_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._outbox = outbox
        self._replayer = replayer
        self._breaker = breaker
        self._counters = counters
        self._max_in_flight = max_in_flight
        self._ack_timeout = ack_timeout
        self._clock = clock
        self._in_flight: deque[_Sent] = deque()
        # Its acks are a broker's confirms (amqp), not the audit-service's results.
        self._confirms_only = bool(getattr(transport, "confirms_only", False))
        self.accepting = True  # False while closing: send nothing new

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def _direct_allowed(self) -> bool:
        o = self._outbox
        # Ours may be in the spool: direct batches would overtake them. Unless Redis is
        # down, when delivering beats keeping order (see the README).
        return o.spilling_events == 0 and (not o.spill_mode or not o.spool_available)

    def _has_work(self) -> bool:
        o = self._outbox
        direct = len(o) > 0 and self._direct_allowed()
        replay = o.replaying and o.spool_available and o.spool_depth > 0
        # A breaker that is not closed is probed even with nothing to send: a client
        # whose batches another process replays must learn the service is back.
        probe = self._breaker.state is not BreakerState.CLOSED
        return self.accepting and (direct or replay or probe)

    async def run(self) -> None:
        """Connect when there is something to send, as often as the breaker allows."""
        while True:
            await wait_until(self._outbox.changed, self._has_work)
            if (delay := self._breaker.delay()) > 0:
                await asyncio.sleep(delay)
                continue
            self._breaker.allow()
            try:
                stream = await self._transport.open()
            except TransportError as exc:
                self._failed(exc)
                continue
            try:
                await self._session(stream)
            except _SessionEnded as ended:
                self._failed(ended.cause)
            finally:
                stream.cancel()
                self._requeue()

    async def _session(self, stream: IngestStream) -> None:
        self._outbox.stream_live = True
        self._outbox.changed.set()

        async def ending_the_stream(work: Awaitable[None]) -> None:
            # A read pending in gRPC may ignore its task's cancellation until the call
            # ends: whichever task stops first (failure or cancellation) ends the call.
            try:
                await work
            finally:
                stream.cancel()

        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(ending_the_stream(self._write(stream)))
                tasks.create_task(ending_the_stream(self._read(stream)))
                tasks.create_task(ending_the_stream(self._watch_acks()))
        except* TransportError as group:
            raise _SessionEnded(group.exceptions[0]) from None

    def _failed(self, exc: BaseException) -> None:
        self._counters.stream_failures += 1
        was_open = self._breaker.state is not BreakerState.CLOSED
        self._breaker.record_failure()
        log.log(
            logging.INFO if was_open else logging.WARNING,
            "audit stream to %s failed: %s; batches go to the spool until it answers",
            self._transport,
            exc,
        )
        self._outbox.spill_mode = True
        self._outbox.changed.set()

    def _requeue(self) -> None:
        """Batches in flight are older than any in the outbox: back to its front."""
        o = self._outbox
        direct = [s.batch for s in self._in_flight if s.batch is not None]
        self._in_flight.clear()
        o.direct_in_flight = o.direct_in_flight_events = 0
        o.stream_live = False
        self._replayer.reset()
        o.put_back(direct)

    def _can_send(self) -> bool:
        if not self.accepting or self._breaker.is_open:
            return False
        half_open = self._breaker.state is BreakerState.HALF_OPEN
        return len(self._in_flight) < (1 if half_open else self._max_in_flight)

    def _next(self) -> _Sent | None:
        if not self._can_send():
            return None
        if (item := self._replayer.take()) is not None:
            return _Sent(item.request, item.size, self._clock(), replay=item)
        o = self._outbox
        if len(o) and self._direct_allowed():
            (batch,) = o.take(1)
            o.direct_in_flight += 1
            o.direct_in_flight_events += batch.size
            return _Sent(batch.request, batch.size, self._clock(), batch=batch)
        if self._breaker.state is BreakerState.HALF_OPEN and not self._in_flight:
            # Nothing of ours to send: an empty batch proves the service acks again.
            probe = pb.StreamIngestRequest(batch_id=f"probe-{new_id()}")
            return _Sent(probe, 0, self._clock())
        return None

    async def _write(self, stream: IngestStream) -> None:
        changed = self._outbox.changed
        while True:
            sent = self._next()
            if sent is None:
                changed.clear()
                await changed.wait()
                continue
            self._in_flight.append(sent)  # before the write: a failed write is requeued
            await stream.send(sent.request)
            self._counters.batches_sent += 1

    async def _read(self, stream: IngestStream) -> None:
        o = self._outbox
        while True:
            ack = await stream.receive()
            if not self._in_flight or ack.batch_id != self._in_flight[0].request.batch_id:
                expected = self._in_flight[0].request.batch_id if self._in_flight else "none"
                raise TransportError(f"ack for batch {ack.batch_id!r}, expected {expected!r}")
            sent = self._in_flight.popleft()
            ACK_SECONDS.observe(self._clock() - sent.sent_at)
            if self._confirms_only:
                self._counters.queued += sent.size
            else:
                self._count(ack)
            self._breaker.record_success()
            if sent.batch is not None:
                o.direct_in_flight -= 1
                o.direct_in_flight_events -= sent.size
                o.settle([sent.batch])
            elif sent.replay is not None:
                self._counters.replayed += sent.size if self._confirms_only else len(ack.results)
                await self._replayer.acked(sent.replay)
            o.changed.set()

    async def _watch_acks(self) -> None:
        """End the stream when the oldest batch in flight waits too long for its ack."""
        while True:
            if not self._in_flight:
                await wait_until(self._outbox.changed, lambda: bool(self._in_flight))
                continue
            head = self._in_flight[0]
            left = head.sent_at + self._ack_timeout - self._clock()
            if left <= 0:
                raise TransportError(f"no ack within {self._ack_timeout} s")
            await asyncio.sleep(left)

    def _count(self, ack: pb.StreamIngestResponse) -> None:
        c = self._counters
        c.acked += len(ack.results)
        for result in ack.results:
            if result.outcome == event_pb2.OUTCOME_STORED:
                c.stored += 1
            elif result.outcome == event_pb2.OUTCOME_DUPLICATE:
                c.duplicates += 1
            else:
                c.rejected += 1
                log.warning(
                    "audit event %s rejected by the audit-service: %s %s",
                    result.event_id,
                    result.reason,
                    ", ".join(f"{v.field}: {v.description}" for v in result.field_violations),
                )
