"""One way to open a RabbitMQ connection (aio-pika) for every part of the mesh: the
audit-service's consumer, the audit client's amqp transport, devstack's probe."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.connection import make_url


async def connect(url: str, timeout: float) -> AbstractConnection:
    """`aio_pika.connect`, but a connection that fails to open is closed here: aio-pika
    leaves it to the garbage collector, whose close coroutine then warns (never
    awaited) wherever the collection happens."""
    connection = aio_pika.Connection(make_url(url))
    try:
        await connection.connect(timeout=timeout)
    except BaseException:
        await connection.close()
        raise
    return connection
