"""Load, crash and multi-process behaviour of the audit-service, on real processes
and a real PostgreSQL: what an operator relies on."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import uuid
from pathlib import Path

import asyncpg
import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.app import AuditApp
from audit_svc.integrity.verify import verify_chain
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.postgres import create_pool
from devstack import PostgresInfo
from devstack.events import guide_event
from devstack.mesh import NO_QUOTA_ENV, GrpcServiceInfo, audit_plan
from devstack.ports import free_port
from devstack.service import RunningService, start_service
from devstack.stack import ComponentContext
from tests.testkit import tls
from tests.testkit.receipts import where


def batch(batch_id: str, size: int) -> pb.StreamIngestRequest:
    events = [guide_event(event_id=str(uuid.uuid4())) for _ in range(size)]
    return pb.StreamIngestRequest(batch_id=batch_id, events=events)


def ids_of(request: pb.StreamIngestRequest) -> list[str]:
    return [e.event_id for e in request.events]


async def start_process(
    pg: PostgresInfo, folder: Path, port: int
) -> RunningService[GrpcServiceInfo]:
    """`python -m audit_svc` as a child process, as `make up` runs it, but without the
    write quota: these tests resend tens of thousands of events at once on one stream."""
    context = ComponentContext(folder, port, {"postgres": pg}, tls.folder())
    plan = audit_plan(context)
    spec = dataclasses.replace(plan.spec, env={**plan.spec.env, **NO_QUOTA_ENV})
    return await asyncio.to_thread(start_service, dataclasses.replace(plan, spec=spec))


@pytest.fixture
def audit_pg(postgres: PostgresInfo, audit_db: str) -> PostgresInfo:
    return postgres.for_database(audit_db.rsplit("/", 1)[1])


async def verify_all(audit_db: str) -> dict[str, tuple[bool, int]]:
    """(ok, events checked) of every chain, as `python -m audit_svc verify` sees them."""
    pool = await create_pool(audit_db, min_size=1, max_size=1)
    try:
        chains = [r["chain_id"] for r in await pool.fetch("SELECT chain_id FROM chains")]
        out = {}
        for chain in chains:
            result = await verify_chain(PgEventReader(pool), chain)
            out[chain] = (result.ok, result.events_checked)
        return out
    finally:
        await pool.close()


async def test_100k_events_from_8_streams_are_stored_once_and_acked_after_commit(
    app: AuditApp, audit_db: str, db: asyncpg.Connection
) -> None:
    streams, batches, size = 8, 25, 500
    # Other connections than the server's must see each acked batch at once.
    observer = await asyncpg.create_pool(audit_db, min_size=1, max_size=streams)
    not_visible: list[str] = []

    async def stream(n: int) -> int:
        requests = [batch(f"s{n}-b{i}", size) for i in range(batches)]
        by_id = {r.batch_id: ids_of(r) for r in requests}
        acked = 0
        async with tls.channel(f"127.0.0.1:{app.port}") as channel:
            call = pb_grpc.AuditServiceStub(channel).StreamIngest(iter(requests))
            async for ack in call:
                seen = await observer.fetchval(
                    "SELECT count(*) FROM audit_events WHERE event_id = ANY($1::uuid[])",
                    by_id[ack.batch_id],
                )
                if seen != size:
                    not_visible.append(ack.batch_id)
                acked += sum(r.outcome == event_pb2.OUTCOME_STORED for r in ack.results)
        return acked

    try:
        stored = await asyncio.gather(*(stream(n) for n in range(streams)))
    finally:
        await observer.close()

    total = streams * batches * size
    assert sum(stored) == total
    assert not_visible == []
    row = await db.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, max(seq) AS top FROM audit_events"
    )
    assert (row["n"], row["ids"], row["top"]) == (total, total, total)
    assert await verify_all(audit_db) == {app.chain_id: (True, total)}


async def test_same_batch_twice_reports_duplicates_with_original_receipts(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    request = batch("again", 20)

    first = [a async for a in stub.StreamIngest(iter([request]))]
    second = [a async for a in stub.StreamIngest(iter([request]))]

    assert {r.outcome for r in first[0].results} == {event_pb2.OUTCOME_STORED}
    assert {r.outcome for r in second[0].results} == {event_pb2.OUTCOME_DUPLICATE}
    # The same place in the chain; the tree size each ack names may differ (any size
    # that includes the event is one to ask an inclusion proof at).
    assert [where(r.receipt) for r in second[0].results] == [
        where(r.receipt) for r in first[0].results
    ]
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 20


async def test_kill_9_mid_stream_loses_no_acked_event_and_the_chain_verifies(
    audit_pg: PostgresInfo, audit_db: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    port = free_port()
    requests = [batch(f"b{i}", 100) for i in range(300)]
    acked: list[str] = []
    server = await start_process(audit_pg, tmp_path / "first", port)
    try:
        async with tls.channel(f"127.0.0.1:{port}", "user-service") as channel:
            call = pb_grpc.AuditServiceStub(channel).StreamIngest(iter(requests))
            with pytest.raises(grpc.aio.AioRpcError):
                async for ack in call:
                    acked += [r.event_id for r in ack.results]
                    if len(acked) >= 5_000:
                        os.kill(server.process.pid, signal.SIGKILL)
    finally:
        server.stop()
    assert 5_000 <= len(acked) < 30_000, "the kill landed mid-stream"

    # What was acknowledged is there; what was half-written is not.
    assert await db.fetchval(
        "SELECT count(*) FROM audit_events WHERE event_id = ANY($1::uuid[])", acked
    ) == len(acked)
    assert all(ok for ok, _ in (await verify_all(audit_db)).values())

    # The client resends everything it sent (at-least-once): each event ends up stored once.
    # Restarted over the same folder, as the supervisor does: the same keys.
    with await start_process(audit_pg, tmp_path / "first", port):
        async with tls.channel(f"127.0.0.1:{port}", "user-service") as channel:
            call = pb_grpc.AuditServiceStub(channel).StreamIngest(iter(requests))
            outcomes = [r.outcome async for ack in call for r in ack.results]
    assert outcomes.count(event_pb2.OUTCOME_DUPLICATE) >= len(acked)
    assert await db.fetchval("SELECT count(DISTINCT event_id) FROM audit_events") == 30_000
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 30_000
    assert all(ok for ok, _ in (await verify_all(audit_db)).values())


async def test_two_server_processes_own_separate_chains_that_both_verify(
    audit_pg: PostgresInfo, audit_db: str, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    servers = [await start_process(audit_pg, tmp_path / f"p{i}", p) for i, p in enumerate(ports)]
    try:

        async def send(port: int) -> set[str]:
            async with tls.channel(f"127.0.0.1:{port}", "user-service") as channel:
                requests = [batch(f"{port}-{i}", 100) for i in range(20)]
                call = pb_grpc.AuditServiceStub(channel).StreamIngest(iter(requests))
                return {r.receipt.chain_id async for ack in call for r in ack.results}

        chains = await asyncio.gather(*(send(p) for p in ports))
    finally:
        for server in servers:
            server.stop()

    assert len(chains[0]) == len(chains[1]) == 1
    assert chains[0] != chains[1]
    assert await verify_all(audit_db) == {
        next(iter(chains[0])): (True, 2000),
        next(iter(chains[1])): (True, 2000),
    }
