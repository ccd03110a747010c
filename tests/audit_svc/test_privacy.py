"""Privacy against real PostgreSQL and SeaweedFS: personal fields stored sealed (no clear
text in any table or archive object), found by pseudonym, masked or clear by role, and
erased by destroying one key while the log still verifies; legal holds stop erasure and
archive deletion."""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.v1 import audit_service_pb2 as v1_pb
from audit.v1 import audit_service_pb2_grpc as v1_grpc
from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.app import AuditApp
from audit_svc.errors import PartitionKept
from audit_svc.ops.export import export_bundle, run_audit
from audit_svc.ops.privacy import privacy_command
from audit_svc.ops.verify import verify_command
from audit_svc.privacy import crypto
from audit_svc.sinks import Archiver, object_store
from audit_svc.storage import parquet
from audit_svc.storage.sink_state import PgSinkState
from devstack import S3Info
from devstack.events import guide_event
from tests.audit_svc.sinkkit import eventually, sink_settings
from tests.testkit import tls
from tests.testkit.grpc_status import error_metadata, reason_and_fields

PLAIN = "plain-reader"  # audit.reader only (tests/testkit/policy.toml)
JOHN = {"user_id": "user123", "username": "johndoe", "ip_address": "192.168.1.100",
        "email": "john.doe@example.com"}  # fmt: skip
JANE = {"user_id": "user456", "username": "janedoe", "ip_address": "10.20.30.40",
        "email": "jane.roe@example.org"}  # fmt: skip
CLEAR_TEXTS = [v for person in (JOHN, JANE) for v in person.values()]


def event_of(person: dict[str, str], **changes: object) -> event_pb2.AuditEvent:
    event = guide_event(
        user_id=person["user_id"], username=person["username"],
        ip_address=person["ip_address"], user_agent="Mozilla/5.0 (X11; Linux)", **changes,
    )  # fmt: skip
    event.details.update({"email": person["email"], "session_id": "sess_123"})
    return event


@dataclass
class Mesh:
    app: AuditApp
    admin: pb_grpc.AuditServiceStub  # test-client: audit.admin and audit.pii_reader
    plain: pb_grpc.AuditServiceStub
    plain_v1: v1_grpc.AuditLogServiceStub


@pytest.fixture
async def mesh(audit_db: str, s3: S3Info, tmp_path: Path) -> AsyncIterator[Mesh]:
    settings = sink_settings(
        audit_db, tmp_path, s3=s3, read_audit=True, checkpoint_interval_seconds=0.0
    )
    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as admin,
        tls.channel(f"127.0.0.1:{app.port}", PLAIN) as plain,
    ):
        yield Mesh(
            app, pb_grpc.AuditServiceStub(admin), pb_grpc.AuditServiceStub(plain),
            v1_grpc.AuditLogServiceStub(plain),
        )  # fmt: skip


async def store_both(mesh: Mesh) -> None:
    events = [event_of(JOHN), event_of(JOHN, event_type="auth.logout", action="logout"),
              event_of(JANE)]  # fmt: skip
    reply = await mesh.admin.IngestBatch(pb.IngestBatchRequest(events=events))
    assert all(r.outcome == event_pb2.OUTCOME_STORED for r in reply.results)


