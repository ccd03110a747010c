"""Batches a Redis restart takes away are counted (`spool_lost`), logged at ERROR with
their range, and everything else is stored; a Redis with its AOF keeps them all."""

from __future__ import annotations

import logging
import shutil

import asyncpg
import pytest

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


async def test_a_restart_without_persistence_is_counted_logged_and_the_rest_stored(
    audit_db: str,
    own_redis: OwnRedis,
    client_settings: MakeSettings,
    db: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # the audit-service is down until the end
    settings = client_settings(f"127.0.0.1:{port}", redis_url=own_redis.url, max_batch_events=100)
    async with AuditClient(settings) as client:
        for event in make_events(1200):
            await client.emit(event)
        await client.flush(timeout=30)
        assert client.stats().spooled == 1200
        own_redis.kill9()
        own_redis.start()  # empty: no AOF
        await eventually(lambda: client.stats().spool_lost == 1200, what="the loss is seen")
        after = [await client.emit(e) for e in make_events(300)]
        await client.flush(timeout=30)
        async with AuditApp(service_settings(audit_db, port)):
            await eventually(lambda: client.stats().replayed == 300, what="the rest is stored")
        stats = client.stats()

    (stored,) = (await stored_order(db)).values()
    assert stored == after
    assert stats.emitted == len(stored) + stats.spool_lost
    (record,) = [r for r in caplog.records if r.name == "audit_client.spooler"]
    assert record.levelno == logging.ERROR
    assert isinstance(record.args, tuple) and record.args[1:4] == (1200, 12, 1)


async def test_a_durable_redis_killed_and_restarted_keeps_every_batch(
    audit_db: str,
    own_durable_redis: OwnRedis,
    client_settings: MakeSettings,
    db: asyncpg.Connection,
) -> None:
    redis = own_durable_redis
    port = free_port()
    settings = client_settings(f"127.0.0.1:{port}", redis_url=redis.url, max_batch_events=100)
    async with AuditClient(settings) as client:
        ids = [await client.emit(e) for e in make_events(1200)]
        await client.flush(timeout=30)
        redis.kill9()
        redis.start()
        async with AuditApp(service_settings(audit_db, port)):
            await eventually(lambda: client.stats().replayed == 1200, what="the spool drains")
        stats = client.stats()

    (stored,) = (await stored_order(db)).values()
    assert stored == ids
    assert (stats.spool_lost, stats.dropped) == (0, 0)


async def test_writes_missing_from_the_aof_tail_are_the_ones_counted_lost(
    audit_db: str,
    own_durable_redis: OwnRedis,
    client_settings: MakeSettings,
    db: asyncpg.Connection,
) -> None:
    # What a machine crash does to `appendfsync everysec`: the AOF comes back without
    # its last writes. Made real by restoring an older copy of the AOF.
    redis = own_durable_redis
    port = free_port()
    settings = client_settings(f"127.0.0.1:{port}", redis_url=redis.url, max_batch_events=100)
    aof, older = redis.dir / "appendonlydir", redis.dir.parent / "older-aof"
    async with AuditClient(settings) as client:
        kept = [await client.emit(e) for e in make_events(600)]
        await client.flush(timeout=30)
        redis.stop()
        shutil.copytree(aof, older)
        redis.start()
        for event in make_events(500):
            await client.emit(event)
        await client.flush(timeout=30)
        redis.kill9()
        shutil.rmtree(aof)
        shutil.copytree(older, aof)
        redis.start()
        await eventually(lambda: client.stats().spool_lost == 500, what="the tail's loss is seen")
        async with AuditApp(service_settings(audit_db, port)):
            await eventually(lambda: client.stats().replayed == 600, what="the spool drains")
        stats = client.stats()

    (stored,) = (await stored_order(db)).values()
    assert stored == kept
    assert stats.emitted == len(stored) + stats.spool_lost
