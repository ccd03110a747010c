"""The RabbitMQ transport (`transport = amqp`): the only module that speaks AMQP.

Each batch is published to the audit-service's ingest exchange as one persistent
message, an `audit.v2.IngestBatchRequest` (content type
`application/x-protobuf; proto=audit.v2.IngestBatchRequest`, `message_id` the batch
id, `user_id` the connection's user, which the broker checks). The "ack" of a batch
is the broker's publisher confirm: the message is in the durable quorum queue, and
the audit-service stores it from there (its event ids make any resend harmless).
A publish that is refused, unroutable or unconfirmed fails the stream like a broken
gRPC stream: its batches and every later one go to the Redis spool, and are replayed
through the broker once it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from audit.v2 import audit_service_pb2 as pb
from audit_client.errors import TransportError
from meshkit import amqp
from meshkit.settings import mask_url

CONTENT_TYPE = "application/x-protobuf; proto=audit.v2.IngestBatchRequest"


@contextlib.contextmanager
def _map_amqp_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError) as exc:
        raise TransportError(f"{what}: {type(exc).__name__} {exc}") from exc


class AmqpStream:
    """One connection and channel with publisher confirms: batches are published as
    they come, and confirms are handed back in publish order."""

    def __init__(
        self,
        connection: AbstractConnection,
        channel: AbstractChannel,
        exchange: AbstractExchange,
        user: str,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self._exchange = exchange
        self._user = user
        self._pending: deque[tuple[str, asyncio.Future[object]]] = deque()
        self._sent = asyncio.Event()

    async def send(self, request: pb.StreamIngestRequest) -> None:
        if self._channel.is_closed:
            raise TransportError("the broker closed the channel")
        if request.events:
            body = pb.IngestBatchRequest(events=request.events).SerializeToString()
            message = aio_pika.Message(
                body,
                content_type=CONTENT_TYPE,
                message_id=request.batch_id,
                user_id=self._user,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            confirm: asyncio.Future[object] = asyncio.ensure_future(
                self._exchange.publish(message, routing_key="")
            )
        else:  # the breaker's empty probe: the connection was opened, that is the answer
            confirm = asyncio.get_running_loop().create_future()
            confirm.set_result(None)
        self._pending.append((request.batch_id, confirm))
        self._sent.set()

    async def receive(self) -> pb.StreamIngestResponse:
        while not self._pending:
            self._sent.clear()
            await self._sent.wait()
        batch_id, confirm = self._pending[0]
        with _map_amqp_errors(f"publish of batch {batch_id}"):
            await confirm
        self._pending.popleft()
        return pb.StreamIngestResponse(batch_id=batch_id)

    def cancel(self) -> None:
        for _, confirm in self._pending:
            confirm.cancel()
        self._pending.clear()

    async def aclose(self) -> None:
        self.cancel()
        with contextlib.suppress(Exception):
            await self._connection.close()


class AmqpTransport:
    """Opens a connection per stream to the broker of `url`, publishing to `exchange`."""

    # Acks are the broker's confirms, not the audit-service's per-event results.
    confirms_only = True

    def __init__(self, url: str, exchange: str, *, connect_timeout: float) -> None:
        self._url = url
        self._exchange = exchange
        self._user = unquote(urlsplit(url).username or "")
        self._connect_timeout = connect_timeout
        self._streams: set[AmqpStream] = set()

    def __str__(self) -> str:
        return f"{mask_url(self._url)} (exchange {self._exchange})"

    async def open(self) -> AmqpStream:
        """A new connection and confirming channel; TransportError when the broker
        cannot be reached, refuses the login, or has no such exchange."""
        await self._close_ended()
        with _map_amqp_errors("connect"):
            async with asyncio.timeout(self._connect_timeout):
                connection = await amqp.connect(self._url, self._connect_timeout)
                try:
                    channel = await connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    exchange = await channel.get_exchange(self._exchange, ensure=False)
                except BaseException:
                    await connection.close()
                    raise
        stream = AmqpStream(connection, channel, exchange, self._user)
        self._streams.add(stream)
        return stream

    async def _close_ended(self) -> None:
        """Close the connections of streams the dispatcher has given up on."""
        for stream in list(self._streams):
            self._streams.discard(stream)
            await stream.aclose()

    async def aclose(self) -> None:
        await self._close_ended()
