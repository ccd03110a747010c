"""The audit-service's /metrics, scraped over HTTP from a real server after real
gRPC calls: ingest results, group commits, the chain head, calls by method and code."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from devstack.events import guide_event
from tests.testkit import tls
from tests.testkit.metrics import Samples, scrape


@pytest.fixture
async def metered(audit_db: str) -> AsyncIterator[AuditApp]:
    settings = tls.audit_settings(
        database_url=audit_db, grpc_listen="127.0.0.1:0", metrics_listen="127.0.0.1:0"
    )
    async with AuditApp(settings) as running:
        yield running


async def _scrape(app: AuditApp) -> Samples:
    return await asyncio.to_thread(scrape, app.metrics_port)


def _delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_ingest_results_commits_and_calls_are_counted(metered: AuditApp) -> None:
    before = await _scrape(metered)
    async with tls.channel(f"127.0.0.1:{metered.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        first = guide_event()
        reply = await stub.IngestBatch(
            pb.IngestBatchRequest(events=[first, guide_event(), guide_event(event_type="")])
        )
        again = guide_event(event_id=reply.results[0].event_id)
        await stub.IngestBatch(pb.IngestBatchRequest(events=[again]))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetEvent(pb.GetEventRequest(event_id=str(uuid.uuid4())))
    after = await _scrape(metered)

    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    events = "auditmesh_ingest_events_total"
    assert _delta(after, before, events, result="stored") == 2
    assert _delta(after, before, events, result="duplicate") == 1
    assert _delta(after, before, events, result="rejected") == 1
    batches = "auditmesh_ingest_batches_total"
    assert _delta(after, before, batches, result="partial") == 1
    assert _delta(after, before, batches, result="ok") == 1
    assert _delta(after, before, "auditmesh_appender_group_events_sum") == 3
    assert _delta(after, before, "auditmesh_appender_commit_seconds_count") >= 2
    chain = metered.chain_id
    assert after.value("auditmesh_chain_head_seq", chain=chain) == 2
    assert after.value("auditmesh_appender_queue_events", chain=chain) == 0
    handled = "auditmesh_grpc_server_handled_total"
    service = "audit.v2.AuditService"
    assert _delta(after, before, handled, service=service, method="IngestBatch", code="OK") == 2
    assert _delta(after, before, handled, service=service, method="GetEvent", code="NOT_FOUND") == 1
    seconds = "auditmesh_grpc_server_handling_seconds_count"
    assert _delta(after, before, seconds, method="IngestBatch") == 2
