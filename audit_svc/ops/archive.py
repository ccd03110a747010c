"""`python -m audit_svc archive|restore`, and the checkpoint and archive checks that
`python -m audit_svc verify` adds when S3 is configured."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from audit_svc.integrity.signer import Signer, Verifier, load_signer
from audit_svc.integrity.verify import VerifyResult
from audit_svc.settings import Settings
from audit_svc.sinks.archive import Archiver, release_restored, restore, verify_archive
from audit_svc.sinks.checkpoints import Checkpointer, load_checkpoints
from audit_svc.sinks.objects import ObjectStore
from audit_svc.sinks.service import object_store
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.merkle_tiles import PgTreeStore
from audit_svc.storage.parquet import PARQUET
from audit_svc.storage.postgres import create_pool
from audit_svc.storage.protocols import SinkStore
from audit_svc.storage.sink_state import PgSinkState

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2


def verifier(settings: Settings, public_key_file: str = "") -> Verifier:
    """The key checkpoints are checked with: a given public key file (an external
    verifier), else the configured signing key, which must already exist."""
    if public_key_file:
        return Verifier.from_pem(Path(public_key_file).read_text())
    if not settings.signing_key and not Path(settings.signing_key_file).exists():
        raise FileNotFoundError(
            f"no checkpoint key: set AUDIT_SIGNING_KEY, AUDIT_SIGNING_KEY_FILE "
            f"(now {settings.signing_key_file}) or --public-key"
        )
    return load_signer(settings.signing_key, settings.signing_key_file)


async def bucket_checks(
    settings: Settings, state: SinkStore, chain_id: str, key: Verifier
) -> tuple[dict[int, bytes], VerifyResult | None]:
    """The chain's signed checkpoints (seq -> hash) from the bucket, and the result of
    verifying its archived objects (None when nothing is archived); the archive must
    end where PostgreSQL's record of it ends, so the chain continues into the live rows."""
    cp_store = object_store(settings, settings.checkpoint_bucket)
    ar_store = object_store(settings, settings.archive_bucket)
    try:
        marks = {c.seq: c.hash for c in await load_checkpoints(cp_store, chain_id, key)}
        through, last_hash = await state.archive_boundary(chain_id)
        if not through:
            return marks, None
        result, end_hash = await verify_archive(ar_store, chain_id, marks, PARQUET)
        if result.ok and (result.to_seq != through or end_hash != last_hash):
            result = VerifyResult(
                False, chain_id, 1, result.to_seq, result.events_checked,
                min(result.to_seq, through) + 1, "ARCHIVE_BOUNDARY_MISMATCH",
            )  # fmt: skip
        return marks, result
    finally:
        cp_store.close()
        ar_store.close()


async def archive_command(settings: Settings, chain_id: str, out: TextIO) -> int:
    """Archive every chain's (or one chain's) events older than the hot retention."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    store = _archive_store(settings)
    cp_store = object_store(settings, settings.checkpoint_bucket)
    # The service's key seals each partition before it is dropped (a signed checkpoint
    # at its end); without the key partitions are archived but not dropped here.
    signer = _signer(settings)
    try:
        chains = [chain_id] if chain_id else await PgEventReader(pool).chain_ids()
        cutoff = datetime.now(UTC) - timedelta(days=settings.hot_retention_days)
        for chain in chains:
            seal = None
            if signer is not None:
                tree = PgTreeStore(pool) if settings.merkle_tree else None
                seal = Checkpointer(
                    PgSinkState(pool), chain, cp_store, signer, every_events=0,
                    interval_seconds=0.0, key_name=settings.log_origin, tree=tree,
                ).seal  # fmt: skip
            archiver = Archiver(
                PgSinkState(pool),
                chain,
                store,
                retention=timedelta(days=settings.hot_retention_days),
                object_events=settings.archive_object_events,
                table=PARQUET,
                seal=seal,
                retire=seal is not None,
            )
            done = await archiver.archive_all(cutoff)
            events = sum(r.event_count for r in done)
            out.write(f"chain {chain}: archived {events} events in {len(done)} objects\n")
            for name, removed in archiver.retired:
                out.write(f"chain {chain}: retired partition {name} ({removed} events)\n")
            if seal is None:
                out.write(f"chain {chain}: no signing key here: partitions kept (unsealed)\n")
    finally:
        store.close()
        cp_store.close()
        await pool.close()
    return EXIT_OK


def _signer(settings: Settings) -> Signer | None:
    """The checkpoint signing key when this machine has it, else None."""
    if not settings.signing_key and not Path(settings.signing_key_file).exists():
        return None
    return load_signer(settings.signing_key, settings.signing_key_file)


async def restore_command(
    settings: Settings, chain_id: str, from_seq: int, to_seq: int, release: bool, out: TextIO
) -> int:
    """Bring an archived range back into PostgreSQL (or drop restored rows again)."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    store = _archive_store(settings)
    try:
        if release:
            n = await release_restored(PgSinkState(pool), chain_id)
            out.write(f"chain {chain_id}: released {n} restored events\n")
        else:
            n = await restore(PgSinkState(pool), store, chain_id, from_seq, to_seq)
            out.write(f"chain {chain_id}: restored {n} events\n")
    finally:
        store.close()
        await pool.close()
    return EXIT_OK


def _archive_store(settings: Settings) -> ObjectStore:
    if not settings.s3_enabled:
        raise SystemExit("AUDIT_S3_ENDPOINT is not set: there is no archive")
    return object_store(settings, settings.archive_bucket)


def run_archive(settings: Settings, chain_id: str) -> int:
    return asyncio.run(archive_command(settings, chain_id, sys.stdout))


def run_restore(
    settings: Settings, chain_id: str, from_seq: int, to_seq: int, release: bool
) -> int:
    return asyncio.run(restore_command(settings, chain_id, from_seq, to_seq, release, sys.stdout))
