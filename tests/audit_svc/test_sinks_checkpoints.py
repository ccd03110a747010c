"""Signed checkpoints in a real object-locked SeaweedFS bucket: listed, published,
verifiable by an outsider, and the evidence that catches what the database alone
cannot: a whole chain rewritten with recomputed hashes and head, and deleted newest
rows."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.integrity.chain import GENESIS, canonical_bytes, link
from audit_svc.ops.verify import verify_command
from audit_svc.settings import Settings
from audit_svc.sinks import SigningKeyError, Verifier, load_signer
from audit_svc.sinks.checkpoints import decode
from audit_svc.storage import event_reads as reads
from devstack import S3Info
from meshkit import note as notes
from tests.audit_svc.sinkkit import eventually, ingest, sink_settings
from tests.testkit import tls

EVENTS = 300


@dataclasses.dataclass
class Running:
    app: AuditApp
    stub: pb_grpc.AuditServiceStub
    settings: Settings


@pytest.fixture
async def running(audit_db: str, s3: S3Info, tmp_path: Path) -> AsyncIterator[Running]:
    """A service with checkpoints after every commit (interval 0), EVENTS events stored
    in several commits, and a checkpoint at the head."""
    settings = sink_settings(audit_db, tmp_path, s3=s3, checkpoint_interval_seconds=0.0)
    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
    ):
        stub = pb_grpc.AuditServiceStub(channel)
        for n in range(1, 4):
            await ingest(stub, EVENTS // 3, batch=50, streams=1)

            async def head_checkpointed(head: int = n * EVENTS // 3) -> bool:
                page = await stub.ListCheckpoints(
                    pb.ListCheckpointsRequest(chain_id=app.chain_id, page_size=1000)
                )
                return bool(page.checkpoints) and page.checkpoints[-1].seq == head

            await eventually(head_checkpointed)
        yield Running(app, stub, settings)


async def verify(r: Running) -> pb.VerifyIntegrityResponse:
    response: pb.VerifyIntegrityResponse = await r.stub.VerifyIntegrity(pb.VerifyIntegrityRequest())
    return response


async def test_checkpoints_are_listed_published_and_verify_outside(
    running: Running, s3: S3Info
) -> None:
    key = await running.stub.GetPublicKey(pb.GetPublicKeyRequest())
    assert key.algorithm == "Ed25519" and "BEGIN PUBLIC KEY" in key.public_key_pem
    pages, token = [], ""
    while True:
        page = await running.stub.ListCheckpoints(
            pb.ListCheckpointsRequest(page_size=2, page_token=token)
        )
        pages.append(page)
        if not (token := page.next_page_token):
            break
    listed = [c for p in pages for c in p.checkpoints]
    assert len(pages) > 1 and [c.seq for c in listed] == sorted({c.seq for c in listed})
    # An external verifier: the object in the bucket and the published key only.
    outsider = Verifier.from_pem(key.public_key_pem)
    client = s3.client()
    for cp in listed:
        body = client.get_object(key.checkpoint_bucket, cp.object_key).read()
        checked = decode(cp.object_key, body, outsider)
        assert (checked.seq, checked.hash, cp.key_id) == (cp.seq, cp.hash, key.key_id)
    assert (await verify(running)).ok
    health = await running.stub.Health(pb.HealthRequest())
    assert {s.name for s in health.sinks} == {"checkpoints"}


async def test_a_full_rewrite_with_recomputed_hashes_and_head_is_detected(
    running: Running, db: asyncpg.Connection
) -> None:
    chain = running.app.chain_id
    prev = GENESIS
    async with db.transaction():
        async for rows in reads.chain_range(db, chain, 1, EVENTS, 100):
            for stored in rows:
                event = dataclasses.replace(stored.event, result="success")
                digest = link(prev, canonical_bytes(event, chain, stored.receipt.seq))
                await db.execute(
                    "UPDATE audit_events SET result = $3, prev_hash = $4, hash = $5"
                    " WHERE chain_id = $1 AND seq = $2",
                    *(chain, stored.receipt.seq, event.result, prev, digest),
                )
                prev = digest
        await db.execute("UPDATE chains SET head_hash = $2 WHERE chain_id = $1", chain, prev)
        # An attacker with the database can also "fix" its copy of the checkpoints.
        await db.execute("UPDATE checkpoints SET hash = $2 WHERE chain_id = $1", chain, prev)
    first_checkpoint = await db.fetchval(
        "SELECT min(seq) FROM checkpoints WHERE chain_id = $1", chain
    )
    result = await verify(running)
    assert (result.ok, result.reason, result.first_bad_seq) == (
        False,
        "CHECKPOINT_MISMATCH",
        first_checkpoint,
    )
    # The same from the command line, with the published key as an outsider has it.
    key_file = running.settings.signing_key_file + ".pub"
    Path(key_file).write_text(running.app.sinks.signer.public_pem)  # type: ignore[union-attr]
    out, err = io.StringIO(), io.StringIO()
    code = await verify_command(
        running.settings.database_url, chain, out=out, err=err,
        settings=running.settings, public_key_file=key_file,
    )  # fmt: skip
    assert code == 1 and "CHECKPOINT_MISMATCH" in out.getvalue()


async def test_deleting_the_newest_rows_is_detected(
    running: Running, db: asyncpg.Connection
) -> None:
    chain = running.app.chain_id
    async with db.transaction():
        await db.execute(
            "DELETE FROM audit_events WHERE chain_id = $1 AND seq > $2", chain, EVENTS - 10
        )
        await db.execute(
            "UPDATE chains SET head_seq = $2, head_hash = (SELECT hash FROM audit_events"
            " WHERE chain_id = $1 AND seq = $2) WHERE chain_id = $1",
            chain,
            EVENTS - 10,
        )
        await db.execute("DELETE FROM checkpoints WHERE chain_id = $1 AND seq > $2", chain, 0)
    # Without the bucket the database now looks whole: the head row checks out.
    result = await verify(running)
    assert (result.ok, result.reason, result.first_bad_seq) == (
        False,
        "CHECKPOINT_BEYOND_HEAD",
        EVENTS - 9,
    )


async def test_checkpoint_objects_are_locked(running: Running, s3: S3Info) -> None:
    from minio.error import S3Error

    bucket = running.settings.checkpoint_bucket
    client = s3.client()
    (obj,) = [
        o
        for o in client.list_objects(bucket, prefix="checkpoints/", recursive=True)
        if o.object_name.endswith(f"{EVENTS:020d}.note")
    ]
    stat = client.stat_object(bucket, obj.object_name)
    with pytest.raises(S3Error):
        client.remove_object(bucket, obj.object_name, version_id=stat.version_id)
    signed = notes.parse(client.get_object(bucket, obj.object_name).read())
    assert notes.Checkpoint.parse(signed.text).size == EVENTS


async def test_without_s3_there_is_no_key_and_bad_pages_are_refused(
    stub: pb_grpc.AuditServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetPublicKey(pb.GetPublicKeyRequest())
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListCheckpoints(pb.ListCheckpointsRequest(page_size=-1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListCheckpoints(pb.ListCheckpointsRequest(page_token="bm90LWEtdG9rZW4"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    page = await stub.ListCheckpoints(pb.ListCheckpointsRequest())
    assert list(page.checkpoints) == [] and page.next_page_token == ""
    assert list((await stub.Health(pb.HealthRequest())).sinks) == []


def test_a_generated_key_is_kept_where_a_restart_finds_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys" / "signing.pem"
    first = load_signer("", str(path))
    assert "NO CHECKPOINT SIGNING KEY CONFIGURED" in caplog.text
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_signer("", str(path)).key_id == first.key_id
    seed = base64.b64encode(bytes(range(32))).decode()
    assert load_signer(seed, str(path)).key_id != first.key_id
    with pytest.raises(SigningKeyError):
        load_signer("not base64!", str(path))
