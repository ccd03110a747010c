"""The client's RabbitMQ transport (`transport = amqp`) against a real broker and a real
audit-service consuming from it: events are stored exactly once across a kill -9 of
the consumer, and a broker outage spools to Redis and replays, nothing lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_client import AuditClient, ClientSettings, SettingsError
from audit_svc.app import AuditApp
from devstack import RabbitInfo
from tests.audit_client.support import (
    AuditProcess,
    MakeSettings,
    OwnRabbitMQ,
    eventually,
    make_events,
)
from tests.conftest import AMQP_PUBLISHERS
from tests.testkit import tls

PUBLISHER = "user-service"  # the broker user; policy.toml maps it to the user-service


@pytest.fixture
def queue_name() -> str:
    return f"audit.ingest.c{uuid.uuid4().hex[:10]}"


def amqp_settings(
    client_settings: MakeSettings, target: str, broker: RabbitInfo, exchange: str
) -> ClientSettings:
    """A client publishing to `exchange` on `broker` as the user-service, 10 events a batch."""
    return client_settings(
        target,
        transport="amqp",
        amqp_url=broker.url_for(PUBLISHER),
        amqp_exchange=exchange,
        max_batch_events=10,
    )


async def emit(client: AuditClient, count: int) -> list[str]:
    """Emit `count` guide events and flush; their ids."""
    ids = [await client.emit(event) for event in make_events(count)]
    await client.flush(timeout=30)
    return ids


async def consuming(target: str) -> bool:
    """True once the audit-service's Health says its RabbitMQ consumer runs."""
    async with tls.channel(target) as channel:
        health = await pb_grpc.AuditServiceStub(channel).Health(pb.HealthRequest())
    return any(c.name == "rabbitmq" and c.ok for c in health.components)


async def stored_ids(db: asyncpg.Connection) -> list[str]:
    return [r["id"] for r in await db.fetch("SELECT event_id::text AS id FROM audit_events")]


async def test_events_are_stored_exactly_once_across_a_kill_of_the_consumer(
    rabbitmq: RabbitInfo,
    audit_process: AuditProcess,
    client_settings: MakeSettings,
    db: asyncpg.Connection,
    queue_name: str,
) -> None:
    # A few messages in hand at a time, so the kill lands while the queue is worked off.
    consumer = {
        "AUDIT_AMQP_URL": rabbitmq.url,
        "AUDIT_AMQP_QUEUE": queue_name,
        "AUDIT_AMQP_PREFETCH": "4",
    }
    await asyncio.to_thread(audit_process.start, **consumer)
    await eventually(lambda: consuming(audit_process.target), what="the queues declared")
    await asyncio.to_thread(audit_process.kill9)
    settings = amqp_settings(client_settings, audit_process.target, rabbitmq, queue_name)
    async with AuditClient(settings) as client:
        emitted = await emit(client, 1000)
        stats = client.stats()
    assert stats.queued == 1000  # all confirmed by the broker: in the durable queue
    assert stats.spooled == stats.dropped == 0
    # The consumer starts on the full queue and is killed as soon as it stored some.
    await asyncio.to_thread(audit_process.start, **consumer)
    await eventually(lambda: _count(db, 1), what="the consumer to store some")
    await asyncio.to_thread(audit_process.kill9)
    await asyncio.to_thread(audit_process.start, **consumer)
    await eventually(lambda: _count(db, 1000), what="every event stored")
    assert sorted(await stored_ids(db)) == sorted(emitted)  # each once: no loss, no duplicate


async def _count(db: asyncpg.Connection, at_least: int) -> bool:
    return int(await db.fetchval("SELECT count(*) FROM audit_events")) >= at_least


@pytest.fixture
def own_rabbitmq(tmp_path: Path) -> Iterator[OwnRabbitMQ]:
    """A broker of this test's own, not yet started."""
    server = OwnRabbitMQ(tmp_path / "rabbitmq", AMQP_PUBLISHERS)
    yield server
    server.stop()


async def test_a_broker_outage_spools_to_redis_and_replays_through_the_broker(
    own_rabbitmq: OwnRabbitMQ,
    audit_db: str,
    client_settings: MakeSettings,
    db: asyncpg.Connection,
    queue_name: str,
) -> None:
    broker = await asyncio.to_thread(own_rabbitmq.start)
    service = tls.audit_settings(
        database_url=audit_db,
        grpc_listen="127.0.0.1:0",
        shutdown_grace_seconds=0.5,
        amqp_url=broker.url,
        amqp_queue=queue_name,
        amqp_retry_max_seconds=0.5,
    )
    async with AuditApp(service) as app:
        queue = app.amqp
        assert queue is not None
        await eventually(lambda: queue.status.connected, what="the consumer to connect")
        settings = amqp_settings(client_settings, f"127.0.0.1:{app.port}", broker, queue_name)
        async with AuditClient(settings) as client:
            emitted = await emit(client, 50)
            await asyncio.to_thread(own_rabbitmq.stop)
            emitted += await emit(client, 50)
            assert client.stats().spooled > 0  # the broker is down: Redis holds them
            await asyncio.to_thread(own_rabbitmq.start)
            await eventually(lambda: _count(db, 100), what="the spool replayed and stored")
            assert client.stats().dropped == 0
    assert sorted(await stored_ids(db)) == sorted(emitted)


def test_amqp_transport_needs_a_broker_url_with_a_user() -> None:
    with pytest.raises(SettingsError) as caught:
        ClientSettings(transport="amqp", amqp_url="amqp://127.0.0.1:5672/")
    assert any("AUDIT_CLIENT_AMQP_URL" in p for p in caught.value.problems)
    with pytest.raises(SettingsError) as caught:
        ClientSettings(transport="kafka")
    assert any("AUDIT_CLIENT_TRANSPORT" in p for p in caught.value.problems)
