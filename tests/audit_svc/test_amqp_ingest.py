"""RabbitMQ ingest against a real broker (the session's `rabbitmq`): messages published
as the test's publishers are stored through the same validation and writer policy as
gRPC; what cannot be stored lands in the dead-letter queue with its reason and field
violations in headers, and the queue goes on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage as IncomingMessage

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.access import PolicyError, load_policy
from audit_svc.api import amqp_messages as wire
from audit_svc.app import AuditApp
from audit_svc.settings import Settings, SettingsError
from devstack import RabbitInfo
from devstack.events import GUIDE_EVENT, guide_event
from meshkit import amqp
from meshkit.ids import uuid7
from tests.testkit import tls


@pytest.fixture
def queue_name() -> str:
    """Queues of this test's own on the session's broker."""
    return f"audit.ingest.t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def amqp_app(audit_db: str, rabbitmq: RabbitInfo, queue_name: str) -> AsyncIterator[AuditApp]:
    """An audit-service consuming `queue_name`, with /metrics."""
    settings = tls.audit_settings(
        database_url=audit_db,
        grpc_listen="127.0.0.1:0",
        amqp_url=rabbitmq.url,
        amqp_queue=queue_name,
        amqp_retry_max_seconds=0.5,
        metrics_listen="127.0.0.1:0",
    )
    async with AuditApp(settings) as running:
        assert running.amqp is not None
        for _ in range(200):  # the topology exists once it consumes
            if running.amqp.status.connected:
                break
            await asyncio.sleep(0.05)
        yield running


class Publisher:
    """A publisher connection as one of the broker's users."""

    def __init__(self, rabbitmq: RabbitInfo, queue: str) -> None:
        self._rabbitmq = rabbitmq
        self._queue = queue
        self._connections: list[aio_pika.abc.AbstractConnection] = []

    async def publish(
        self,
        body: bytes,
        *,
        user: str = "test-client",
        content_type: str | None = wire.PROTOBUF_TYPE,
        user_id: str | None = None,
    ) -> str:
        connection = await amqp.connect(self._rabbitmq.url_for(user), 5)
        self._connections.append(connection)
        channel = await connection.channel()
        exchange = await channel.get_exchange(self._queue, ensure=False)
        message_id = str(uuid.uuid4())
        await exchange.publish(
            aio_pika.Message(
                body,
                content_type=content_type,
                user_id=user if user_id is None else (user_id or None),
                message_id=message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key="",
        )
        return message_id

    async def dead_letters(self, count: int, timeout: float = 10.0) -> list[IncomingMessage]:
        """`count` messages of the dead-letter queue (read as the consumer's user)."""
        connection = await amqp.connect(self._rabbitmq.url, 5)
        self._connections.append(connection)
        channel = await connection.channel()
        queue = await channel.get_queue(f"{self._queue}.dead", ensure=False)
        out: list[IncomingMessage] = []
        async with asyncio.timeout(timeout):
            while len(out) < count:
                message = await queue.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                await message.ack()
                out.append(message)
        return out

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()


@pytest.fixture
async def publisher(rabbitmq: RabbitInfo, queue_name: str) -> AsyncIterator[Publisher]:
    p = Publisher(rabbitmq, queue_name)
    yield p
    await p.close()


def batch(*events: dict[str, Any]) -> pb.IngestBatchRequest:
    """A batch of the guide's event with these changes, each with its event_id."""
    return pb.IngestBatchRequest(
        events=[guide_event(**{**GUIDE_EVENT, **e, "event_id": str(uuid7())}) for e in events]
    )


async def stored(db: asyncpg.Connection, count: int, timeout: float = 10.0) -> list[asyncpg.Record]:
    """The stored events once there are `count` of them (oldest first)."""
    async with asyncio.timeout(timeout):
        while True:
            rows: list[asyncpg.Record] = await db.fetch(
                "SELECT event_id, service, principal FROM audit_events ORDER BY seq"
            )
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.05)


async def test_protobuf_batch_stores_good_events_and_dead_letters_the_bad_one(
    amqp_app: AuditApp, publisher: Publisher, db: asyncpg.Connection
) -> None:
    request = batch(GUIDE_EVENT, {**GUIDE_EVENT, "result": "maybe"}, GUIDE_EVENT)
    source = await publisher.publish(request.SerializeToString())

    rows = await stored(db, 2)
    assert {str(r["event_id"]) for r in rows} == {
        request.events[0].event_id,
        request.events[2].event_id,
    }
    assert {r["principal"] for r in rows} == {"spiffe://auditmesh.local/test-client"}

    (letter,) = await publisher.dead_letters(1)
    headers = letter.headers
    assert headers[wire.REASON] == "INVALID_EVENT"
    assert [v["field"] for v in json.loads(str(headers[wire.VIOLATIONS]))] == ["result"]
    assert headers[wire.EVENT_INDEX] == 1
    assert headers[wire.EVENT_ID] == request.events[1].event_id
    assert headers[wire.SOURCE_MESSAGE_ID] == source
    assert headers[wire.PUBLISHER] == "test-client"
    assert letter.content_type == wire.PROTOBUF_TYPE
    assert pb.IngestBatchRequest.FromString(letter.body).events[0] == request.events[1]


async def test_json_message_is_stored(
    amqp_app: AuditApp, publisher: Publisher, db: asyncpg.Connection
) -> None:
    event_id = str(uuid7())
    body = json.dumps({"events": [{**GUIDE_EVENT, "event_id": event_id}]}).encode()
    await publisher.publish(body, content_type="application/json")
    (row,) = await stored(db, 1)
    assert str(row["event_id"]) == event_id


