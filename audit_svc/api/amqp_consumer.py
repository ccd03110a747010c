"""RabbitMQ ingest: consume the durable quorum queue `AUDIT_AMQP_QUEUE`, each message
an IngestBatchRequest (audit_svc.api.amqp_messages), through the same Ingestor as
gRPC and REST, and ack each message only after its events are committed.

Topology (declared at connect, durable): publishers send to the fanout exchange
`<queue>`, bound to the quorum queue `<queue>`; `<queue>.dead` (exchange and quorum
queue) takes what cannot be stored. The queue's own dead-lettering (a message
delivered `DELIVERY_LIMIT` times, e.g. one that crashes every consumer) goes there too.

- The publisher: the broker checks the `user_id` property against the publishing
  connection's user; `policy.toml`'s `[amqp_users]` maps it to a principal, whose
  writer grant applies as over gRPC (Authenticator.publisher).
- Per message: an unreadable message, or one whose publisher may write nothing, is
  dead-lettered whole; otherwise its valid events are stored and each rejected one
  is dead-lettered with its violations in headers. The dead letters are confirmed by
  the broker before the message is acked, so nothing is lost between the two.
- A commit that fails (database down, lock lost) keeps the message unacked and tries
  it again with backoff: the queue is never blocked by one message, and never
  emptied into the dead-letter queue by an outage.
- Redelivery after a crash or a lost connection is harmless: event ids make the
  second store a DUPLICATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from audit_svc import metrics
from audit_svc.access import Principal
from audit_svc.access.authn import Authenticator
from audit_svc.api import convert
from audit_svc.api.amqp_messages import DeadLetter, Unreadable, dead_letter, decode, encode_one
from audit_svc.errors import InvalidArgument, PermissionDenied, ShuttingDown, Unauthenticated
from audit_svc.ingest.ingestor import Ingestor
from audit_svc.ingest.validation import RawEvent
from audit_svc.metrics import QueueStatus
from audit_svc.model import EventResult, FieldViolation, Outcome
from audit_svc.read.reader import ComponentHealth
from meshkit import amqp

log = logging.getLogger(__name__)

Violations = tuple[FieldViolation, ...]
CONNECT_TIMEOUT = 5.0
POLL_SECONDS = 1.0  # how often the queue depth is read
RETRY_INITIAL_SECONDS = 0.1
# Deliveries after which the broker dead-letters a message itself (x-delivery-limit).
DELIVERY_LIMIT = 20


class AmqpIngest:
    """The consumer; `run` is its task, `stop` ends it after the messages in hand."""

    def __init__(
        self,
        url: str,
        queue: str,
        ingestor: Ingestor,
        authenticator: Authenticator,
        *,
        prefetch: int,
        retry_max_seconds: float,
    ) -> None:
        self._url = url
        self._ingestor = ingestor
        self._authenticator = authenticator
        self._prefetch = prefetch
        self._retry_max = retry_max_seconds
        self.status = QueueStatus(queue)
        self._closing = asyncio.Event()
        self._handling: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def health(self) -> ComponentHealth:
        """The `rabbitmq` component of Health: connected and consuming, and its lag."""
        s = self.status
        detail = (
            f"queue {s.queue}: {s.ready} waiting, {s.unacked} in hand, {s.dead} dead-lettered"
            if s.connected
            else f"not connected: {s.last_error or 'connecting'}"
        )
        return ComponentHealth("rabbitmq", s.connected, detail)

    async def run(self) -> None:
        """Connect, consume, and reconnect with backoff until `stop`."""
        delay = RETRY_INITIAL_SECONDS
        while not self._closing.is_set():
            started = time.monotonic()
            try:
                await self._session()
            except Exception as exc:  # any broker or network failure: reconnect
                self.status.last_error = error = f"{type(exc).__name__}: {exc}"
                log.warning("RabbitMQ consumer of %s: %s", self.status.queue, error)
            self.status.connected = False
            if time.monotonic() - started > self._retry_max:
                delay = RETRY_INITIAL_SECONDS  # it ran for a while: start the backoff again
            await self._pause(delay)
            delay = min(delay * 2, self._retry_max)

    async def stop(self, timeout: float) -> None:
        """Stop taking messages; wait (up to `timeout`) until those in hand are
        committed and acked. What is still unacked then goes back to the queue."""
        self._closing.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    async def _session(self) -> None:
        connection = await amqp.connect(self._url, CONNECT_TIMEOUT)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=self._prefetch)
            queue, dead_queue, dead = await declare(channel, self.status.queue)
            tag = await queue.consume(functools.partial(self._on_message, dead))
            self.status.connected, self.status.last_error = True, ""
            log.info("consuming RabbitMQ queue %s", self.status.queue)
            closed = asyncio.ensure_future(channel.closed())
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                while not self._closing.is_set():
                    self.status.ready = _count(await queue.declare())
                    self.status.dead = _count(await dead_queue.declare())
                    await asyncio.wait({closed, closing}, timeout=POLL_SECONDS)
                    if closed.done():
                        raise ConnectionError("the channel was closed by the broker")
            finally:
                closed.cancel()
                closing.cancel()
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            # The messages in hand are committed and acked on this channel.
            await self._idle.wait()
        finally:
            self.status.connected = False
            with contextlib.suppress(Exception):
                await connection.close()

    async def _on_message(self, dead: AbstractExchange, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handling.add(task)
        self._idle.clear()
        self.status.unacked += 1
        try:
            await self._handle(dead, message)
        except _Abandoned:
            pass  # unacked: the broker hands it out again once this channel closes
        except Exception as exc:  # a dead letter not confirmed, the channel lost...
            log.warning("RabbitMQ message %s not acked, requeued: %s", message.message_id, exc)
            # Back to the queue (its delivery count grows: x-delivery-limit ends a loop).
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        finally:
            self.status.unacked -= 1
            self._handling.discard(task)
            if not self._handling:
                self._idle.set()

    async def _handle(self, dead: AbstractExchange, message: AbstractIncomingMessage) -> None:
        letters, whole = await self._ingest(message)
        if letters:
            await asyncio.gather(*(_publish(dead, letter) for letter in letters))
            metrics.AMQP_DEAD_LETTERS.inc(len(letters))
        await message.ack()
        counter = metrics.AMQP_PARTIAL if letters else metrics.AMQP_ACKED
        (metrics.AMQP_DEAD if whole else counter).inc()

    async def _ingest(self, message: AbstractIncomingMessage) -> tuple[list[DeadLetter], bool]:
        """Store what can be stored; the dead letters, and whether the message is one."""
        publisher = message.user_id or ""
        source = message.message_id or ""
        content_type = message.content_type

        def whole(reason: str, violations: Violations) -> tuple[list[DeadLetter], bool]:
            letter = dead_letter(
                message.body, content_type, reason, violations,
                source_message_id=source, publisher=publisher,
            )  # fmt: skip
            return [letter], True

        try:
            principal = self._authenticator.publisher(publisher)
            request = decode(message.body, content_type)
        except Unreadable as exc:
            return whole(exc.reason, exc.violations)
        except Unauthenticated as exc:
            return whole(exc.reason, (FieldViolation("user_id", exc.message),))
        inputs = request.events
        budget = self._ingestor.budget
        await budget.take(len(inputs))
        try:
            results = await self._commit(inputs, principal, len(message.body))
        except (InvalidArgument, PermissionDenied) as exc:  # the message as a whole
            return whole(exc.reason, exc.violations or (FieldViolation("user_id", exc.message),))
        finally:
            budget.give(len(inputs))
        letters = [
            dead_letter(
                encode_one(request.events[r.index], content_type),
                content_type,
                r.reason,
                r.violations,
                source_message_id=source,
                publisher=publisher,
                index=r.index,
                event_id=r.event_id,
            )  # fmt: skip
            for r in results
            if r.outcome is Outcome.REJECTED
        ]
        return letters, False

    async def _commit(
        self, inputs: Sequence[RawEvent], principal: Principal, size: int
    ) -> list[EventResult]:
        """The ingest results, once committed; a failed commit (or one over the
        publisher's write quota) is tried again (the message stays unacked), until it
        succeeds or the service shuts down."""
        delay = RETRY_INITIAL_SECONDS
        while True:
            try:
                return await self._ingestor.ingest(
                    inputs, principal, size=size, wire=convert.MESSAGES
                )
            except (InvalidArgument, PermissionDenied):
                raise
            except ShuttingDown:
                raise _Abandoned from None
            except Exception as exc:  # Unavailable, ChainLockLost, WriteQuotaExceeded...
                if self._closing.is_set():
                    raise _Abandoned from None
                metrics.AMQP_RETRIED.inc()
                log.warning("RabbitMQ message not committed (%s); retrying in %.1f s", exc, delay)
                await self._pause(delay)
                delay = min(delay * 2, self._retry_max)


class _Abandoned(Exception):
    """Shutting down with the message not committed: it is left unacked."""


async def declare(
    channel: AbstractChannel, name: str
) -> tuple[AbstractQueue, AbstractQueue, AbstractExchange]:
    """The ingest exchange and quorum queue `name`, and the dead-letter exchange and
    queue `<name>.dead`: (queue, dead-letter queue, dead-letter exchange)."""
    dead_name = f"{name}.dead"
    dead = await channel.declare_exchange(dead_name, aio_pika.ExchangeType.FANOUT, durable=True)
    dead_queue = await channel.declare_queue(
        dead_name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_queue.bind(dead)
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dead_name,
            "x-delivery-limit": DELIVERY_LIMIT,
        },
    )
    # The ingest exchange last: publishers find it only once it leads to the queue.
    ingest = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)
    await queue.bind(ingest)
    return queue, dead_queue, dead


def _count(declared: object) -> int:
    return int(getattr(declared, "message_count", 0) or 0)


async def _publish(exchange: AbstractExchange, letter: DeadLetter) -> None:
    """Publish a dead letter and wait for the broker's confirm."""
    await exchange.publish(
        aio_pika.Message(
            letter.body,
            content_type=letter.content_type or None,
            headers=dict(letter.headers),
            message_id=letter.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key="",
    )
