"""Emit over one long-lived stream to a real audit-service: stored once, in emit order."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_client import AuditClient, ClientClosed
from audit_svc.app import AuditApp
from devstack import free_port
from tests.audit_client.support import (
    MakeSettings,
    eventually,
    make_events,
    service_settings,
    stored_order,
)
from tests.testkit import tls


async def test_every_event_is_stored_once_in_emit_order(
    app: AuditApp, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    events = make_events(3000)
    async with AuditClient(client_settings(f"127.0.0.1:{app.port}")) as client:
        ids = [await client.emit(e) for e in events]
        await client.flush(timeout=60)
        stats = client.stats()

    assert [e.event_id for e in events] == ids
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert all(e.HasField("event_time") for e in events)
    assert (stats.emitted, stats.acked, stats.stored) == (3000, 3000, 3000)
    assert (stats.duplicates, stats.rejected, stats.spooled, stats.dropped) == (0, 0, 0, 0)
    assert stats.stream_failures == 0
    assert stats.batches_sent >= 6  # batches of at most 500
    assert await stored_order(db) == {app.chain_id: ids}


async def test_an_invalid_event_is_counted_as_rejected_and_the_rest_are_stored(
    app: AuditApp, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    good, bad = make_events(10), make_events(1, result="maybe")
    async with AuditClient(client_settings(f"127.0.0.1:{app.port}")) as client:
        for event in [*good[:5], *bad, *good[5:]]:
            await client.emit(event)
        await client.flush(timeout=30)
        stats = client.stats()

    assert (stats.acked, stats.stored, stats.rejected) == (11, 10, 1)
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 10


async def test_events_are_found_through_query_with_the_fields_as_emitted(
    app: AuditApp, client_settings: MakeSettings
) -> None:
    (event,) = make_events(1, user_id="query-me", details={"mfa_used": True})
    async with AuditClient(client_settings(f"127.0.0.1:{app.port}")) as client:
        event_id = await client.emit(event)

    async with tls.channel(f"127.0.0.1:{app.port}") as channel:
        reply = await pb_grpc.AuditServiceStub(channel).Query(pb.QueryRequest(user_id="query-me"))
    (found,) = reply.events
    assert found.event_id == event_id
    assert found.event_time == event.event_time
    assert found.details == event.details
    assert found.receipt.seq == 1


async def test_a_closed_client_refuses_events_and_keeps_its_counters(
    app: AuditApp, client_settings: MakeSettings
) -> None:
    client = AuditClient(client_settings(f"127.0.0.1:{app.port}"))
    with pytest.raises(ClientClosed):
        await client.emit(make_events(1)[0])
    await client.start()
    await client.emit(make_events(1)[0])
    await client.aclose()

    with pytest.raises(ClientClosed):
        await client.emit(make_events(1)[0])
    assert client.stats().stored == 1


async def test_spooled_batches_survive_a_client_restart(
    audit_db: str, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    port = free_port()
    settings = client_settings(f"127.0.0.1:{port}")
    async with AuditClient(settings) as first:  # the audit-service is not running
        ids = [await first.emit(e) for e in make_events(1200)]
        await first.flush(timeout=30)
    assert first.stats().spooled == 1200

    async with AuditApp(service_settings(audit_db, port)), AuditClient(settings) as second:
        await eventually(lambda: second.stats().replayed == 1200, what="the spool drains")

    (stored,) = (await stored_order(db)).values()
    assert stored == ids


async def test_a_burst_larger_than_memory_goes_through_the_spool_without_loss_in_order(
    app: AuditApp, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    settings = client_settings(
        f"127.0.0.1:{app.port}", max_batch_events=100, max_buffered_events=10_000
    )
    async with AuditClient(settings) as client:
        ids = [await client.emit(e) for e in make_events(20_000)]  # no pause at all
        await client.flush(timeout=60)
        assert client.stats().dropped == 0
        await eventually(lambda: client.stats().acked >= 20_000, what="all acked")
        stats = client.stats()

    assert stats.spooled > 0
    assert stats.stored == 20_000
    assert await stored_order(db) == {app.chain_id: ids}


async def test_a_write_quota_slows_the_client_down_and_loses_nothing(
    audit_db: str, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    # RESOURCE_EXHAUSTED (WRITE_QUOTA_EXCEEDED) ends the stream: the client backs off,
    # spools, and sends again what was not acked, as for any outage.
    settings = dataclasses.replace(
        service_settings(audit_db),
        write_quota_events_per_second=100,
        write_quota_bytes_per_second=1e6,
        write_quota_burst_seconds=1,
    )
    events = make_events(400)
    async with AuditApp(settings) as app:
        target = f"127.0.0.1:{app.port}"
        async with AuditClient(client_settings(target, max_batch_events=50)) as client:
            ids = [await client.emit(e) for e in events]
            await client.flush(timeout=60)  # acked or spooled
            await eventually(lambda: client.stats().stored == 400, what="all stored")
            stats = client.stats()

    assert stats.stream_failures > 0  # the quota was hit
    assert (stats.rejected, stats.dropped) == (0, 0)
    assert sorted((await stored_order(db))[app.chain_id]) == sorted(ids)
