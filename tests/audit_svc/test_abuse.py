"""The abuse paths of issue 19 on the audit-service, each reproduced against a real
server and shown refused: status and ErrorInfo reason, as a caller sees them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import code_pb2

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.app import AuditApp
from devstack.events import guide_event, wire_events
from meshkit.tls import aio_channel
from tests.testkit import tls
from tests.testkit.databases import as_writer
from tests.testkit.grpc_status import error_metadata, reason_and_fields, retry_delay
from tests.testkit.metrics import scrape

BILLING_EVENT = {"service": "billing-service", "event_type": "billing.invoice_paid"}


def audit_settings(audit_db: str, **values: Any) -> Any:
    return tls.audit_settings(
        database_url=audit_db,
        grpc_listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
        **values,
    )


@pytest.fixture
async def app(audit_db: str) -> AsyncIterator[AuditApp]:
    """A real audit-service with its /metrics endpoint."""
    async with AuditApp(audit_settings(audit_db)) as running:
        yield running


async def metric(app: AuditApp, name: str, **labels: str) -> float:
    return (await asyncio.to_thread(scrape, app.metrics_port)).value(name, **labels)


@pytest.fixture
async def billing(app: AuditApp) -> AsyncIterator[pb_grpc.AuditServiceStub]:
    """A client of `app` as the billing-service (tests/testkit/policy.toml)."""
    async with tls.channel(f"127.0.0.1:{app.port}", "billing-service") as channel:
        yield pb_grpc.AuditServiceStub(channel)


async def test_a_used_event_id_names_one_event_of_one_writer(
    app: AuditApp,
    stub: pb_grpc.AuditServiceStub,
    billing: pb_grpc.AuditServiceStub,
    db: asyncpg.Connection,
) -> None:
    taken = str(uuid.uuid4())
    sent_time = {"event_time": datetime.now(UTC).isoformat()}
    original = guide_event(event_id=taken, **BILLING_EVENT, **sent_time)
    first = await billing.Ingest(pb.IngestRequest(event=original))
    conflicts_before = await metric(app, "auditmesh_ingest_event_id_conflicts_total")

    # Another writer reusing the id (it read it in a spool), in a batch: rejected by
    # index, the rest stored; the same writer with other content: rejected too.
    reply = await stub.IngestBatch(
        pb.IngestBatchRequest(events=[guide_event(event_id=taken, **BILLING_EVENT), guide_event()])
    )
    changed = guide_event(event_id=taken, **BILLING_EVENT, **sent_time, result="failure")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await billing.Ingest(pb.IngestRequest(event=changed))
    resend = await billing.Ingest(pb.IngestRequest(event=original))

    assert [r.outcome for r in reply.results] == [
        event_pb2.OUTCOME_REJECTED,
        event_pb2.OUTCOME_STORED,
    ]
    assert reply.results[0].reason == "EVENT_ID_CONFLICT"
    assert reply.results[0].code == code_pb2.ALREADY_EXISTS
    assert [v.field for v in reply.results[0].field_violations] == ["event_id"]
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_and_fields(caught.value) == ("EVENT_ID_CONFLICT", ["event_id"])
    assert resend.result.outcome == event_pb2.OUTCOME_DUPLICATE
    assert resend.result.receipt == first.result.receipt
    conflicts = await metric(app, "auditmesh_ingest_event_id_conflicts_total")
    assert conflicts == conflicts_before + 2
    row = await db.fetchrow(
        "SELECT result, principal FROM audit_events WHERE event_id = $1", uuid.UUID(taken)
    )
    recorded: list[Any] = []

    async def security_events() -> bool:  # recorded off the ingest path, soon after
        recorded[:] = await db.fetch(
            "SELECT details, principal FROM audit_events "
            "WHERE event_type = 'security.event_id_conflict' ORDER BY seq"
        )
        return len(recorded) == 2

    async with asyncio.timeout(10):
        while not await security_events():
            await asyncio.sleep(0.05)
    assert (row["result"], row["principal"]) == (
        "success",
        "spiffe://auditmesh.local/billing-service",
    )
    assert [(r["details"]["principal"], r["details"]["event_id"]) for r in recorded] == [
        ("spiffe://auditmesh.local/test-client", taken),
        ("spiffe://auditmesh.local/billing-service", taken),
    ]
    assert {r["principal"] for r in recorded} == {"spiffe://auditmesh.local/audit-service"}


async def test_event_times_outside_the_window_are_refused_unless_the_writer_may_backfill(
    app: AuditApp, stub: pb_grpc.AuditServiceStub
) -> None:
    now = datetime.now(UTC)
    times = [
        now - timedelta(days=365 * 55),  # 1971
        now - timedelta(days=6),
        now + timedelta(hours=1),
    ]
    events = [guide_event(event_time=t.isoformat()) for t in times]

    reply = await stub.IngestBatch(pb.IngestBatchRequest(events=events))
    async with tls.channel(f"127.0.0.1:{app.port}", "importer") as channel:
        importer = pb_grpc.AuditServiceStub(channel)
        backfill = await importer.Ingest(pb.IngestRequest(event=events[0]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Ingest(pb.IngestRequest(event=events[0]))

    assert [(r.outcome, r.reason) for r in reply.results] == [
        (event_pb2.OUTCOME_REJECTED, "EVENT_TIME_TOO_OLD"),
        (event_pb2.OUTCOME_STORED, ""),
        (event_pb2.OUTCOME_REJECTED, "INVALID_EVENT"),
    ]
    assert [v.field for r in reply.results for v in r.field_violations] == ["event_time"] * 2
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_fields(caught.value) == ("EVENT_TIME_TOO_OLD", ["event_time"])
    assert backfill.result.outcome == event_pb2.OUTCOME_STORED


async def test_a_writer_over_its_quota_is_refused_with_retry_info_on_every_entry_point(
    audit_db: str, db: asyncpg.Connection
) -> None:
    settings = audit_settings(
        audit_db,
        # 10 events at once, then one every 10 s: the test never waits for a refill.
        write_quota_events_per_second=0.1,
        write_quota_bytes_per_second=1e6,
        write_quota_burst_seconds=100,
    )
    async with AuditApp(settings) as app, tls.channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event()] * 9))
        errors = []
        with pytest.raises(grpc.aio.AioRpcError) as batch:
            await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event()] * 5))
        errors.append(batch.value)
        await stub.Ingest(pb.IngestRequest(event=guide_event()))  # the 10th fits
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.Ingest(pb.IngestRequest(event=guide_event()))
        errors.append(unary.value)
        stream = stub.StreamIngest()
        await stream.write(pb.StreamIngestRequest(batch_id="b1", events=[guide_event()]))
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            await stream.read()
        errors.append(streamed.value)
        # The billing-service's own quota (tests/testkit/policy.toml) is not spent.
        async with tls.channel(f"127.0.0.1:{app.port}", "billing-service") as other:
            billing = pb_grpc.AuditServiceStub(other)
            events = [guide_event(**BILLING_EVENT)] * 20
            own = await billing.IngestBatch(pb.IngestBatchRequest(events=events))
        refused = await metric(
            app,
            "auditmesh_write_quota_exceeded_total",
            principal="spiffe://auditmesh.local/test-client",
            limit="events",
        )

    for err in errors:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_and_fields(err)[0] == "WRITE_QUOTA_EXCEEDED"
        assert 0 < retry_delay(err) <= 100
    assert all(r.outcome == event_pb2.OUTCOME_STORED for r in own.results)
    assert refused == 3
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 10 + 20


async def test_watchers_are_capped_per_caller_and_in_total_and_a_slow_one_is_ended(
    audit_db: str,
) -> None:
    settings = audit_settings(
        audit_db, watch_max_per_caller=2, watch_max_total=3, watch_queue_events=50
    )
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(AuditApp(settings))
        target = f"127.0.0.1:{app.port}"
        # No BDP probing: the idle watcher's HTTP/2 window stays 64 KiB, so it blocks.
        mine = await stack.enter_async_context(
            aio_channel(target, tls.files(), [("grpc.http2.bdp_probe", 0)])
        )
        operator = await stack.enter_async_context(tls.channel(target, "operator"))
        me, op = pb_grpc.AuditServiceStub(mine), pb_grpc.AuditServiceStub(operator)

        async def opened(call: Any, count: int) -> Any:
            await eventually(lambda: app.tail.subscribers == count)
            return call

        idle = await opened(me.Watch(pb.WatchRequest()), 1)
        await opened(me.Watch(pb.WatchRequest(user_id="nobody")), 2)
        await opened(op.Watch(pb.WatchRequest(user_id="nobody")), 3)
        refused = [me.Watch(pb.WatchRequest()), op.Watch(pb.WatchRequest())]
        errors = [await failure(call) for call in refused]  # over the caller's, the total

        for _ in range(20):  # far more than the idle watcher's window and queue hold
            await me.IngestBatch(pb.IngestBatchRequest(events=wire_events(100)))
        fell_behind = await failure(idle)
        await opened(me.Watch(pb.WatchRequest()), 3)  # its place is free again
        dropped = await metric(app, "auditmesh_watchers_dropped_total")
        refusals = await metric(app, "auditmesh_watchers_refused_total")

    assert [e.code() for e in errors] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    assert [reason_and_fields(e)[0] for e in errors] == ["TOO_MANY_WATCHERS"] * 2
    assert [error_metadata(e)["limit"] for e in errors] == ["caller", "total"]
    assert fell_behind.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_and_fields(fell_behind)[0] == "WATCHER_FELL_BEHIND"
    assert dropped >= 1 and refusals >= 2


async def failure(call: Any) -> grpc.aio.AioRpcError:
    """The error that ends a streaming call, reading past what it sent before."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    return caught.value


