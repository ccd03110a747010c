"""The client-side witness: a client that checked the audit log's checkpoint once
demands, on the next one, a consistency proof from the real service, and refuses a
history that does not extend what it trusted (forked, shrunk, rewritten, or not
signed by the pinned key)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_client import AuditClient
from audit_client.transport import GrpcTransport
from audit_client.witness import LogInconsistent, LogWitness, load_public_key
from audit_svc.app import AuditApp
from devstack import S3Info
from tests.audit_client.support import MakeSettings
from tests.audit_svc.sinkkit import eventually, ingest, sink_settings
from tests.testkit import tls

Served = tuple[AuditApp, pb_grpc.AuditServiceStub, Path]


@pytest.fixture
async def served(audit_db: str, s3: S3Info, tmp_path: Path) -> AsyncIterator[Served]:
    """A service that checkpoints after every group; the PEM of its checkpoint key."""
    settings = sink_settings(audit_db, tmp_path, s3=s3, checkpoint_interval_seconds=0.0)
    async with AuditApp(settings) as app, tls.channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        key = await stub.GetPublicKey(pb.GetPublicKeyRequest())
        pem = tmp_path / "log-key.pem"
        pem.write_text(key.public_key_pem)
        yield app, stub, pem


async def grow(stub: pb_grpc.AuditServiceStub, before: int, count: int) -> int:
    """Store `count` more events after `before` and wait for a checkpoint of the head."""
    await ingest(stub, count, batch=50, streams=1)

    async def checkpointed() -> bool:
        try:
            body = await stub.GetCheckpoint(pb.GetCheckpointRequest())
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:  # none signed yet
                return False
            raise
        return int(bytes(body.data).split(b"\n")[1]) == before + count

    await eventually(checkpointed)
    return before + count


def witness_of(app: AuditApp, pem: Path, state: Path) -> tuple[GrpcTransport, LogWitness]:
    transport = GrpcTransport(f"127.0.0.1:{app.port}", tls.files(), connect_timeout=5.0)
    return transport, LogWitness(transport, load_public_key(str(pem)), state)


async def test_each_new_checkpoint_is_proven_to_extend_the_trusted_one(
    served: Served, tmp_path: Path
) -> None:
    app, stub, pem = served
    state = tmp_path / "witness.json"
    first = await grow(stub, 0, 120)
    transport, witness = witness_of(app, pem, state)
    try:
        trusted = await witness.check()
        assert (trusted.origin, trusted.size) == (
            f"{app.settings.log_origin}/{app.chain_id}",
            first,
        )
        second = await grow(stub, first, 75)
        # A new witness reads what the first one trusted from the state file.
        _, again = witness_of(app, pem, state)
        assert again.trusted(trusted.origin) == trusted
        newer = await again.check()
        assert newer.size == second
        assert json.loads(state.read_text())[trusted.origin]["size"] == second
    finally:
        await transport.aclose()


@pytest.mark.parametrize(
    ("reason", "size_delta", "root"),
    [
        ("FORKED", 0, b"\x01" * 32),  # the same size with another root
        ("SHRUNK", 10, None),  # a tree larger than the one served now
        ("INCONSISTENT", -40, b"\x02" * 32),  # an older tree the served one does not extend
    ],
)
async def test_a_history_that_does_not_extend_the_trusted_one_is_refused(
    served: Served, tmp_path: Path, reason: str, size_delta: int, root: bytes | None
) -> None:
    app, stub, pem = served
    size = await grow(stub, 0, 100)
    origin = f"{app.settings.log_origin}/{app.chain_id}"
    state = tmp_path / "witness.json"
    trusted_root = root if root is not None else b"\x03" * 32
    entry = {"size": size + size_delta, "root_hash": base64.b64encode(trusted_root).decode()}
    state.write_text(json.dumps({origin: entry}))
    transport, witness = witness_of(app, pem, state)
    try:
        with pytest.raises(LogInconsistent) as caught:
            await witness.check()
        assert caught.value.reason == reason
        # Nothing is trusted from a refused checkpoint.
        assert json.loads(state.read_text())[origin]["size"] == size + size_delta
    finally:
        await transport.aclose()


async def test_a_checkpoint_not_signed_by_the_pinned_key_is_refused(
    served: Served, tmp_path: Path
) -> None:
    app, stub, _ = served
    await grow(stub, 0, 30)
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    transport, witness = witness_of(app, other, tmp_path / "w.json")
    try:
        with pytest.raises(LogInconsistent) as caught:
            await witness.check()
        assert caught.value.reason == "BAD_SIGNATURE"
    finally:
        await transport.aclose()


async def test_the_client_checks_the_log_it_writes_to(
    served: Served, tmp_path: Path, client_settings: MakeSettings
) -> None:
    app, stub, pem = served
    size = await grow(stub, 0, 40)
    settings = client_settings(
        f"127.0.0.1:{app.port}",
        log_public_key_file=str(pem),
        witness_state_file=str(tmp_path / "client-witness.json"),
    )
    async with AuditClient(settings) as client:
        trusted = await client.check_log()
    assert trusted.size == size
