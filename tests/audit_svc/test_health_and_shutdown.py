"""Health tells the truth and shutdown is prompt, against real servers.

grpc.health and the REST health (the Health RPC the gateway serves) both turn
NOT_SERVING while the database refuses connections, and SERVING again when it takes
them; a chain lock lost (and taken by another session) turns both NOT_SERVING until
the replica holds it again. On shutdown an open StreamIngest ends
UNAVAILABLE (SHUTTING_DOWN) at once, after its acks, so the stop does not wait for the
grace period (set here far longer than the test may take). Batches read but not yet
acked when the drain begins are committed and acked first: the chaos suite's SIGTERM
scenario shows nothing lost or doubled under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.settings import Settings as AuditSettings
from devstack import PostgresInfo
from devstack.events import guide_event
from meshkit.ids import uuid7
from tests.audit_client.support import eventually
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def quick_settings(audit_db: str) -> AuditSettings:
    return tls.audit_settings(
        database_url=audit_db,
        grpc_listen="127.0.0.1:0",
        health_interval_seconds=0.1,
        shutdown_grace_seconds=3600,
        log_level="ERROR",
    )


@pytest.fixture
async def quick_app(audit_db: str) -> AsyncIterator[AuditApp]:
    async with AuditApp(quick_settings(audit_db)) as app:
        yield app


async def admin(postgres: PostgresInfo, *statements: str) -> None:
    conn = await asyncpg.connect(postgres.for_database("postgres").dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_both_healths_follow_whether_the_service_can_commit(
    quick_app: AuditApp, postgres: PostgresInfo, audit_db: str
) -> None:
    name = audit_db.rsplit("/", 1)[1]
    async with tls.channel(f"127.0.0.1:{quick_app.port}") as channel:
        grpc_health = health_pb2_grpc.HealthStub(channel)
        stub = pb_grpc.AuditServiceStub(channel)

        async def statuses() -> tuple[int, str]:
            check = await grpc_health.Check(health_pb2.HealthCheckRequest())
            rest = await stub.Health(pb.HealthRequest())
            return check.status, rest.status

        async def reach(expected: tuple[int, str]) -> None:
            async def there() -> bool:
                return await statuses() == expected

            await eventually(there, what=f"health {expected}")

        await reach((SERVING, "SERVING"))
        # The database refuses new connections and drops the pool's; the lock's
        # session (the one holding an advisory lock) stays.
        await admin(
            postgres,
            f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            " AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')",
        )
        await reach((NOT_SERVING, "NOT_SERVING"))
        await admin(postgres, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await reach((SERVING, "SERVING"))

        # The session holding the chain's lock is gone, and another session takes the
        # lock before the replica can take it again: it must not commit, and says so.
        holder = await asyncpg.connect(audit_db)
        try:
            await holder.execute(
                "SELECT pg_terminate_backend(pid), pg_advisory_lock(hashtext('chain:' || $1))"
                " FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                quick_app.chain_id,
            )
            await reach((NOT_SERVING, "NOT_SERVING"))
            report = await stub.Health(pb.HealthRequest())
            await holder.execute("SELECT pg_advisory_unlock_all()")
            await reach((SERVING, "SERVING"))  # the lock is taken again
        finally:
            await holder.close()
    assert [(c.name, c.ok) for c in report.components if not c.ok] == [("chain_lock", False)]


async def test_shutdown_acks_what_a_stream_sent_then_ends_it_unavailable(audit_db: str) -> None:
    app = await AuditApp(quick_settings(audit_db)).__aenter__()
    async with tls.channel(f"127.0.0.1:{app.port}") as channel:
        call = pb_grpc.AuditServiceStub(channel).StreamIngest()
        for i in range(3):
            events = [guide_event(event_id=str(uuid7())) for _ in range(100)]
            await call.write(pb.StreamIngestRequest(batch_id=f"b{i}", events=events))
        acks = [await call.read() for _ in range(3)]
        # The stream stays open, as a client's does between batches.
        stopping = asyncio.create_task(app.__aexit__(None, None, None))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await call.read()
        await stopping  # returns long before shutdown_grace_seconds (3600)

    assert [a.batch_id for a in acks] == ["b0", "b1", "b2"]
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_and_fields(ended.value)[0] == "SHUTTING_DOWN"
    conn = await asyncpg.connect(audit_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM audit_events") == 300
    finally:
        await conn.close()
