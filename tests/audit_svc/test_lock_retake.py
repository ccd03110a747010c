"""PostgreSQL restarted under load: the audit-service notices that the session holding
its chain's advisory lock is gone, stops writing (fenced: no write can land without the
lock), takes the lock again on a new session, and goes on; no second replica gets the
chain, and every acknowledged event is stored once on a chain that verifies."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

import asyncpg
import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.app import AuditApp
from audit_svc.errors import Unavailable
from audit_svc.integrity.verify import verify_chain
from audit_svc.ops.migrate import upgrade
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.postgres import create_pool
from devstack import start_postgres
from devstack.events import guide_event
from devstack.ports import free_port
from tests.audit_svc.sinkkit import eventually
from tests.testkit import tls

CHAIN = "chain-restarted"


async def test_postgresql_restart_under_load_retakes_the_lock(tmp_path: Path) -> None:
    port = free_port()
    pg = await asyncio.to_thread(start_postgres, tmp_path / "pg", port, fsync=False)
    try:
        dsn = pg.info.dsn
        await asyncio.to_thread(upgrade, dsn)
        settings = tls.audit_settings(
            database_url=dsn, grpc_listen="127.0.0.1:0", chain_id=CHAIN,
            lock_check_seconds=0.2, pool_min_size=1,
        )  # fmt: skip
        acked: list[str] = []
        states: list[bool] = []
        stop = asyncio.Event()
        async with AuditApp(settings) as app, tls.channel(f"127.0.0.1:{app.port}") as channel:
            app.add_commit_listener(states.append)
            stub = pb_grpc.AuditServiceStub(channel)

            async def load() -> None:
                while not stop.is_set():
                    events = [guide_event(event_id=str(uuid.uuid4())) for _ in range(50)]
                    try:
                        done = await stub.IngestBatch(pb.IngestBatchRequest(events=events))
                    except grpc.aio.AioRpcError:
                        await asyncio.sleep(0.05)  # not acked: a client retries it later
                        continue
                    stored = event_pb2.OUTCOME_STORED
                    acked.extend(r.event_id for r in done.results if r.outcome == stored)

            async def acked_at_least(n: int) -> bool:
                return len(acked) >= n

            task = asyncio.create_task(load())
            await eventually(lambda: acked_at_least(500))
            await asyncio.to_thread(pg.stop)
            pg = await asyncio.to_thread(start_postgres, tmp_path / "pg", port, fsync=False)

            async def retaken() -> bool:
                return states[-2:] == [False, True] and app.can_commit

            await eventually(retaken)
            before = len(acked)
            await eventually(lambda: acked_at_least(before + 500))
            # One writer per chain: a second replica asking for this chain is refused.
            with pytest.raises(Unavailable):
                async with AuditApp(dataclasses.replace(settings)):
                    pass
            conn = await asyncpg.connect(dsn)
            try:
                holders = await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                )
            finally:
                await conn.close()
            assert holders == 1
            stop.set()
            await task

        pool = await create_pool(dsn, min_size=1, max_size=1)
        try:
            stored = await pool.fetchval(
                "SELECT count(*) FROM audit_events WHERE event_id = ANY($1::uuid[])", acked
            )
            assert stored == len(acked) == len(set(acked))
            result = await verify_chain(PgEventReader(pool), CHAIN)
            assert result.ok and result.events_checked >= len(acked)
        finally:
            await pool.close()
    finally:
        await asyncio.to_thread(pg.stop)
