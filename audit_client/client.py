"""AuditClient: emit() puts an event in memory and returns; background tasks deliver it
over one StreamIngest stream, or spool it in Redis until the audit-service answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

from audit.v2 import event_pb2
from audit_client import metrics
from audit_client.amqp_transport import AmqpTransport
from audit_client.batcher import Batcher
from audit_client.breaker import BreakerState, CircuitBreaker
from audit_client.counters import ClientStats, Counters
from audit_client.disk_spool import DiskSpool
from audit_client.dispatcher import Dispatcher
from audit_client.errors import (
    AuditClientError,
    AuditUnavailable,
    ClientClosed,
    InvalidEvent,
    TransportError,
)
from audit_client.ids import new_id
from audit_client.ledger import SpoolLedger
from audit_client.outbox import Outbox, wait_until
from audit_client.replay import Replayer
from audit_client.settings import AMQP, GRPC, ClientSettings
from audit_client.spool import RedisSpool
from audit_client.spooler import Spooler
from audit_client.transport import GrpcTransport, Transport
from audit_client.witness import LogInconsistent, LogWitness, Trusted, load_public_key

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
STOP_TIMEOUT = 5.0


class AuditClient:
    """Ships audit events to the audit-service; see the package README for guarantees.

    `async with AuditClient(settings) as client: await client.emit(event)`, or call
    `start()` and `aclose()` yourself. Use it from one event loop.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        s = settings
        self._counters = Counters()
        self._outbox = Outbox()
        self._batcher = Batcher(
            max_events=s.max_batch_events,
            max_bytes=s.max_batch_bytes,
            max_age=s.max_batch_age_seconds,
        )
        self._breaker = CircuitBreaker(
            failure_threshold=s.breaker_failure_threshold,
            reset_seconds=s.breaker_reset_seconds,
            backoff_initial_seconds=s.backoff_initial_seconds,
            max_seconds=s.backoff_max_seconds,
        )
        self._high_water = s.max_buffered_events // 2
        self._opened = asyncio.Event()  # the open batch went from empty to one event
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> AuditClient:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the background tasks. Never waits for the network: a service or Redis
        that is down at start is handled like one that goes down later."""
        if self._runner is not None:
            raise ClientClosed("the client was already started")
        s = self.settings
        self._spool = RedisSpool(
            s.redis_url,
            s.spool_key,
            timeout=s.redis_timeout_seconds,
            max_batches=s.spool_max_batches,
        )
        grpc_transport = (
            GrpcTransport(s.target, s.tls_files, connect_timeout=s.connect_timeout_seconds)
            if s.transport == GRPC or s.log_public_key_file
            else None
        )
        self._transport: Transport
        if s.transport == AMQP:
            self._transport = AmqpTransport(
                s.amqp_url, s.amqp_exchange, connect_timeout=s.connect_timeout_seconds
            )
        else:
            assert grpc_transport is not None
            self._transport = grpc_transport
        self._grpc = grpc_transport
        self._witness = (
            LogWitness(
                grpc_transport,
                load_public_key(s.log_public_key_file),
                Path(s.witness_state_file) if s.witness_state_file else None,
            )
            if s.log_public_key_file and grpc_transport is not None
            else None
        )
        ledger = SpoolLedger()
        self._disk = DiskSpool(Path(s.disk_spool_dir)) if s.disk_spool_dir else None
        if self._disk is not None:
            batches, events = await asyncio.to_thread(self._disk.open)
            self._counters.recovered = events
            if batches:
                log.info(
                    "recovered %d audit events (%d batches) from the disk spool %s;"
                    " they go to the Redis spool as soon as it answers",
                    events,
                    batches,
                    self._disk.directory,
                )
        self._replayer = Replayer(
            self._spool,
            self._outbox,
            ledger,
            window=s.max_in_flight_batches,
            poll_seconds=s.spool_poll_seconds,
        )
        self._spooler = Spooler(
            self._spool,
            self._outbox,
            self._breaker,
            self._counters,
            ledger,
            self._disk,
            owner=str(new_id()),
            high_water_events=self._high_water,
            max_batches=s.spool_max_batches,
            poll_seconds=s.spool_poll_seconds,
            lease_seconds=s.replay_lease_seconds,
        )
        self._dispatcher = Dispatcher(
            self._transport,
            self._outbox,
            self._replayer,
            self._breaker,
            self._counters,
            max_in_flight=s.max_in_flight_batches,
            ack_timeout=s.ack_timeout_seconds,
        )
        self._runner = asyncio.create_task(self._run(), name="audit-client")
        metrics.track(self)

    async def _run(self) -> None:
        workers: dict[str, Callable[[], Awaitable[None]]] = {
            "dispatcher": self._dispatcher.run,
            "replayer": self._replayer.run,
            "spiller": self._spooler.spill_loop,
            "spool-watch": self._spooler.watch_loop,
            "age-sealer": self._seal_by_age,
        }
        if self._witness is not None:
            workers["log-witness"] = self._witness_loop
        async with asyncio.TaskGroup() as tasks:
            for name, work in workers.items():
                tasks.create_task(_supervised(name, work), name=f"audit-client-{name}")

    async def emit(self, event: event_pb2.AuditEvent) -> str:
        """Queue one event and return its event_id, without waiting for the network.

        Sets `event_id` (a UUIDv7) and `event_time` (now) on `event` when they are empty;
        the client keeps a copy, so the message may be reused afterwards (clear its
        event_id first, or the copy is stored only once). Raises AuditUnavailable under
        fail_closed when the event can be neither delivered nor spooled.
        """
        if self._runner is None or self._closing:
            raise ClientClosed("emit() needs a started, open client")
        if not isinstance(event, event_pb2.AuditEvent):
            raise InvalidEvent(f"expected audit.v2.AuditEvent, got {type(event).__name__}")
        if not event.event_id:
            event.event_id = new_id.text()
        if not event.HasField("event_time"):
            micros = time.time_ns() // 1000  # GetCurrentTime's value, without a datetime
            stamp = event.event_time
            stamp.seconds, stamp.nanos = micros // 1_000_000, micros % 1_000_000 * 1000
        size = event.ByteSize()
        if size > self.settings.max_batch_bytes - 64:
            raise InvalidEvent(f"event {event.event_id} is {size} bytes; too large to send")
        o = self._outbox
        if self._breaker.state is not BreakerState.CLOSED and not o.spool_available:
            if self.settings.fail_closed and self._disk is None:
                self._counters.refused += 1
                raise AuditUnavailable(
                    "AUDIT_AND_SPOOL_UNAVAILABLE", "neither the audit-service nor Redis answers"
                )
        if o.buffered_events + self._batcher.pending >= self.settings.max_buffered_events:
            if self.settings.fail_closed:
                self._counters.refused += 1
                raise AuditUnavailable("BUFFER_FULL", "the audit client's buffer is full")
            self._counters.emitted += 1
            self._drop(event, "the buffer is full")
            await asyncio.sleep(0)  # let the sender and spooler make room
            return event.event_id
        self._counters.emitted += 1
        sealed = self._batcher.add(event, size)
        if self._batcher.pending == 1:
            self._opened.set()
        for batch in sealed:
            o.put(batch)
        if sealed or o.buffered_events >= self._high_water:
            # Let the sender and spooler run: a tight emit loop must not starve them,
            # least of all when memory fills up.
            await asyncio.sleep(0)
        return event.event_id

    def _drop(self, event: event_pb2.AuditEvent, why: str) -> None:
        self._counters.dropped += 1
        # The log line is the last record of this event, so it names it.
        log.warning(
            "audit event dropped (%s): event_id=%s event_type=%s user_id=%s action=%s result=%s",
            why,
            event.event_id,
            event.event_type,
            event.user_id,
            event.action,
            event.result,
        )

    def _seal(self) -> int:
        """Seal the open batch; return the seq of the newest batch (for flush)."""
        batch = self._batcher.seal()
        if batch is not None:
            self._outbox.put(batch)
        return self._batcher.sealed

    async def _seal_by_age(self) -> None:
        while True:
            await wait_until(self._opened, lambda: self._batcher.pending > 0)
            delay = self._batcher.deadline - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self._seal()

    async def check_log(self) -> Trusted:
        """Check the audit log's newest checkpoint against the last one this client
        trusted (audit_client.witness); LogInconsistent names what failed,
        TransportError when the audit-service does not answer."""
        if self._runner is None or self._witness is None:
            raise AuditClientError("check_log() needs a started client with log_public_key_file")
        return await self._witness.check()

    async def _witness_loop(self) -> None:
        assert self._witness is not None
        while True:
            try:
                trusted = await self._witness.check()
                log.debug("audit log %s checked at size %d", trusted.origin, trusted.size)
            except LogInconsistent as exc:
                log.error("the audit log failed the client-side witness check: %s", exc)
            except TransportError as exc:
                log.info("audit log checkpoint not checked this time: %s", exc)
            await asyncio.sleep(self.settings.witness_interval_seconds)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event emitted so far is acknowledged, spooled or dropped.

        Raises TimeoutError after `timeout` seconds (None: wait as long as it takes).
        """
        if self._runner is None:
            raise ClientClosed("flush() needs a started client")
        seq = self._seal()
        async with asyncio.timeout(timeout):
            await self._outbox.wait_settled(seq)

    async def aclose(self) -> None:
        """Flush (up to `close_timeout_seconds`), stop, and release Redis and the channel.

        Events still in memory after the timeout are spooled if Redis answers, otherwise
        dropped, counted and logged.
        """
        if self._runner is None or self._closing:
            return
        self._closing = True
        deadline = time.monotonic() + self.settings.close_timeout_seconds
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout=self.settings.close_timeout_seconds)
        # Let replayed batches in flight be acknowledged, so they are not sent again.
        self._dispatcher.accepting = False
        self._outbox.changed.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await wait_until(self._outbox.changed, lambda: self._dispatcher.in_flight == 0)
        self._runner.cancel()
        await asyncio.wait([self._runner], timeout=STOP_TIMEOUT)
        if not self._runner.done():
            log.error("audit client tasks did not stop within %s s; closing anyway", STOP_TIMEOUT)
        if (
            len(self._outbox)
            and not await self._spooler.spill(everything=True)
            and not (self._disk is not None and await self._spooler.spill_to_disk(everything=True))
        ):
            for batch in self._outbox.take(len(self._outbox)):
                for event in batch.request.events:
                    self._drop(event, "closing while neither the audit-service nor Redis answers")
                self._outbox.settle([batch])
        await self._spooler.release()
        await self._spool.aclose()
        await self._transport.aclose()
        if self._grpc is not None and self._grpc is not self._transport:
            await self._grpc.aclose()  # the witness's channel
        metrics.untrack(self)
        log.info("audit client closed: %s", self.stats().as_dict())

    def stats(self) -> ClientStats:
        """A snapshot of the counters and state (see ClientStats)."""
        c, o, b = self._counters, self._outbox, self._breaker
        return ClientStats(
            emitted=c.emitted,
            acked=c.acked,
            stored=c.stored,
            duplicates=c.duplicates,
            rejected=c.rejected,
            spooled=c.spooled,
            replayed=c.replayed,
            dropped=c.dropped,
            spool_lost=c.spool_lost,
            disk_spooled=c.disk_spooled,
            recovered=c.recovered,
            refused=c.refused,
            batches_sent=c.batches_sent,
            stream_failures=c.stream_failures,
            queued=c.queued,
            buffered=o.buffered_events + self._batcher.pending,
            in_flight=self._dispatcher.in_flight if self._runner else 0,
            spool_depth=o.spool_depth,
            disk_segments=self._spooler.disk_segments if self._runner else 0,
            spool_available=o.spool_available,
            spooling=o.spill_mode,
            replaying=o.replaying,
            breaker=str(b.state),
            breaker_opened=b.entered[BreakerState.OPEN],
            breaker_half_opened=b.entered[BreakerState.HALF_OPEN],
            breaker_closed=b.entered[BreakerState.CLOSED],
        )


async def _supervised(name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run a worker forever; a bug in one is logged and the worker restarted, so emit()
    keeps its promise (never raising under fail_open) even then."""
    while True:
        try:
            await work()
        except Exception:
            log.exception("audit client task %s failed; restarting it", name)
            await asyncio.sleep(RESTART_DELAY)
