"""The archive against a real object-locked SeaweedFS: old rows go to the bucket,
are checked, leave PostgreSQL, come back identical, and the chain verifies across
the boundary; with S3 down nothing leaves PostgreSQL and both writers retry."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from minio.error import S3Error

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.model import Event
from audit_svc.ops.verify import verify_command
from audit_svc.sinks import Archiver, object_store
from audit_svc.storage.event_writes import append, ensure_chain
from audit_svc.storage.sink_state import PgSinkState
from devstack import S3Info, start_s3
from tests.audit_svc.sinkkit import eventually, ingest, sink_settings
from tests.testkit import tls

OLD, PER_OBJECT = 250, 100


async def add_old_events(db: asyncpg.Connection, chain: str, make: Callable[..., Event]) -> None:
    """OLD events received 200 days ago, in a few commits."""
    t0 = datetime.now(UTC) - timedelta(days=200)
    events = [make(t0 + timedelta(seconds=i), details={"n": i}) for i in range(OLD)]
    await ensure_chain(db, chain)
    for i in range(0, OLD, 60):
        await append(db, chain, events[i : i + 60])


async def all_rows(db: asyncpg.Connection, chain: str) -> list[asyncpg.Record]:
    return list(
        await db.fetch("SELECT * FROM audit_events WHERE chain_id = $1 ORDER BY seq", chain)
    )


async def test_archive_round_trip_and_verify_across_the_boundary(
    audit_db: str,
    s3: S3Info,
    db: asyncpg.Connection,
    tmp_path: Path,
    make_event: Callable[..., Event],
) -> None:
    settings = sink_settings(audit_db, tmp_path, s3=s3, archive_object_events=PER_OBJECT)
    chain = settings.chain_id
    await add_old_events(db, chain, make_event)
    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
    ):
        await ingest(pb_grpc.AuditServiceStub(channel), 50, batch=25, streams=1)  # fresh ones
    before = await all_rows(db, chain)

    env = {
        "DATABASE_URL": audit_db, "S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": s3.access_key,
        "S3_SECRET_KEY": s3.secret_key, "ARCHIVE_BUCKET": settings.archive_bucket,
        "ARCHIVE_OBJECT_EVENTS": str(PER_OBJECT), "OBJECT_LOCK_DAYS": "1",
        "SIGNING_KEY_FILE": settings.signing_key_file,
        "CHECKPOINT_BUCKET": settings.checkpoint_bucket,
    }  # fmt: skip

    async def cli(*args: str) -> int:
        """`python -m audit_svc ...` as an operator runs it."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "audit_svc", *args,
            env=os.environ | {f"AUDIT_{k}": v for k, v in env.items()},
        )  # fmt: skip
        return await process.wait()

    assert await cli("archive", "--chain", chain) == 0

    ranges = await db.fetch(
        "SELECT first_seq, last_seq, object_key, version_id FROM archived_ranges"
        " WHERE chain_id = $1 ORDER BY first_seq",
        chain,
    )
    assert [(r["first_seq"], r["last_seq"]) for r in ranges] == [(1, 100), (101, 200), (201, 250)]
    live = await all_rows(db, chain)
    assert [r["seq"] for r in live] == list(range(OLD + 1, OLD + 51))

    out, err = io.StringIO(), io.StringIO()
    code = await verify_command(audit_db, chain, out=out, err=err, settings=settings)
    assert code == 0, out.getvalue() + err.getvalue()
    assert "archive: OK" in out.getvalue()

    assert await cli("restore", "--chain", chain, "--from-seq", "1") == 0
    assert await all_rows(db, chain) == before
    # Verification still passes with the restored copies in place, and they can go.
    assert await verify_command(audit_db, chain, out=out, err=err, settings=settings) == 0
    assert await cli("restore", "--chain", chain, "--release") == 0
    assert await all_rows(db, chain) == live

    client = s3.client()
    with pytest.raises(S3Error):
        client.remove_object(
            settings.archive_bucket, ranges[0]["object_key"], version_id=ranges[0]["version_id"]
        )
    assert client.stat_object(settings.archive_bucket, ranges[0]["object_key"]).size


async def test_with_s3_down_nothing_leaves_postgresql_and_writes_retry(
    audit_db: str,
    db: asyncpg.Connection,
    tmp_path: Path,
    make_event: Callable[..., Event],
) -> None:
    data = tmp_path / "s3"
    server = start_s3(data)
    info = server.info
    server.stop()
    settings = sink_settings(
        audit_db, tmp_path, s3=info, archive_object_events=PER_OBJECT,
        archive_interval_seconds=0.2, checkpoint_interval_seconds=0.0,
    )  # fmt: skip
    chain = settings.chain_id
    await add_old_events(db, chain, make_event)
    try:
        # Directly: an archive attempt fails before anything is deleted.
        store = object_store(settings, settings.archive_bucket)
        archiver = Archiver(PgSinkState(db_pool := await _pool(audit_db)), chain, store,
                            retention=timedelta(days=90), object_events=PER_OBJECT)  # fmt: skip
        with pytest.raises(Exception):  # noqa: B017 - whatever urllib3 raises for a refusal
            await archiver.step()
        store.close()
        await db_pool.close()
        assert len(await all_rows(db, chain)) == OLD

        async with (
            AuditApp(settings) as app,
            tls.channel(f"127.0.0.1:{app.port}") as channel,
        ):
            stub = pb_grpc.AuditServiceStub(channel)
            seconds = await ingest(stub, 1000, batch=100, streams=2)  # ingest goes on

            async def both_failing() -> bool:
                health = await stub.Health(pb.HealthRequest())
                errors = {s.name: s.last_error for s in health.sinks}
                return bool(errors.get("checkpoints")) and bool(errors.get("archive"))

            await eventually(both_failing)
            assert len(await all_rows(db, chain)) == OLD + 1000
            assert await db.fetchval("SELECT count(*) FROM archived_ranges") == 0
            assert await db.fetchval("SELECT count(*) FROM checkpoints") == 0

            server = start_s3(data, info.port)

            async def caught_up() -> bool:
                archived = await db.fetchval(
                    "SELECT COALESCE(max(last_seq), 0) FROM archived_ranges WHERE chain_id = $1",
                    chain,
                )
                checkpointed = await db.fetchval(
                    "SELECT COALESCE(max(seq), 0) FROM checkpoints WHERE chain_id = $1", chain
                )
                return bool(archived == OLD and checkpointed == OLD + 1000)

            await eventually(caught_up)
            result = await stub.VerifyIntegrity(pb.VerifyIntegrityRequest())
            assert result.ok, result
        assert len(await all_rows(db, chain)) == 1000
    finally:
        server.stop()
    print(f"\ningest of 1000 events with S3 down: {seconds:.2f} s")


async def _pool(dsn: str) -> asyncpg.Pool:
    from audit_svc.storage.postgres import create_pool

    return await create_pool(dsn, min_size=1, max_size=2)
