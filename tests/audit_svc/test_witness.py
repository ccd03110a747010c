"""The tlog-witness: `python -m audit_svc witness`'s server on a real port cosigns the
audit-service's checkpoints as they are made, and refuses a forked log (two
checkpoints of one size with different roots), a bad proof and an unknown key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.integrity.signer import load_signer
from audit_svc.integrity.witness import request_body
from audit_svc.ops.witness import WitnessServer, WitnessSettings
from devstack import S3Info
from meshkit import merkle, note
from tests.audit_svc.sinkkit import eventually, ingest, sink_settings
from tests.testkit import tls

ORIGIN = "auditmesh.local"


def tree(n: int) -> tuple[list[bytes], dict[merkle.Node, bytes]]:
    leaves = [merkle.leaf_hash(b"%d" % i) for i in range(n)]
    nodes: dict[merkle.Node, bytes] = {}
    merkle.CompactRange().extend(leaves, lambda lvl, i, h: nodes.__setitem__((lvl, i), h))
    return leaves, nodes


@pytest.fixture
async def witness(tmp_path: Path) -> AsyncIterator[tuple[WitnessServer, note.NoteSigner]]:
    """A witness of the log whose key is the returned signer."""
    log_key = load_signer("", str(tmp_path / "log-key.pem"))
    log_signer = note.NoteSigner(ORIGIN, log_key.private_key)
    settings = WitnessSettings.from_env(
        {}, listen="127.0.0.1:0", key_file=str(tmp_path / "w.pem"),
        state_file=str(tmp_path / "state.json"), log_keys=log_signer.verifier.vkey,
    )  # fmt: skip
    async with WitnessServer(settings) as server:
        yield server, log_signer


def signed(signer: note.NoteSigner, size: int, root: bytes) -> bytes:
    return note.sign(note.Checkpoint(f"{ORIGIN}/chain-1", size, root).text(), signer).render()


async def test_a_fork_and_bad_proofs_are_refused(
    witness: tuple[WitnessServer, note.NoteSigner],
) -> None:
    server, log_signer = witness
    leaves, nodes = tree(20)
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        vkey = (await http.get("/key")).text.strip()
        first = signed(log_signer, 10, merkle.root(leaves[:10]))
        ok = await http.post("/add-checkpoint", content=request_body(0, [], first))
        assert ok.status_code == 200
        assert note.parse(first).with_signatures(ok.text).cosigned_by(note.NoteVerifier.parse(vkey))

        fork = signed(log_signer, 10, merkle.leaf_hash(b"another history"))
        refused = await http.post("/add-checkpoint", content=request_body(10, [], fork))
        assert (refused.status_code, refused.text.strip()) == (409, "10")

        stale = await http.post("/add-checkpoint", content=request_body(0, [], first))
        assert (stale.status_code, stale.headers["content-type"]) == (409, "text/x.tlog.size")

        later = signed(log_signer, 20, merkle.root(leaves))
        bad_proof = [merkle.leaf_hash(b"x")] * 3
        refused = await http.post("/add-checkpoint", content=request_body(10, bad_proof, later))
        assert refused.status_code == 422

        stranger = note.NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        forged = signed(stranger, 20, merkle.root(leaves))
        assert (
            await http.post("/add-checkpoint", content=request_body(10, [], forged))
        ).status_code == 403  # noqa: E501
        assert (await http.post("/add-checkpoint", content=b"garbage")).status_code == 400

        proof = merkle.assemble(merkle.consistency_plan(10, 20), nodes)
        accepted = await http.post("/add-checkpoint", content=request_body(10, proof, later))
        assert accepted.status_code == 200
    assert server.witness.state.trees[f"{ORIGIN}/chain-1"][0] == 20
    assert '"size": 20' in Path(server.settings.state_file).read_text()


async def test_the_audit_service_gets_its_checkpoints_cosigned(
    audit_db: str, s3: S3Info, tmp_path: Path
) -> None:
    settings = sink_settings(audit_db, tmp_path, s3=s3, checkpoint_interval_seconds=0.0)
    log_key = load_signer("", settings.signing_key_file)  # made now, used by the service
    vkey = note.NoteVerifier(settings.log_origin, log_key.public_key).vkey
    witness_settings = WitnessSettings.from_env(
        {}, listen="127.0.0.1:0", key_file=str(tmp_path / "w.pem"),
        state_file=str(tmp_path / "state.json"), log_keys=vkey,
    )  # fmt: skip
    async with WitnessServer(witness_settings) as server:
        wkey = server.witness.signer.verifier
        settings = settings.__class__.from_env(
            {},
            **{
                **{f: getattr(settings, f) for f in settings.__slots__},
                "witness_urls": f"http://127.0.0.1:{server.port}",
            },  # fmt: skip
        )
        async with (
            AuditApp(settings) as app,
            tls.channel(f"127.0.0.1:{app.port}") as channel,
        ):
            stub = pb_grpc.AuditServiceStub(channel)
            for n in range(3):
                await ingest(stub, 40, batch=20, streams=1)

                async def cosigned(size: int = 40 * (n + 1)) -> bool:
                    try:
                        text = (await stub.GetCheckpoint(pb.GetCheckpointRequest())).data
                    except grpc.aio.AioRpcError:  # NOT_FOUND before the first one
                        return False
                    cp = note.Checkpoint.parse(note.parse(text).text)
                    return cp.size == size and bool(note.parse(text).cosigned_by(wkey))

                await eventually(cosigned)
    origin = f"{settings.log_origin}/{settings.chain_id}"
    assert server.witness.state.trees[origin][0] == 120
