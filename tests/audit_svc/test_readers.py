"""Readers over gRPC: a role per call (audit.reader, audit.admin), granted to services
by the policy; each read leaves exactly one `audit.read` event naming the reader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.storage.postgres import init_connection
from devstack.events import guide_event
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields

READER = "spiffe://auditmesh.local/test-client"


@pytest.fixture
async def audited(audit_db: str) -> AsyncIterator[AuditApp]:
    """An audit-service that records every read."""
    settings = tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0", read_audit=True)
    async with AuditApp(settings) as app:
        yield app


async def test_a_service_without_a_read_role_is_denied(audited: AuditApp) -> None:
    async with tls.channel(f"127.0.0.1:{audited.port}", "billing-service") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.Query(pb.QueryRequest(user_id="user123"))
        # Health stays open: probes and the guide's curl line need it.
        health = await stub.Health(pb.HealthRequest())
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_fields(denied.value)[0] == "MISSING_ROLE"
    assert health.status == "SERVING" and health.notice == ""


async def test_inclusion_proofs_need_a_read_role_checkpoints_do_not(audited: AuditApp) -> None:
    """A leaf hash confirms a guess of an event's content: proving one event is a read.
    Checkpoints and consistency proofs carry only sizes and roots, for anyone to check."""
    async with tls.channel(f"127.0.0.1:{audited.port}", "billing-service") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        event = guide_event(service="billing-service", event_type="billing.invoice_paid")
        await stub.Ingest(pb.IngestRequest(event=event))
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.GetInclusionProof(pb.GetInclusionProofRequest(seq=1, tree_size=1))
        proof = await stub.GetConsistencyProof(pb.GetConsistencyProofRequest(old_size=1))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_fields(denied.value)[0] == "MISSING_ROLE"
    assert (proof.old_size, proof.new_size) == (1, 1)


async def audit_reads(conn: asyncpg.Connection, count: int) -> list[asyncpg.Record]:
    query = (
        "SELECT action, username, principal, details FROM audit_events"
        " WHERE event_type = 'audit.read' ORDER BY seq"
    )
    deadline = time.monotonic() + 30  # guards a hang only
    while len(rows := await conn.fetch(query)) < count:
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)
    return list(rows)


async def test_each_read_leaves_exactly_one_audit_read(audited: AuditApp, audit_db: str) -> None:
    async with tls.channel(f"127.0.0.1:{audited.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        written = await stub.Ingest(pb.IngestRequest(event=guide_event()))
        await stub.GetEvent(pb.GetEventRequest(event_id=written.result.event_id))
        await stub.VerifyIntegrity(pb.VerifyIntegrityRequest())
        watch = stub.Watch(pb.WatchRequest(event_type="auth.*"))  # the call starts now
        conn = await asyncpg.connect(audit_db)
        await init_connection(conn)
        try:
            await audit_reads(conn, 3)
        finally:
            watch.cancel()
    try:
        assert audited.read_audit is not None
        await audited.read_audit.flush()
        rows = await audit_reads(conn, 3)
    finally:
        await conn.close()
    assert sorted(r["action"] for r in rows) == ["GetEvent", "VerifyIntegrity", "Watch"]
    assert {r["details"]["principal"] for r in rows} == {READER}
    assert all(r["username"].startswith("pii1.") for r in rows)  # sealed: audit_svc.privacy
    assert {r["principal"] for r in rows} == {"spiffe://auditmesh.local/audit-service"}
    by_action = {r["action"]: r["details"] for r in rows}
    assert by_action["GetEvent"]["filters"] == {"event_id": written.result.event_id}
    assert by_action["Watch"]["filters"] == {"event_type": "auth.*"}
