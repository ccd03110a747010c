"""The audit-service crashes (kill -9) or hangs (SIGSTOP) under load: nothing lost,
nothing stored twice."""

from __future__ import annotations

import asyncio

import asyncpg

from audit_client import AuditClient
from tests.audit_client.support import (
    AuditProcess,
    MakeSettings,
    eventually,
    make_events,
    stored_order,
)

TOTAL = 50_000


async def test_kill_9_during_a_50000_event_emit_loses_and_duplicates_nothing(
    audit_process: AuditProcess, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    await asyncio.to_thread(audit_process.start)
    events = make_events(TOTAL)
    emitted: list[str] = []

    async with AuditClient(client_settings(audit_process.target)) as client:

        async def emit_all() -> None:
            for i, event in enumerate(events):
                emitted.append(await client.emit(event))
                if i % 250 == 0:
                    await asyncio.sleep(0.002)  # a service emits between requests

        emitter = asyncio.create_task(emit_all())
        await eventually(lambda: len(emitted) >= 15_000, what="15,000 emitted")
        audit_process.kill9()
        at_kill = client.stats()
        await eventually(lambda: len(emitted) >= 30_000, what="30,000 emitted")
        await asyncio.to_thread(audit_process.start)
        await emitter
        await client.flush(timeout=60)

        async def all_stored() -> bool:
            stored: int = await db.fetchval("SELECT count(*) FROM audit_events")
            return stored >= TOTAL

        await eventually(all_stored, timeout=120, what="every event stored")
        await eventually(lambda: client.stats().spool_depth == 0, what="the spool is empty")
        stats = client.stats()

    rows, distinct, matching = await db.fetchrow(
        "SELECT count(*), count(DISTINCT event_id),"
        " count(*) FILTER (WHERE event_id = ANY($1::uuid[])) FROM audit_events",
        emitted,
    )
    assert len(set(emitted)) == TOTAL
    assert rows == distinct == matching == TOTAL
    assert at_kill.stored < TOTAL
    assert stats.stream_failures >= 1
    assert stats.spooled > 0 and stats.replayed > 0
    assert (stats.dropped, stats.rejected) == (0, 0)
    assert stats.stored <= TOTAL <= stats.stored + stats.duplicates


async def test_acks_that_never_come_time_out_and_the_batches_are_replayed_once(
    audit_process: AuditProcess, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    await asyncio.to_thread(audit_process.start)
    settings = client_settings(audit_process.target, ack_timeout_seconds=1.0)
    async with AuditClient(settings) as client:
        ids = [await client.emit(e) for e in make_events(500)]
        await client.flush(timeout=30)
        audit_process.pause()  # the stream stays open; no ack arrives
        ids += [await client.emit(e) for e in make_events(2000)]
        await client.flush(timeout=30)  # the ack timeout spools what was in flight
        paused = client.stats()
        audit_process.resume()
        await eventually(
            lambda: client.stats().spool_depth == 0 and client.stats().acked >= 2500,
            what="the spool drains",
        )
        stats = client.stats()

    assert paused.stream_failures >= 1
    assert paused.spooled == 2000
    assert (stats.dropped, stats.rejected) == (0, 0)
    (stored,) = (await stored_order(db)).values()
    assert stored == ids