async def test_json_bad_event_is_dead_lettered_as_json(
    amqp_app: AuditApp, publisher: Publisher, db: asyncpg.Connection
) -> None:
    body = json.dumps({"events": [GUIDE_EVENT, {**GUIDE_EVENT, "event_type": "Login"}]})
    await publisher.publish(body.encode(), content_type="application/json")
    (letter,) = await publisher.dead_letters(1)
    assert letter.headers[wire.REASON] == "INVALID_EVENT"
    assert json.loads(letter.body)["events"][0]["event_type"] == "Login"
    assert len(await stored(db, 1)) == 1


async def test_writer_policy_applies_to_the_broker_user(
    amqp_app: AuditApp, publisher: Publisher, db: asyncpg.Connection
) -> None:
    # billing-service may write service billing-service, event types billing.*
    request = batch(
        {**GUIDE_EVENT, "service": "billing-service", "event_type": "billing.invoice_paid"},
        GUIDE_EVENT,  # service user-service: not its own
        {**GUIDE_EVENT, "service": "billing-service"},  # auth.*: not its event type
    )
    await publisher.publish(request.SerializeToString(), user="billing-service")
    letters = await publisher.dead_letters(2)
    reasons = {m.headers[wire.EVENT_INDEX]: m.headers[wire.REASON] for m in letters}
    assert reasons == {1: "SERVICE_MISMATCH", 2: "EVENT_TYPE_MISMATCH"}
    (row,) = await stored(db, 1)
    assert (row["service"], row["principal"]) == (
        "billing-service",
        "spiffe://auditmesh.local/billing-service",
    )


@pytest.mark.parametrize(
    ("user", "user_id", "reason"),
    [("stranger", None, "NOT_A_WRITER"), ("test-client", "", "NO_PUBLISHER_IDENTITY")],
)
async def test_a_publisher_without_a_grant_is_dead_lettered_whole(
    amqp_app: AuditApp,
    publisher: Publisher,
    db: asyncpg.Connection,
    user: str,
    user_id: str | None,
    reason: str,
) -> None:
    body = batch(GUIDE_EVENT, GUIDE_EVENT).SerializeToString()
    await publisher.publish(body, user=user, user_id=user_id)
    (letter,) = await publisher.dead_letters(1)
    assert letter.headers[wire.REASON] == reason
    assert wire.EVENT_INDEX not in letter.headers
    assert letter.body == body
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 0


async def test_unreadable_messages_are_dead_lettered_and_the_queue_goes_on(
    amqp_app: AuditApp, publisher: Publisher, db: asyncpg.Connection
) -> None:
    await publisher.publish(b"\xff\xff\xff not protobuf")
    await publisher.publish(b"{not json", content_type="application/json")
    await publisher.publish(b"<xml/>", content_type="text/xml")
    good = batch(GUIDE_EVENT)
    await publisher.publish(good.SerializeToString())

    letters = await publisher.dead_letters(3)
    assert sorted(str(m.headers[wire.REASON]) for m in letters) == [
        "MALFORMED_MESSAGE",
        "MALFORMED_MESSAGE",
        "UNSUPPORTED_CONTENT_TYPE",
    ]
    (row,) = await stored(db, 1)
    assert str(row["event_id"]) == good.events[0].event_id


async def test_health_and_metrics_show_the_consumer(
    amqp_app: AuditApp, publisher: Publisher, db: asyncpg.Connection
) -> None:
    await publisher.publish(batch(GUIDE_EVENT).SerializeToString())
    await stored(db, 1)
    async with tls.channel(f"127.0.0.1:{amqp_app.port}") as channel:
        health = await pb_grpc.AuditServiceStub(channel).Health(pb.HealthRequest())
    (component,) = [c for c in health.components if c.name == "rabbitmq"]
    assert component.ok
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{amqp_app.metrics_port}/metrics")).text
    queue = amqp_app.settings.amqp_queue
    assert f'auditmesh_amqp_connected{{queue="{queue}"}} 1.0' in text
    assert f'auditmesh_amqp_queue_messages{{queue="{queue}"}}' in text
    assert 'auditmesh_amqp_messages_total{result="acked"}' in text


def test_policy_refuses_amqp_users_that_map_to_no_spiffe_id(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[amqp_users]\n"billing" = "billing-service"\n')
    with pytest.raises(PolicyError, match="amqp_users"):
        load_policy(path)


def test_dev_mode_refuses_a_broker_off_loopback() -> None:
    # In dev mode a message without user_id is the anonymous principal's: loopback only.
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"AUDIT_DEV_MODE": "true", "AUDIT_TLS": "plaintext"},
            amqp_url="amqp://audit-service:pw@mq.example:5672/",
        )
    assert "AUDIT_AMQP_URL" in str(caught.value)
    Settings.from_env(
        {"AUDIT_DEV_MODE": "true", "AUDIT_TLS": "plaintext"},
        amqp_url="amqp://audit-service:pw@127.0.0.1:5672/",
    )


async def test_a_failed_commit_keeps_the_message_unacked_and_retries_it(
    amqp_app: AuditApp, publisher: Publisher, db: asyncpg.Connection
) -> None:
    assert amqp_app.amqp is not None
    status = amqp_app.amqp.status
    await db.execute("ALTER TABLE audit_events RENAME TO audit_events_away")  # writes fail
    try:
        request = batch(GUIDE_EVENT)
        await publisher.publish(request.SerializeToString())
        async with asyncio.timeout(10):
            while status.unacked == 0:  # taken, and held while its commit fails
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a few retries
        assert status.unacked == 1 and status.dead == 0
    finally:
        await db.execute("ALTER TABLE audit_events_away RENAME TO audit_events")
    (row,) = await stored(db, 1)
    assert str(row["event_id"]) == request.events[0].event_id
    async with asyncio.timeout(10):
        while status.unacked:
            await asyncio.sleep(0.05)
