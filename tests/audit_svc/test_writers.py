"""Writers are bound to their verified identity: each stored event records the
principal, the policy says which `service` values and event types a principal may
write, and a caller without credentials writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.access import PolicyError, load_policy
from audit_svc.access.policy import DEFAULT_PATH
from audit_svc.app import AuditApp
from devstack.events import guide_event
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields

BILLING = "spiffe://auditmesh.local/billing-service"


async def stub_as(app: AuditApp, identity: str) -> AsyncIterator[pb_grpc.AuditServiceStub]:
    async with tls.channel(f"127.0.0.1:{app.port}", identity) as channel:
        yield pb_grpc.AuditServiceStub(channel)


@pytest.fixture
async def billing(app: AuditApp) -> AsyncIterator[pb_grpc.AuditServiceStub]:
    async for stub in stub_as(app, "billing-service"):
        yield stub


async def test_a_billing_service_writing_as_the_user_service_is_rejected_by_index(
    billing: pb_grpc.AuditServiceStub, stub: pb_grpc.AuditServiceStub
) -> None:
    events = [
        guide_event(service="billing-service", event_type="billing.invoice_paid"),
        guide_event(service="user-service"),  # not billing's to write
        guide_event(service="billing-service", event_type="auth.login_success"),
        guide_event(service="billing-service", event_type="billing.refund"),
    ]
    reply = await billing.IngestBatch(pb.IngestBatchRequest(events=events))

    outcomes = [(r.outcome, r.reason, r.code) for r in reply.results]
    assert outcomes == [
        (event_pb2.OUTCOME_STORED, "", code_pb2.OK),
        (event_pb2.OUTCOME_REJECTED, "SERVICE_MISMATCH", code_pb2.PERMISSION_DENIED),
        (event_pb2.OUTCOME_REJECTED, "EVENT_TYPE_MISMATCH", code_pb2.PERMISSION_DENIED),
        (event_pb2.OUTCOME_STORED, "", code_pb2.OK),
    ]
    assert [v.field for v in reply.results[1].field_violations] == ["service"]
    stored = await stub.GetEvent(pb.GetEventRequest(event_id=reply.results[0].event_id))
    assert stored.event.principal == BILLING


async def test_a_mismatching_single_event_is_permission_denied(
    billing: pb_grpc.AuditServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await billing.Ingest(pb.IngestRequest(event=guide_event(service="user-service")))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_fields(denied.value) == ("SERVICE_MISMATCH", ["service"])


async def test_the_stream_records_the_principal_and_ignores_one_sent(
    app: AuditApp, stub: pb_grpc.AuditServiceStub
) -> None:
    sent = guide_event(principal="spiffe://auditmesh.local/someone-else")
    async for writer in stub_as(app, "user-service"):
        request = pb.StreamIngestRequest(batch_id="b1", events=[sent])
        (ack,) = [a async for a in writer.StreamIngest(iter([request]))]
    got = await stub.GetEvent(pb.GetEventRequest(event_id=ack.results[0].event_id))
    assert got.event.principal == "spiffe://auditmesh.local/user-service"


async def test_a_known_identity_without_a_writer_grant_writes_nothing(app: AuditApp) -> None:
    async for stub in stub_as(app, "stranger-service"):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event()]))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_fields(denied.value)[0] == "NOT_A_WRITER"


async def test_without_tls_or_dev_mode_callers_are_unauthenticated(audit_db: str) -> None:
    settings = tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0", tls="plaintext")
    async with (
        AuditApp(settings) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.AuditServiceStub(channel).Ingest(pb.IngestRequest(event=guide_event()))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_and_fields(refused.value)[0] == "NO_CREDENTIALS"


def test_the_shipped_policy_loads_and_a_bad_one_lists_every_problem(tmp_path: Path) -> None:
    shipped = load_policy(DEFAULT_PATH)
    assert shipped.writers["spiffe://auditmesh.local/user-service"].services == {"user-service"}
    bad = tmp_path / "policy.toml"
    bad.write_text(
        'relays = "gateway"\n'
        '[[writers]]\nprincipal = "billing"\nservices = []\nevent_types = ["billing."]\n'
        'backfill = "yes"\nevents_per_second = -1\n'
        '[[readers]]\nprincipal = "spiffe://auditmesh.local/x"\nroles = ["audit.root"]\n'
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(bad)
    text = str(caught.value)
    problems = ("relays", "writers[0].principal", "writers[0].services", "writers[0].backfill")
    for problem in (*problems, "writers[0].events_per_second", "audit.root"):
        assert problem in text
