"""The disk spool: with the audit-service and Redis both down, batches are written to
local disk (fsync) instead of waiting in memory; they survive a kill -9 of the client's
process (tests/chaos), are counted as recovered at the next start, and reach the
audit-service through Redis, in order, each once."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from audit_client import AuditClient
from audit_svc.app import AuditApp
from devstack import free_port
from tests.audit_client.support import (
    MakeSettings,
    OwnRedis,
    eventually,
    make_events,
    service_settings,
    stored_order,
)


async def test_batches_go_to_disk_while_both_are_down_then_through_redis_in_order(
    audit_db: str,
    own_redis: OwnRedis,
    client_settings: MakeSettings,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = client_settings(
        f"127.0.0.1:{port}",
        redis_url=own_redis.url,
        max_batch_events=100,
        disk_spool_dir=str(tmp_path / "disk-spool"),
    )
    async with AuditClient(settings) as client:
        own_redis.stop()
        ids = [await client.emit(e) for e in make_events(1000)]
        await client.flush(timeout=30)
        down = client.stats()
        own_redis.start()
        await eventually(lambda: client.stats().disk_segments == 0, what="disk moved to Redis")
        async with AuditApp(service_settings(audit_db, port)):
            await eventually(lambda: client.stats().replayed == 1000, what="the spool drains")
        stats = client.stats()

    assert (down.disk_spooled, down.buffered, down.dropped) == (1000, 0, 0)
    assert down.disk_segments > 0
    (stored,) = (await stored_order(db)).values()
    assert stored == ids
    assert (stats.spool_lost, stats.dropped) == (0, 0)
    assert list((tmp_path / "disk-spool").iterdir()) == []
