"""Both the audit-service and Redis down: the failure policy holds, and the counters say
what happened. Also the circuit breaker's states, as stats() shows them."""

from __future__ import annotations

import asyncpg
import pytest

from audit_client import FAIL_CLOSED, AuditClient, AuditUnavailable
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


async def test_fail_open_keeps_what_memory_holds_drops_the_rest_and_never_raises(
    audit_db: str, own_redis: OwnRedis, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    port = free_port()  # nothing listens here until the end
    settings = client_settings(
        f"127.0.0.1:{port}", redis_url=own_redis.url, max_batch_events=100, max_buffered_events=1000
    )
    async with AuditClient(settings) as client:
        own_redis.stop()
        ids = [await client.emit(e) for e in make_events(3000)]
        await eventually(
            lambda: client.stats().breaker == "open" and not client.stats().spool_available,
            what="both the audit-service and Redis seen down",
        )
        down = client.stats()

        own_redis.start()
        await eventually(lambda: client.stats().spooled == 1000, what="memory spooled")
        async with AuditApp(service_settings(audit_db, port)):
            await eventually(lambda: client.stats().replayed == 1000, what="the spool drains")
        stats = client.stats()

    assert (down.emitted, down.dropped, down.buffered, down.spooled) == (3000, 2000, 1000, 0)
    assert (stats.spooled, stats.replayed, stats.stored, stats.dropped) == (1000, 1000, 1000, 2000)
    (stored,) = (await stored_order(db)).values()
    assert stored == ids[:1000]


async def test_fail_closed_raises_while_both_are_down_and_recovers_with_redis(
    own_redis: OwnRedis, client_settings: MakeSettings
) -> None:
    settings = client_settings(
        f"127.0.0.1:{free_port()}", redis_url=own_redis.url, failure_policy=FAIL_CLOSED
    )
    async with AuditClient(settings) as client:
        for event in make_events(200):
            await client.emit(event)
        await client.flush(timeout=30)  # the audit-service is down: spooled
        await eventually(lambda: client.stats().breaker == "open", what="the breaker opens")
        own_redis.stop()
        await eventually(lambda: not client.stats().spool_available, what="Redis seen down")

        refused = 0
        for event in make_events(50):
            with pytest.raises(AuditUnavailable) as caught:
                await client.emit(event)
            assert caught.value.reason == "AUDIT_AND_SPOOL_UNAVAILABLE"
            refused += 1
        during = client.stats()

        own_redis.start()
        await eventually(lambda: client.stats().spool_available, what="Redis seen up")
        for event in make_events(100):
            await client.emit(event)
        await client.flush(timeout=30)
        stats = client.stats()

    assert (during.emitted, during.refused, during.dropped) == (200, 50, 0)
    assert (stats.emitted, stats.refused, stats.spooled, stats.dropped) == (300, 50, 300, 0)


async def test_breaker_opens_probes_half_open_and_closes_when_the_service_answers(
    audit_db: str, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    port = free_port()
    async with AuditClient(client_settings(f"127.0.0.1:{port}")) as client:
        assert client.stats().breaker == "closed"
        ids = [await client.emit(e) for e in make_events(500)]
        await eventually(lambda: client.stats().breaker_opened >= 1, what="the breaker opens")
        await eventually(
            lambda: client.stats().breaker_half_opened >= 2, what="failed probes reopen it"
        )
        ids += [await client.emit(e) for e in make_events(500)]  # while open: to the spool
        await client.flush(timeout=30)
        while_down = client.stats()

        async with AuditApp(service_settings(audit_db, port)):
            await eventually(lambda: client.stats().breaker == "closed", what="it closes")
            await eventually(lambda: client.stats().replayed == 1000, what="the spool drains")
        stats = client.stats()

    assert while_down.breaker in ("open", "half_open")
    assert while_down.breaker_opened >= 2  # each failed probe opens it again
    assert while_down.spooled == 1000 and while_down.stored == 0
    assert stats.breaker_closed == 1
    assert stats.stream_failures >= while_down.breaker_opened
    (stored,) = (await stored_order(db)).values()
    assert stored == ids
