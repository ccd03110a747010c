"""The four tamperings an operator with the database can do, each caught both by
`python -m audit_svc verify` (against the bucket's signed checkpoints) and by the
offline audit of an exported bundle (`export` then `audit`, no database or network),
naming the first bad leaf or the checkpoint it contradicts; and the auditor's own
trusted checkpoint and witness quorum."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.integrity.chain import GENESIS, canonical_bytes, link
from audit_svc.ops.export import export_bundle, run_audit
from audit_svc.ops.verify import verify_command
from audit_svc.settings import Settings
from audit_svc.storage import event_reads as reads
from devstack import S3Info
from meshkit import note
from tests.audit_svc.sinkkit import eventually, ingest, sink_settings
from tests.testkit import tls

ROUND = 100  # events between checkpoints: checkpoints at 100, 200, 300


@dataclasses.dataclass
class Log:
    settings: Settings
    chain_id: str
    key_file: Path  # the published public key, as an auditor has it
    notes: list[bytes]  # the signed checkpoints as served after each round


@pytest.fixture
async def log(audit_db: str, s3: S3Info, tmp_path: Path) -> AsyncIterator[Log]:
    settings = sink_settings(audit_db, tmp_path, s3=s3, checkpoint_interval_seconds=0.0)
    notes = []
    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
    ):
        stub = pb_grpc.AuditServiceStub(channel)
        for n in range(1, 4):
            await ingest(stub, ROUND, batch=ROUND, streams=1)

            async def checkpointed(size: int = n * ROUND) -> bool:
                try:
                    text = (await stub.GetCheckpoint(pb.GetCheckpointRequest())).data
                except grpc.aio.AioRpcError:
                    return False
                return note.Checkpoint.parse(note.parse(text).text).size == size

            await eventually(checkpointed)
            notes.append((await stub.GetCheckpoint(pb.GetCheckpointRequest())).data)
        key = (await stub.GetPublicKey(pb.GetPublicKeyRequest())).public_key_pem
    key_file = tmp_path / "log-key.pem"
    key_file.write_text(key)
    yield Log(settings, app.chain_id, key_file, notes)


async def verify(log: Log) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await verify_command(
        log.settings.database_url, log.chain_id, out=out, err=err, settings=log.settings,
        public_key_file=str(log.key_file),
    )  # fmt: skip
    return code, out.getvalue()


async def audit(log: Log, tmp_path: Path, **options: Any) -> tuple[int, dict[str, Any]]:
    folder = tmp_path / "bundle"
    await export_bundle(
        log.settings, folder, chain_id=log.chain_id,
        trusted_sizes=tuple(options.pop("trusted_sizes", ())),
    )  # fmt: skip
    out = io.StringIO()
    code = run_audit(
        str(folder), str(log.key_file), options.get("witness_keys", []), options.get("quorum"),
        options.get("trusted", ""), out=out,
    )  # fmt: skip
    return code, json.loads(out.getvalue())


async def test_an_untouched_log_passes_both(log: Log, tmp_path: Path) -> None:
    assert (await verify(log))[0] == 0
    code, report = await audit(log, tmp_path)
    assert (code, report["ok"], report["events_checked"]) == (0, True, 3 * ROUND)
    assert report["checkpoints_checked"] == [100, 200, 300]
    # The command line, as an auditor runs it.
    done = subprocess.run(
        [sys.executable, "-m", "audit_svc", "audit", str(tmp_path / "bundle"),
         "--public-key", str(log.key_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and json.loads(done.stdout)["ok"]


async def test_an_updated_row(log: Log, db: asyncpg.Connection, tmp_path: Path) -> None:
    await db.execute(
        "UPDATE audit_events SET user_agent = 'tampered' WHERE chain_id = $1 AND seq = 150",
        log.chain_id,
    )
    code, out = await verify(log)
    assert code == 1 and "first bad seq 150 (HASH_MISMATCH)" in out
    code, report = await audit(log, tmp_path)
    assert code == 1
    assert report["failure"]["reason"] == "ROOT_MISMATCH"
    assert (report["failure"]["checkpoint_size"], report["failure"]["first_bad_seq_after"]) == (
        200,
        100,
    )


async def test_a_deleted_middle_row(log: Log, db: asyncpg.Connection, tmp_path: Path) -> None:
    await db.execute("DELETE FROM audit_events WHERE chain_id = $1 AND seq = 150", log.chain_id)
    code, out = await verify(log)
    assert code == 1 and "first bad seq 150 (SEQ_GAP)" in out
    code, report = await audit(log, tmp_path)
    assert code == 1 and (report["failure"]["reason"], report["failure"]["seq"]) == ("SEQ_GAP", 150)


async def test_deleted_newest_rows_with_the_head_moved_back(
    log: Log, db: asyncpg.Connection, tmp_path: Path
) -> None:
    async with db.transaction():
        await db.execute("DELETE FROM audit_events WHERE chain_id = $1 AND seq > 290", log.chain_id)
        await db.execute(
            "UPDATE chains SET head_seq = 290, head_hash = (SELECT hash FROM audit_events"
            " WHERE chain_id = $1 AND seq = 290) WHERE chain_id = $1",
            log.chain_id,
        )
        await db.execute("DELETE FROM checkpoints WHERE chain_id = $1", log.chain_id)
    code, out = await verify(log)
    assert code == 1 and "first bad seq 291 (CHECKPOINT_BEYOND_HEAD)" in out
    code, report = await audit(log, tmp_path)
    assert code == 1
    assert report["failure"]["reason"] == "CHECKPOINT_BEYOND_HEAD"
    assert report["failure"]["checkpoint_size"] == 300


async def test_a_full_rewrite_with_recomputed_hashes(
    log: Log, db: asyncpg.Connection, tmp_path: Path
) -> None:
    chain, prev = log.chain_id, GENESIS
    async with db.transaction():
        async for rows in reads.chain_range(db, chain, 1, 3 * ROUND, 100):
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
        await db.execute("DELETE FROM merkle_tiles WHERE chain_id = $1", chain)
    code, out = await verify(log)
    assert code == 1 and "(CHECKPOINT_MISMATCH)" in out
    code, report = await audit(log, tmp_path)
    assert code == 1 and report["failure"]["reason"] == "ROOT_MISMATCH"
    assert report["failure"]["checkpoint_size"] == 100


async def test_the_auditors_trusted_checkpoint_and_witnesses(log: Log, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.note"
    trusted.write_bytes(log.notes[0])
    code, report = await audit(log, tmp_path, trusted=str(trusted), trusted_sizes=[100])
    assert code == 0 and report["trusted"]["size"] == 100
    # A checkpoint the log never signed (another key) is not a trusted one.
    forged = note.sign(
        note.parse(log.notes[0]).text, note.NoteSigner("x", Ed25519PrivateKey.generate())
    )
    trusted.write_bytes(forged.render())
    code, report = await audit(log, tmp_path, trusted=str(trusted))
    assert report["failure"]["reason"] == "TRUSTED_CHECKPOINT_INVALID"
    # A witness the auditor requires has not cosigned.
    witness = note.NoteSigner("w", Ed25519PrivateKey.generate(), note.ALG_COSIGNATURE_V1)
    code, report = await audit(log, tmp_path, witness_keys=[witness.verifier.vkey])
    assert code == 1 and report["failure"]["reason"] == "WITNESS_QUORUM_NOT_MET"
