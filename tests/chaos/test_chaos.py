"""Each failure of the durability table, for real: kill -9 of the audit-service, of
PostgreSQL, of Redis (with and without its AOF), of the emitting service's process
(with and without the disk spool), and SIGTERM of the audit-service mid-stream.
Events are emitted through the client library while the failure happens; then every
event taken is either stored or reported lost (lost only where the design says so),
none is stored twice, and every chain verifies. Each test adds its row to the table
printed at the end (tests/chaos/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from audit_client import AuditClient, ClientSettings
from audit_svc.app import AuditApp
from devstack import PostgresInfo, free_port
from tests.audit_client.support import (
    ROOT,
    AuditProcess,
    MakeSettings,
    OwnRedis,
    eventually,
    make_events,
    service_settings,
)
from tests.chaos.conftest import EVENTS, OwnPostgres, record
from tests.testkit import tls

Step = Callable[[], Awaitable[None]]


async def emit_through(client: AuditClient, fault: Step, repair: Step) -> list[str]:
    """Emit EVENTS at a service's pace; `fault` after a third, `repair` after two."""
    emitted: list[str] = []

    async def emit_all() -> None:
        for i, event in enumerate(make_events(EVENTS)):
            emitted.append(await client.emit(event))
            if i % 50 == 0:
                await asyncio.sleep(0.01)

    emitter = asyncio.create_task(emit_all())
    await eventually(lambda: len(emitted) >= EVENTS // 3, what="a third emitted")
    await fault()
    await eventually(lambda: len(emitted) >= 2 * EVENTS // 3, what="two thirds emitted")
    await repair()
    await emitter
    return emitted


async def all_stored(client: AuditClient, db: asyncpg.Connection, count: int) -> None:
    await client.flush(timeout=120)

    async def stored() -> bool:
        n: int = await db.fetchval("SELECT count(*) FROM audit_events")
        return n >= count

    await eventually(stored, timeout=120, what="every event stored")
    await eventually(lambda: client.stats().spool_depth == 0, what="the spool is empty")


async def test_audit_service_kill_9(
    audit_process: AuditProcess, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    await asyncio.to_thread(audit_process.start)
    async with AuditClient(client_settings(audit_process.target)) as client:

        async def kill() -> None:
            audit_process.kill9()

        taken = await emit_through(client, kill, lambda: asyncio.to_thread(audit_process.start))
        await all_stored(client, db, EVENTS)
        lost = client.stats().spool_lost
    row = await record(
        "audit-service kill -9", db, taken, reported_lost=lost, target=audit_process.target,
        promise="nothing lost: unacked batches are spooled and resent",
    )  # fmt: skip
    assert (row.stored, row.reported_lost, row.duplicates, row.chain_ok) == (EVENTS, 0, 0, True)


async def test_audit_service_sigterm_mid_stream(
    audit_process: AuditProcess, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    await asyncio.to_thread(audit_process.start)
    async with AuditClient(client_settings(audit_process.target)) as client:
        taken = await emit_through(
            client,
            lambda: asyncio.to_thread(audit_process.stop),
            lambda: asyncio.to_thread(audit_process.start),
        )
        await all_stored(client, db, EVENTS)
        lost = client.stats().spool_lost
    row = await record(
        "audit-service SIGTERM mid-stream", db, taken, reported_lost=lost,
        target=audit_process.target,
        promise="nothing lost: queued batches are committed and acked, the rest resent",
    )  # fmt: skip
    assert (row.stored, row.reported_lost, row.duplicates, row.chain_ok) == (EVENTS, 0, 0, True)


async def test_postgresql_kill_9_and_restart(
    own_postgres: tuple[OwnPostgres, PostgresInfo],
    client_settings: MakeSettings,
    tmp_path: Path,
) -> None:
    postgres, info = own_postgres
    service = AuditProcess(info, free_port(), tmp_path / "audit-service")
    await asyncio.to_thread(service.start)
    db = await asyncpg.connect(info.dsn)
    try:
        async with AuditClient(client_settings(service.target)) as client:

            async def kill() -> None:
                await db.close()
                postgres.kill9()

            async def restart() -> None:
                nonlocal db
                await asyncio.to_thread(postgres.start)
                db = await asyncpg.connect(info.dsn)

            taken = await emit_through(client, kill, restart)
            await all_stored(client, db, EVENTS)
            lost = client.stats().spool_lost
        row = await record(
            "PostgreSQL kill -9, restart", db, taken, reported_lost=lost, target=service.target,
            promise="nothing lost: no ack before the commit; unacked batches are resent",
        )  # fmt: skip
    finally:
        await db.close()
        await asyncio.to_thread(service.stop)
    assert (row.stored, row.reported_lost, row.duplicates, row.chain_ok) == (EVENTS, 0, 0, True)


async def spool_through_redis_restart(
    redis: OwnRedis, audit_db: str, client_settings: MakeSettings, db: asyncpg.Connection,
    failure: str, promise: str,
) -> tuple[int, int]:  # fmt: skip
    """With the audit-service down, spool half the events, kill -9 Redis and start it
    again, spool the rest, then start the audit-service; returns (stored, reported)."""
    port = free_port()
    settings = client_settings(f"127.0.0.1:{port}", redis_url=redis.url)
    async with AuditClient(settings) as client:
        taken = [await client.emit(e) for e in make_events(EVENTS // 2)]
        await client.flush(timeout=60)
        redis.kill9()
        await asyncio.to_thread(redis.start)
        taken += [await client.emit(e) for e in make_events(EVENTS - EVENTS // 2)]
        await client.flush(timeout=60)
        async with AuditApp(service_settings(audit_db, port)) as app:
            await eventually(
                lambda: client.stats().spool_depth == 0 and client.stats().replayed > 0,
                what="the spool drains",
            )
            await eventually(
                lambda: client.stats().replayed + client.stats().spool_lost >= EVENTS,
                what="every event stored or reported lost",
            )
            lost = client.stats().spool_lost
            row = await record(
                failure, db, taken, reported_lost=lost, target=f"127.0.0.1:{app.port}",
                promise=promise,
            )  # fmt: skip
    assert (row.silent_lost, row.duplicates, row.chain_ok) == (0, 0, True)
    return row.stored, row.reported_lost


async def test_redis_kill_9_and_restart_with_aof_always(
    own_durable_redis: OwnRedis, audit_db: str, client_settings: MakeSettings,
    db: asyncpg.Connection,
) -> None:  # fmt: skip
    stored, lost = await spool_through_redis_restart(
        own_durable_redis, audit_db, client_settings, db,
        "Redis kill -9, restart (AOF, appendfsync always)",
        "nothing lost: Redis answers a write only after its fsync",
    )  # fmt: skip
    assert (stored, lost) == (EVENTS, 0)


async def test_redis_kill_9_and_restart_with_aof_everysec(
    own_everysec_redis: OwnRedis, audit_db: str, client_settings: MakeSettings,
    db: asyncpg.Connection,
) -> None:  # fmt: skip
    # Whether this run loses anything depends on the disk (a slow fsync postpones the
    # write): the promise is that whatever is lost is counted, never silent.
    stored, lost = await spool_through_redis_restart(
        own_everysec_redis, audit_db, client_settings, db,
        "Redis kill -9, restart (AOF, appendfsync everysec, as make up)",
        "at most the last ~2 s of spool writes, each counted spool_lost and logged",
    )  # fmt: skip
    assert stored + lost == EVENTS


async def test_redis_kill_9_and_restart_without_persistence(
    own_redis: OwnRedis, audit_db: str, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    stored, lost = await spool_through_redis_restart(
        own_redis, audit_db, client_settings, db, "Redis kill -9, restart (no AOF)",
        "the spool is lost, and each event of it counted spool_lost and logged at ERROR",
    )  # fmt: skip
    assert (stored, lost) == (EVENTS - EVENTS // 2, EVENTS // 2)


async def kill_emitter_while_both_are_down(
    env: dict[str, str], *, settled: bool
) -> tuple[list[str], dict[str, int]]:
    """Run tests.audit_client.emitter; SIGKILL it once it printed its line."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.audit_client.emitter", str(EVENTS),
        "settle" if settled else "emit",
        cwd=ROOT, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, limit=1 << 24,
    )  # fmt: skip
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 120)
    child.send_signal(signal.SIGKILL)
    await child.wait()
    report = json.loads(line.split(b" ", 1)[1])
    return report.pop("ids"), report


def emitter_env(settings: ClientSettings, disk: str) -> dict[str, str]:
    return {
        **tls.env_of("AUDIT_CLIENT_", "user-service"),
        "AUDIT_CLIENT_TARGET": settings.target,
        "AUDIT_CLIENT_REDIS_URL": settings.redis_url,
        "AUDIT_CLIENT_DISK_SPOOL_DIR": disk,
        "AUDIT_CLIENT_BREAKER_RESET_SECONDS": "0.2",
        "AUDIT_CLIENT_REDIS_TIMEOUT_SECONDS": "0.5",
    }


async def test_emitting_service_kill_9_while_audit_and_redis_are_down_with_disk_spool(
    audit_db: str, own_redis: OwnRedis, client_settings: MakeSettings, db: asyncpg.Connection,
    tmp_path: Path,
) -> None:  # fmt: skip
    port, disk = free_port(), str(tmp_path / "disk-spool")
    down = client_settings(f"127.0.0.1:{port}", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    taken, before = await kill_emitter_while_both_are_down(emitter_env(down, disk), settled=True)

    settings = client_settings(f"127.0.0.1:{port}", redis_url=own_redis.url, disk_spool_dir=disk)
    async with AuditApp(service_settings(audit_db, port)) as app, AuditClient(settings) as client:
        await eventually(lambda: client.stats().replayed >= EVENTS, what="recovered and stored")
        row = await record(
            "emitting service kill -9, audit-service and Redis down, disk spool", db, taken,
            reported_lost=0, target=f"127.0.0.1:{app.port}",
            promise="nothing lost once on disk (at most the last ~50 ms of emits)",
        )  # fmt: skip
        recovered = client.stats().recovered
    assert before["disk_spooled"] == recovered == EVENTS
    assert (row.stored, row.duplicates, row.chain_ok) == (EVENTS, 0, True)


async def test_emitting_service_kill_9_while_audit_and_redis_are_down_without_disk_spool(
    audit_db: str, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    port = free_port()
    down = client_settings(f"127.0.0.1:{port}", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    taken, before = await kill_emitter_while_both_are_down(emitter_env(down, ""), settled=False)
    async with AuditApp(service_settings(audit_db, port)) as app:
        row = await record(
            "emitting service kill -9, audit-service and Redis down, no disk spool", db, taken,
            reported_lost=0, target=f"127.0.0.1:{app.port}",
            promise="memory is lost, with no record (set AUDIT_CLIENT_DISK_SPOOL_DIR)",
        )  # fmt: skip
    assert before["buffered"] == EVENTS
    assert (row.stored, row.silent_lost) == (0, EVENTS)