async def all_text(db: asyncpg.Connection) -> str:
    """Every row of every table of the database, as text."""
    tables = await db.fetch(
        "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    )
    parts = [
        await db.fetchval(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {r['name']} t")
        for r in tables
    ]
    return " ".join(parts)


async def test_personal_fields_leave_no_clear_text_in_the_database_or_the_archive(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    await store_both(mesh)
    # Reads by personal filters leave audit.read records: those must not keep them either.
    for request in (pb.QueryRequest(user_id="user123"), pb.QueryRequest(username="johndoe"),
                    pb.QueryRequest(ip_address="192.168.1.100")):  # fmt: skip
        assert len((await mesh.admin.Query(request)).events) == 2
    assert mesh.app.read_audit is not None
    await mesh.app.read_audit.flush()
    await eventually(lambda: _count(db, "audit.read", 3))

    text = await all_text(db)
    assert "pii1." in text and "uid:" in text  # sealed values and pseudonyms are there
    assert [t for t in CLEAR_TEXTS if t in text] == []

    settings = mesh.app.settings
    store = object_store(settings, settings.archive_bucket)
    try:
        archiver = Archiver(PgSinkState(mesh.app.pool), mesh.app.chain_id, store,
                            retention=timedelta(0))  # fmt: skip
        assert await archiver.archive_all(datetime.now(UTC) + timedelta(minutes=1))
        objects = [await store.get(k) for k in await store.keys("")]
    finally:
        store.close()
    archived = " ".join(
        gzip.decompress(o).decode() if o[:2] == b"\x1f\x8b"
        else str(parquet.decode(o)) if o[:4] == b"PAR1" else o.decode()
        for o in objects
    )  # fmt: skip
    assert "pii1." in archived
    assert [t for t in CLEAR_TEXTS if t in archived] == []


async def _count(db: asyncpg.Connection, event_type: str, n: int) -> bool:
    found = await db.fetchval("SELECT count(*) FROM audit_events WHERE event_type = $1", event_type)
    return bool(found >= n)


async def test_query_by_pseudonym_shows_clear_text_to_pii_readers_and_masks_to_readers(
    mesh: Mesh,
) -> None:
    watch = mesh.plain.Watch(pb.WatchRequest(user_id="user123"))
    await asyncio.sleep(0.3)  # the tail subscribes when the call starts
    await store_both(mesh)
    for request in (pb.QueryRequest(user_id="user123"), pb.QueryRequest(username="johndoe"),
                    pb.QueryRequest(ip_address="192.168.1.100")):  # fmt: skip
        clear = (await mesh.admin.Query(request)).events
        masked = (await mesh.plain.Query(request)).events
        assert len(clear) == len(masked) == 2
        e = clear[0]
        assert (e.user_id, e.username, e.ip_address) == ("user123", "johndoe", "192.168.1.100")
        assert (e.user_agent, e.details["email"]) == ("Mozilla/5.0 (X11; Linux)",
                                                       "john.doe@example.com")  # fmt: skip
        m = masked[0]
        assert m.user_id.startswith("uid:") and m.user_id == masked[1].user_id
        assert (m.username, m.ip_address, m.user_agent) == ("j***e", "192.168.1.0/24",
                                                             "[redacted]")  # fmt: skip
        assert m.details["email"] == "j***e@example.com"
        assert m.details["session_id"] == "sess_123"  # not personal: as sent
        assert m.receipt.hash == e.receipt.hash
    got = await mesh.plain.GetEvent(pb.GetEventRequest(event_id=clear[0].event_id))
    assert got.event.username == "j***e"
    legacy = await mesh.plain_v1.SearchLogs(v1_pb.SearchLogsRequest(user_id="user123"))
    assert [log.username for log in legacy.logs] == ["j***e", "j***e"]
    live = await asyncio.wait_for(watch.read(), 30)
    watch.cancel()
    assert (live.event.username, live.event.ip_address) == ("j***e", "192.168.1.0/24")
    stats = await mesh.admin.GetStatistics(pb.GetStatisticsRequest(time_range="1h"))
    assert {c.key for c in stats.top_users} == {"user123", "user456"}


async def test_erasure_makes_a_user_unreadable_for_everyone_and_the_log_still_verifies(
    mesh: Mesh, tmp_path: Path
) -> None:
    await store_both(mesh)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await mesh.plain.EraseSubject(pb.EraseSubjectRequest(user_id="user123"))
    assert reason_and_fields(denied.value)[0] == "MISSING_ROLE"

    report = await mesh.admin.EraseSubject(pb.EraseSubjectRequest(user_id="user123"))
    assert (report.events, report.already_erased) == (2, False)
    assert report.subject.startswith("uid:") and "username" in report.fields

    for stub in (mesh.admin, mesh.plain):
        gone = (await stub.Query(pb.QueryRequest(user_id="user123"))).events
        assert len(gone) == 2
        for e in gone:
            assert (e.user_id, e.username, e.ip_address, e.user_agent, e.details["email"]) == (
                "[erased]",) * 5  # fmt: skip
    kept = (await mesh.admin.Query(pb.QueryRequest(user_id="user456"))).events
    assert (kept[0].username, kept[0].details["email"]) == ("janedoe", "jane.roe@example.org")
    erasure = (await mesh.admin.Query(pb.QueryRequest(event_type="audit.erasure"))).events
    assert [e.event_id for e in erasure] == [report.erasure_event_id]
    assert erasure[0].details["subject"] == report.subject
    again = await mesh.admin.EraseSubject(pb.EraseSubjectRequest(user_id="user123"))
    assert again.already_erased and not again.erasure_event_id

    # Every proof still holds: the chain, the signed checkpoints, the offline auditor.
    settings, chain = mesh.app.settings, mesh.app.chain_id
    head = (await mesh.admin.VerifyIntegrity(pb.VerifyIntegrityRequest())).to_seq
    assert (await mesh.admin.VerifyIntegrity(pb.VerifyIntegrityRequest())).ok

    async def signed_head() -> bool:
        return bool(await mesh.app.pool.fetchval(
            "SELECT max(seq) >= $2 FROM checkpoints WHERE chain_id = $1", chain, head))  # fmt: skip

    await eventually(signed_head)
    key_file = tmp_path / "log-key.pem"
    key_file.write_text((await mesh.admin.GetPublicKey(pb.GetPublicKeyRequest())).public_key_pem)
    out, err = io.StringIO(), io.StringIO()
    code = await verify_command(settings.database_url, chain, out=out, err=err,
                                settings=settings, public_key_file=str(key_file))  # fmt: skip
    assert code == 0, out.getvalue() + err.getvalue()
    await export_bundle(settings, tmp_path / "bundle", chain_id=chain, to_seq=head)
    audit_out = io.StringIO()
    assert run_audit(str(tmp_path / "bundle"), str(key_file), [], None, "", out=audit_out) == 0
    assert json.loads(audit_out.getvalue())["ok"]


async def test_a_legal_hold_refuses_erasure_and_partition_retirement_until_lifted(
    mesh: Mesh, db: asyncpg.Connection
) -> None:
    await store_both(mesh)
    placed = await mesh.admin.PlaceLegalHold(
        pb.PlaceLegalHoldRequest(user_id="user123", reason="case 2026-17")
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await mesh.admin.EraseSubject(pb.EraseSubjectRequest(user_id="user123"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_and_fields(refused.value)[0] == "LEGAL_HOLD"
    assert error_metadata(refused.value)["hold_id"] == placed.hold.hold_id

    # Retention removes a day's partition only through the database's door, which asks
    # audit_events_held: it answers from the holds (on the user, or on any user).
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    subject = placed.hold.subject
    held = "SELECT audit_events_held($1, $2, $3)"
    assert await db.fetchval(held, subject, day, day + timedelta(days=1))
    assert await db.fetchval(held, None, day, day + timedelta(days=1))
    assert not await db.fetchval(held, None, day - timedelta(days=3), day - timedelta(days=2))
    with pytest.raises(PartitionKept, match="legal hold"):
        await PgSinkState(mesh.app.pool).retire_partition(
            f"audit_events_{day:%Y%m%d}", day + timedelta(days=1)
        )

    lifted = await mesh.admin.LiftLegalHold(pb.LiftLegalHoldRequest(hold_id=placed.hold.hold_id))
    assert lifted.hold.lifted_by == placed.hold.placed_by
    assert not await db.fetchval(held, None, day, day + timedelta(days=1))
    # A time-range hold covers every event in it, whoever it is about.
    ranged = pb.PlaceLegalHoldRequest(reason="audit of Q4")
    ranged.start_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    by_time = (await mesh.admin.PlaceLegalHold(ranged)).hold
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await mesh.admin.EraseSubject(pb.EraseSubjectRequest(user_id="user123"))
    assert error_metadata(refused.value)["hold_id"] == by_time.hold_id
    assert await db.fetchval(held, None, day, day + timedelta(days=1))
    await mesh.admin.LiftLegalHold(pb.LiftLegalHoldRequest(hold_id=by_time.hold_id))
    holds = await mesh.admin.ListLegalHolds(pb.ListLegalHoldsRequest(include_lifted=True))
    assert [h.hold_id for h in holds.holds] == [placed.hold.hold_id, by_time.hold_id]
    assert (await mesh.admin.ListLegalHolds(pb.ListLegalHoldsRequest())).holds == []
    erased = await mesh.admin.EraseSubject(pb.EraseSubjectRequest(user_id="user123"))
    assert erased.events == 2
    found = (await mesh.admin.Query(pb.QueryRequest(event_type="audit.*"))).events
    kinds = sorted(e.event_type for e in found if e.event_type != "audit.read")
    assert kinds == ["audit.erasure", *["audit.legal_hold_lifted"] * 2,
                     *["audit.legal_hold_placed"] * 2]  # fmt: skip


async def test_the_erase_tool_is_audited_by_the_running_service(mesh: Mesh) -> None:
    await store_both(mesh)
    out = io.StringIO()
    args = argparse.Namespace(command="erase", user_id="user456")
    assert await privacy_command(mesh.app.settings, args, out) == 0
    report = json.loads(out.getvalue())
    assert (report["events"], report["already_erased"]) == (1, False)

    async def recorded() -> bool:
        found = await mesh.admin.Query(pb.QueryRequest(event_type="audit.erasure"))
        return [e.event_id for e in found.events] == [report["erasure_event_id"]]

    await eventually(recorded)  # queued by the tool, written by the service
    (e,) = (await mesh.plain.Query(pb.QueryRequest(user_id="user456"))).events
    assert (e.user_id, e.username) == ("[erased]", "[erased]")
    erasure = (await mesh.admin.Query(pb.QueryRequest(event_type="audit.erasure"))).events[0]
    assert erasure.details["requested_by"].startswith("cli:")


def test_an_event_id_reused_for_other_content_never_reuses_a_nonce() -> None:
    """AES-GCM under one key must never see one nonce twice: the nonce derives from
    the value too, so a resend seals to the same bytes and other content does not."""
    cipher, key = AESGCM(AESGCM.generate_key(bit_length=256)), b"k" * 32
    where = crypto.aad("01a23aff-28cb-7088-9106-16a3f13b0077", "username")

    def sealed(value: str) -> str:
        return crypto.seal(cipher, crypto.nonce(key, where, value), value, where)

    assert sealed("johndoe") == sealed("johndoe")  # a resend: the same content
    first, other = sealed("johndoe"), sealed("mallory")
    assert _nonce(first) != _nonce(other)
    assert crypto.open_sealed(cipher, other, where) == "mallory"


def _nonce(sealed: str) -> bytes:
    text = sealed[len(crypto.SEALED) :]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))[: crypto.NONCE]