async def eventually(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_the_service_runs_as_a_role_that_may_not_change_or_delete_events(
    app: AuditApp, stub: pb_grpc.AuditServiceStub, audit_db: str, db: asyncpg.Connection
) -> None:
    await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event() for _ in range(3)]))
    sessions = await db.fetch(
        "SELECT DISTINCT usename FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    partition = await db.fetchval(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'audit_events'::regclass AND c.relname <> 'audit_events_default' "
        "LIMIT 1"
    )
    writer = await asyncpg.connect(as_writer(audit_db))
    try:
        refused = []
        for statement in (
            "UPDATE audit_events SET result = 'failure'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "DELETE FROM archived_ranges",
            "DELETE FROM checkpoints",
            "INSERT INTO archived_ranges SELECT * FROM archived_ranges",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
                await writer.execute(statement)
            refused.append(caught.value.sqlstate)
        # The archive's record is the writer's only way to have rows dropped (retention
        # retires archived partitions only): the door refuses a made-up range.
        with pytest.raises(asyncpg.CheckViolationError):
            await writer.fetchval(
                "SELECT audit_record_archived($1, 1, 3, 3, $2, $2, $2, 'k', 'v', '', '', NULL, "
                "NULL, NULL)",
                app.chain_id,
                bytes(32),
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await writer.execute(f"DELETE FROM {partition}")
    finally:
        await writer.close()

    assert [r["usename"] for r in sessions] == ["audit_writer"]
    assert refused == ["42501"] * 6  # permission denied
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE result = 'success'") == 3
