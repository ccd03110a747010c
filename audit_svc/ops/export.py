"""`python -m audit_svc export` and `python -m audit_svc audit`: an auditor's bundle of a
chain's events, checkpoints and proofs (audit_svc.integrity.bundle), and its check
with no database and no network.

Export reads the events from PostgreSQL and the signed checkpoints from the
object-locked bucket (PostgreSQL's copies only when S3 is not configured, which the
manifest says); the auditor needs only the log's public key to find out whether the
database's events are the ones the checkpoints signed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit_svc.errors import AuditError
from audit_svc.integrity import bundle
from audit_svc.integrity.chain import canonical_bytes
from audit_svc.integrity.signer import SigningKeyError, Verifier
from audit_svc.integrity.tiles import MissingTile
from audit_svc.settings import Settings
from audit_svc.sinks.checkpoints import load_checkpoints, origin_of
from audit_svc.sinks.service import object_store
from audit_svc.storage import event_reads as reads
from audit_svc.storage import merkle_tiles
from audit_svc.storage import sink_state as sql
from audit_svc.storage.postgres import create_pool
from meshkit import merkle, note

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


async def export_bundle(
    settings: Settings,
    out: Path,
    *,
    chain_id: str = "",
    from_seq: int = 1,
    to_seq: int = 0,
    trusted_sizes: tuple[int, ...] = (),
    public_key_file: str = "",
) -> dict[str, object]:
    """Write the bundle of seqs from_seq..to_seq (the head when 0) to `out`; return
    its manifest."""
    from audit_svc.ops.archive import verifier

    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with reads.acquire(pool) as conn:
            chains = [chain_id] if chain_id else await reads.chain_ids(conn)
            if len(chains) != 1:
                raise ValueError(f"name the chain with --chain (there are {len(chains)})")
            chain = chains[0]
            state = await reads.chain_state(conn, chain)
            if state is None:
                raise ValueError(f"chain {chain!r} does not exist")
            head = state[0]
            first, last = max(from_seq, 1), to_seq or head
            if not first <= last <= head:
                raise ValueError(f"the range {first}..{last} is not within 1..{head}")
            out.mkdir(parents=True, exist_ok=True)
            (out / bundle.CHECKPOINTS).mkdir(exist_ok=True)
            prev_hash = b""
            with open(out / bundle.EVENTS, "wb") as events:
                async for rows in reads.chain_range(conn, chain, first, last):
                    if not prev_hash:
                        prev_hash = rows[0].receipt.prev_hash
                    for r in rows:
                        events.write(canonical_bytes(r.event, chain, r.receipt.seq) + b"\n")
            if settings.s3_enabled:
                source = "bucket"
                store = object_store(settings, settings.checkpoint_bucket)
                try:
                    key = verifier(settings, public_key_file)
                    notes = {
                        c.seq: c.note for c in await load_checkpoints(store, chain, key) if c.note
                    }
                finally:
                    store.close()
            else:
                source = "database (no S3 configured: these copies are not tamper-proof)"
                notes = {}
                after = (chain, 0)
                while page := await sql.list_checkpoints(conn, chain, after, 1000):
                    notes |= {r.seq: r.note.encode() for r in page if r.note}
                    after = (chain, page[-1].seq)
            chosen = {s for s in notes if first <= s <= last} | ({max(notes)} if notes else set())
            covers: dict[str, list[list[object]]] = {}
            for size in sorted(chosen):
                row = await sql.checkpoint_at(conn, chain, size)
                signed = note.parse(notes[size])
                if row is not None and row.cosignatures:
                    signed = signed.with_signatures(row.cosignatures)
                (out / bundle.CHECKPOINTS / bundle.checkpoint_name(size)).write_bytes(
                    signed.render()
                )
                try:
                    covers[str(size)] = await _cover(conn, chain, first - 1, min(last, size), size)
                except MissingTile:
                    pass  # a checkpoint beyond the tree: the audit says so
            consistency = []
            newest = max(chosen) if chosen else 0
            for old in trusted_sizes:
                if 0 < old <= newest:
                    plan = merkle.consistency_plan(old, newest)
                    nodes = await merkle_tiles.node_hashes(conn, chain, merkle.plan_nodes(plan))
                    hashes = [bundle.b64(h) for h in merkle.assemble(plan, nodes)]
                    consistency.append({"old": old, "new": newest, "hashes": hashes})
    finally:
        await pool.close()
    manifest: dict[str, object] = {
        "format": bundle.FORMAT, "chain_id": chain, "origin": origin_of(settings.log_origin, chain),
        "from_seq": first, "to_seq": last, "head_seq": head, "prev_hash": prev_hash.hex(),
        "exported_at": datetime.now(UTC).isoformat(), "checkpoints_source": source,
    }  # fmt: skip
    (out / bundle.PROOFS).write_text(json.dumps({"covers": covers, "consistency": consistency}))
    (out / bundle.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


async def _cover(conn: Any, chain: str, lo: int, hi: int, size: int) -> list[list[object]]:
    """The roots of the parts of the tree of `size` outside leaves [lo, hi)."""
    ranges = merkle.cover_plan(lo, hi, size)
    wanted = {n for a, b in ranges for n in merkle.range_nodes(a, b)}
    nodes = await merkle_tiles.node_hashes(conn, chain, wanted)
    return [
        [a, b, bundle.b64(merkle.fold([nodes[n] for n in merkle.range_nodes(a, b)]))]
        for a, b in ranges
    ]


def run_export(
    settings: Settings, out: str, chain_id: str, from_seq: int, to_seq: int,
    trusted_sizes: tuple[int, ...], public_key_file: str,
) -> int:  # fmt: skip
    """Entry point of `python -m audit_svc export`."""
    try:
        manifest = asyncio.run(
            export_bundle(
                settings,
                Path(out),
                chain_id=chain_id,
                from_seq=from_seq,
                to_seq=to_seq,
                trusted_sizes=trusted_sizes,
                public_key_file=public_key_file,
            )  # fmt: skip
        )
    except (AuditError, OSError, ValueError, SigningKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(manifest))
    return EXIT_OK


def read_public_key(text: str) -> Ed25519PublicKey:
    """A log key given as a PEM file, a verifier-key file, or a verifier key."""
    path = Path(text)
    data = path.read_text() if path.exists() else text
    if "BEGIN PUBLIC KEY" in data:
        return Verifier.from_pem(data).public_key
    return note.NoteVerifier.parse(data).public_key


def read_witness_key(text: str) -> note.NoteVerifier:
    path = Path(text)
    return note.NoteVerifier.parse(path.read_text() if path.exists() else text)


def run_audit(
    folder: str,
    public_key: str,
    witness_keys: list[str],
    quorum: int | None,
    trusted_checkpoint: str,
    out: TextIO | None = None,
) -> int:
    """Entry point of `python -m audit_svc audit`: the JSON report on stdout; exit 0
    when the bundle verifies, 1 naming the first failure, 2 if the inputs are unusable."""
    out = sys.stdout if out is None else out
    try:
        key = read_public_key(public_key)
        witnesses = [read_witness_key(k) for k in witness_keys]
        trusted = Path(trusted_checkpoint).read_bytes() if trusted_checkpoint else None
    except (OSError, ValueError, note.NoteError, SigningKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    report = bundle.audit(
        Path(folder), key, witness_keys=witnesses, quorum=quorum, trusted_checkpoint=trusted
    )
    out.write(json.dumps(report.as_json(), indent=1) + "\n")
    if not report.ok:
        print(
            f"AUDIT FAILED: {report.failure['reason']}: {report.failure['detail']}", file=sys.stderr
        )
    return EXIT_OK if report.ok else EXIT_FAILED
