"""The Merkle tree as clients see it: receipts say where to ask, the served checkpoint
note, inclusion and consistency proofs, and what impossible sizes get. Go's
golang.org/x/mod/sumdb (tests/audit_svc/gotlog) verifies what the server sends."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.integrity.chain import canonical_bytes
from audit_svc.integrity.signer import Verifier
from audit_svc.storage import event_reads as reads
from audit_svc.storage.postgres import create_pool
from devstack import S3Info
from devstack.events import guide_event
from meshkit import merkle, note
from tests.audit_svc.gotlog import GoVerifier, build
from tests.audit_svc.sinkkit import eventually, ingest, sink_settings
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields


@pytest.fixture(scope="module")
def go_verifier(tmp_path_factory: pytest.TempPathFactory) -> GoVerifier:
    return build(Path(tmp_path_factory.mktemp("gotlog")))


@pytest.fixture
async def served(
    audit_db: str, s3: S3Info, tmp_path: Path
) -> AsyncIterator[tuple[AuditApp, pb_grpc.AuditServiceStub, list[int]]]:
    """A service with 300 events in groups, a checkpoint after each of 3 rounds; the
    checkpointed sizes."""
    settings = sink_settings(audit_db, tmp_path, s3=s3, checkpoint_interval_seconds=0.0)
    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
    ):
        stub = pb_grpc.AuditServiceStub(channel)
        sizes: list[int] = []
        for n in (37, 163, 100):
            await ingest(stub, n, batch=25, streams=2)
            sizes.append(sum(sizes[-1:]) + n)

            async def checkpointed(size: int = sizes[-1]) -> bool:
                page = await stub.ListCheckpoints(pb.ListCheckpointsRequest(page_size=1000))
                return any(c.seq == size for c in page.checkpoints)

            await eventually(checkpointed)
        yield app, stub, sizes


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_served_checkpoints_and_proofs_verify_in_go(
    served: tuple[AuditApp, pb_grpc.AuditServiceStub, list[int]], go_verifier: GoVerifier
) -> None:
    app, stub, sizes = served
    latest = await stub.GetCheckpoint(pb.GetCheckpointRequest())
    assert latest.content_type.startswith("text/plain")
    key = await stub.GetPublicKey(pb.GetPublicKeyRequest())
    public = Verifier.from_pem(key.public_key_pem).public_key
    vkey = note.NoteVerifier(app.settings.log_origin, public).vkey
    _, cp = note.open_checkpoint(latest.data, note.NoteVerifier.parse(vkey))
    assert (cp.origin, cp.size) == (f"{app.settings.log_origin}/{app.chain_id}", sizes[-1])

    page = await stub.ListCheckpoints(pb.ListCheckpointsRequest(page_size=1000))
    notes = [c.note for c in page.checkpoints if c.note]
    assert {note.Checkpoint.parse(note.parse(n.encode()).text).size for n in notes} >= set(sizes)

    pool = await create_pool(app.settings.database_url, min_size=1, max_size=1)
    try:
        async with reads.acquire(pool) as conn:
            rows = []
            async for batch in reads.chain_range(conn, app.chain_id, 1, sizes[-1]):
                rows += batch
    finally:
        await pool.close()
    leaves = [canonical_bytes(r.event, app.chain_id, r.receipt.seq) for r in rows]
    inclusion = []
    for size in sizes:
        for seq in sorted({1, 2, size // 2, size - 1, size}):
            p = await stub.GetInclusionProof(pb.GetInclusionProofRequest(seq=seq, tree_size=size))
            assert p.leaf_hash == merkle.leaf_hash(leaves[seq - 1])
            merkle.verify_inclusion(seq - 1, size, p.leaf_hash, list(p.hashes), p.root_hash)
            inclusion.append({"index": seq - 1, "size": size, "leaf": b64(leaves[seq - 1]),
                              "proof": [b64(h) for h in p.hashes]})  # fmt: skip
    consistency = []
    for old in sizes:
        for new in sizes:
            if old <= new:
                p = await stub.GetConsistencyProof(
                    pb.GetConsistencyProofRequest(old_size=old, new_size=new)
                )
                consistency.append({"old": old, "new": new, "proof": [b64(h) for h in p.hashes]})
    by_id = await stub.GetInclusionProof(
        pb.GetInclusionProofRequest(event_id=str(rows[5].event.event_id))
    )
    assert (by_id.leaf_index, by_id.tree_size) == (5, sizes[-1]) and by_id.checkpoint
    doc = {"vkey": vkey, "notes": [latest.data.decode(), *notes],
           "inclusion": inclusion, "consistency": consistency}  # fmt: skip
    assert go_verifier.check(doc) == "ok"


async def test_receipts_name_the_leaf_and_a_tree_size(
    served: tuple[AuditApp, pb_grpc.AuditServiceStub, list[int]],
) -> None:
    _, stub, sizes = served
    response = await stub.IngestBatch(
        pb.IngestBatchRequest(events=[guide_event() for _ in range(3)])
    )
    receipts = [r.receipt for r in response.results]
    assert [r.leaf_index for r in receipts] == [r.seq - 1 for r in receipts]
    assert {r.tree_size for r in receipts} == {sizes[-1] + 3}
    proof = await stub.GetInclusionProof(
        pb.GetInclusionProofRequest(seq=receipts[0].seq, tree_size=receipts[0].tree_size)
    )
    merkle.verify_inclusion(
        proof.leaf_index, proof.tree_size, proof.leaf_hash, list(proof.hashes), proof.root_hash
    )  # noqa: E501


@pytest.mark.parametrize(
    ("request_", "code", "reason"),
    [
        (
            pb.GetInclusionProofRequest(seq=1, tree_size=10**9),
            "INVALID_ARGUMENT",
            "TREE_SIZE_BEYOND_HEAD",
        ),  # noqa: E501
        (pb.GetInclusionProofRequest(seq=50, tree_size=20), "INVALID_ARGUMENT", "LEAF_NOT_IN_TREE"),
        (pb.GetInclusionProofRequest(), "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
        (
            pb.GetInclusionProofRequest(event_id="0190f0c0-0000-7000-8000-000000000000"),
            "NOT_FOUND",
            "NOT_FOUND",
        ),  # noqa: E501
        (pb.GetInclusionProofRequest(event_id="nope"), "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
        (
            pb.GetConsistencyProofRequest(old_size=20, new_size=10),
            "INVALID_ARGUMENT",
            "BAD_TREE_SIZES",
        ),  # noqa: E501
        (
            pb.GetConsistencyProofRequest(old_size=1, new_size=10**9),
            "INVALID_ARGUMENT",
            "TREE_SIZE_BEYOND_HEAD",
        ),  # noqa: E501
        (pb.GetCheckpointRequest(chain_id="no-such-chain"), "NOT_FOUND", "NOT_FOUND"),
    ],
)
async def test_impossible_sizes_are_refused_with_reasons(
    served: tuple[AuditApp, pb_grpc.AuditServiceStub, list[int]],
    request_: object,
    code: str,
    reason: str,
) -> None:
    _, stub, _ = served
    method = {
        pb.GetInclusionProofRequest: stub.GetInclusionProof,
        pb.GetConsistencyProofRequest: stub.GetConsistencyProof,
        pb.GetCheckpointRequest: stub.GetCheckpoint,
    }[type(request_)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(request_)
    assert caught.value.code().name == code
    assert reason_and_fields(caught.value)[0] == reason


async def test_rows_stored_without_the_tree_are_caught_up_at_start(
    audit_db: str, tmp_path: Path
) -> None:
    settings = sink_settings(audit_db, tmp_path, merkle_tree=False)
    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
    ):
        await ingest(pb_grpc.AuditServiceStub(channel), 300, batch=40, streams=2)
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with reads.acquire(pool) as conn:
            rows = []
            async for batch in reads.chain_range(conn, settings.chain_id, 1, 300):
                rows += batch
    finally:
        await pool.close()
    leaves = [
        merkle.leaf_hash(canonical_bytes(r.event, settings.chain_id, r.receipt.seq)) for r in rows
    ]
    async with (
        AuditApp(dataclasses.replace(settings, merkle_tree=True)) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
    ):
        stub = pb_grpc.AuditServiceStub(channel)
        await ingest(stub, 20, batch=10, streams=1)
        for seq in (1, 150, 300):
            p = await stub.GetInclusionProof(pb.GetInclusionProofRequest(seq=seq, tree_size=300))
            assert p.root_hash == merkle.root(leaves)
            merkle.verify_inclusion(seq - 1, 300, leaves[seq - 1], list(p.hashes), p.root_hash)
        p = await stub.GetConsistencyProof(pb.GetConsistencyProofRequest(old_size=300))
        head = await stub.GetInclusionProof(pb.GetInclusionProofRequest(seq=320))
        merkle.verify_consistency(300, 320, merkle.root(leaves), head.root_hash, list(p.hashes))
