"""The audit-service goes away: events wait in the Redis spool, then arrive exactly once,
in the order they were emitted."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from audit_client import AuditClient
from audit_svc.app import AuditApp
from devstack import RedisInfo, free_port
from tests.audit_client.support import (
    MakeSettings,
    eventually,
    make_events,
    service_settings,
    stored_order,
)
from tests.testkit import tls


async def test_events_emitted_while_the_service_is_stopped_are_spooled_then_stored_in_order(
    audit_db: str,
    client_settings: MakeSettings,
    redis_server: RedisInfo,
    spool_key: str,
    db: asyncpg.Connection,
) -> None:
    before, during = make_events(100), make_events(10_000)
    async with aioredis.Redis.from_url(redis_server.url) as redis:
        async with AuditApp(service_settings(audit_db)) as first:
            port, chain = first.port, first.chain_id
            client = AuditClient(client_settings(f"127.0.0.1:{port}"))
            await client.start()
            ids = [await client.emit(e) for e in before]
            await client.flush(timeout=30)
        try:
            # Stopped: everything emitted now goes to the spool; emit never waits for it.
            ids += [await client.emit(e) for e in during]
            await client.flush(timeout=60)
            spooled = client.stats()
            depth_while_down = await redis.llen(spool_key)

            async with AuditApp(service_settings(audit_db, port)):  # same port, same data
                await eventually(
                    lambda: client.stats().replayed == 10_000 and client.stats().spool_depth == 0,
                    what="the spool drains",
                )
        finally:
            await client.aclose()
        depth_after = await redis.llen(spool_key)

    assert (spooled.spooled, spooled.stored, spooled.dropped) == (10_000, 100, 0)
    assert depth_while_down >= 10_000 // 500  # batches of at most 500
    stats = client.stats()
    assert (stats.stored, stats.duplicates, stats.dropped) == (10_100, 0, 0)
    assert depth_after == 0
    assert await stored_order(db) == {chain: ids}


def sends_directly(client: AuditClient) -> bool:
    stats = client.stats()
    return stats.spool_depth == 0 and stats.breaker == "closed" and not stats.spooling


async def test_two_clients_on_one_spool_replay_once_and_each_keeps_its_order(
    audit_db: str, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    port = free_port()  # the audit-service starts later
    settings = client_settings(f"127.0.0.1:{port}")
    async with AuditClient(settings) as one, AuditClient(settings) as two:
        mine: dict[str, list[str]] = {"one": [], "two": []}
        for _ in range(4):
            for name, client in (("one", one), ("two", two)):
                for event in make_events(300, user_id=name):
                    mine[name].append(await client.emit(event))
        await one.flush(timeout=30)
        await two.flush(timeout=30)
        async with AuditApp(service_settings(audit_db, port)):
            await eventually(
                lambda: sends_directly(one) and sends_directly(two),
                what="the shared spool drains and both send directly again",
            )
            for name, client in (("one", one), ("two", two)):
                mine[name] += [await client.emit(e) for e in make_events(300, user_id=name)]
                await client.flush(timeout=30)
        replayed = (one.stats().replayed, two.stats().replayed)

    assert sorted(replayed) == [0, 2400]  # one process held the replay lease
    for name, ids in mine.items():
        rows = await db.fetch(
            "SELECT event_id::text AS id FROM audit_events WHERE user_id = $1 ORDER BY seq",
            tls.stored_user_id(name),
        )
        assert [r["id"] for r in rows] == ids
