"""The daily partitions of audit_events: migration 0009 converts a populated table with
every row, hash and Merkle tile intact (verify, the VerifyIntegrity RPC and the offline
audit pass afterwards); partitions exist ahead and on demand; duplicates are caught
across partitions; retention drops archived partitions through the database's one door,
which keeps what is not archived and what a legal hold covers."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.errors import PartitionKept
from audit_svc.integrity.chain import ready
from audit_svc.integrity.signer import load_signer
from audit_svc.model import Event, Outcome
from audit_svc.ops.export import export_bundle, run_audit
from audit_svc.ops.migrate import upgrade
from audit_svc.ops.verify import verify_command
from audit_svc.sinks import Archiver, object_store
from audit_svc.sinks.checkpoints import Checkpointer
from audit_svc.storage import copy_rows, merkle_tiles
from audit_svc.storage.event_writes import append, ensure_chain, prepare
from audit_svc.storage.merkle_tiles import PgTreeStore
from audit_svc.storage.partitions import DEFAULT_PARTITION, day_of
from audit_svc.storage.postgres import EVENT_COLUMNS, init_connection
from audit_svc.storage.sink_state import PgSinkState
from devstack import PostgresInfo, S3Info
from meshkit import note
from tests.audit_svc.sinkkit import eventually, ingest, sink_settings
from tests.testkit import tls

NOW = datetime.now(UTC)


def part(t: datetime) -> str:
    return f"audit_events_{day_of(t):%Y%m%d}"


async def _admin(postgres: PostgresInfo, statement: str) -> None:
    conn = await asyncpg.connect(postgres.for_database("postgres").dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def db_before_0009(postgres: PostgresInfo) -> AsyncIterator[str]:
    """A database migrated to revision 0008 (before partitioning)."""
    name = f"audit_0008_{uuid.uuid4().hex[:10]}"
    await _admin(postgres, f'CREATE DATABASE "{name}"')
    dsn = postgres.for_database(name).dsn
    await asyncio.to_thread(upgrade, dsn, "0008")
    yield dsn
    await _admin(postgres, f'DROP DATABASE "{name}" WITH (FORCE)')


# The columns before privacy (migration 0013): the last three did not exist yet.
OLD_COLUMNS = EVENT_COLUMNS[:-3]
PRIVACY_COLUMNS = (
    "ALTER TABLE audit_events {0} username_token{1}, {0} ip_token{1}, {0} ip_sealed{2}"
)
_UNSEALED_TAIL = b"\xff\xff\xff\xff" * 2 + bytes(4)  # NULL, NULL, '' (nothing sealed)


def _before_privacy(row: bytes) -> bytes:
    """A COPY row without the privacy columns (its events are not sealed)."""
    assert row.endswith(_UNSEALED_TAIL)
    return struct.pack("!h", len(OLD_COLUMNS)) + row[2 : -len(_UNSEALED_TAIL)]


async def write_as_before(conn: asyncpg.Connection, chain: str, events: list[Event]) -> None:
    """Store events the way the writer before revision 0009 did: COPY at the head."""
    await ensure_chain(conn, chain)
    head = (0, b"\0" * 32)
    for i in range(0, len(events), 40):
        ready_events = [ready(e, chain) for e in events[i : i + 40]]
        group = prepare(chain, head, ready_events, {}, merkle=False)
        async with conn.transaction():
            data = b"".join((copy_rows.HEADER, *map(_before_privacy, group.rows),
                             copy_rows.TRAILER))  # fmt: skip
            await conn.copy_to_table(
                "audit_events", source=memoryview(data), columns=OLD_COLUMNS, format="binary"
            )
            await conn.execute(
                "UPDATE chains SET head_seq = $2, head_hash = $3 WHERE chain_id = $1",
                chain, *group.end,
            )  # fmt: skip
        head = group.end


async def snapshot(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], ...]:
    return (
        await conn.fetch("SELECT * FROM audit_events ORDER BY chain_id, seq"),
        await conn.fetch("SELECT * FROM merkle_tiles ORDER BY chain_id, level, idx"),
        await conn.fetch("SELECT * FROM chains ORDER BY chain_id"),
    )


async def test_migration_converts_a_populated_table_and_the_chain_still_verifies(
    db_before_0009: str, s3: S3Info, tmp_path: Path, make_event: Callable[..., Event]
) -> None:
    settings = sink_settings(db_before_0009, tmp_path, s3=s3, checkpoint_interval_seconds=0.0)
    chain = settings.chain_id
    old = [make_event(NOW - timedelta(days=500))]  # before any daily partition: default
    old += [make_event(NOW - timedelta(days=3 - i // 40, minutes=i), details={"n": i})
            for i in range(120)]  # fmt: skip
    conn = await asyncpg.connect(db_before_0009)
    await init_connection(conn)
    try:
        await write_as_before(conn, chain, old)
        await write_as_before(conn, "chain-other", [make_event(NOW - timedelta(days=1))])
        # Today's tile builder reads today's columns: those of privacy (0013) stand in
        # for the moment it reads, and leave again before the migration.
        await conn.execute(PRIVACY_COLUMNS.format("ADD COLUMN", " bytea", " text"))
        await merkle_tiles.catch_up(conn, chain)
        await conn.execute(PRIVACY_COLUMNS.format("DROP COLUMN", "", ""))
        before = await snapshot(conn)
        await asyncio.to_thread(upgrade, db_before_0009, "0012")  # through partitioning
        assert await snapshot(conn) == before
        await asyncio.to_thread(upgrade, db_before_0009)  # and on to the head
        days = {r["relname"] for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'audit_events'::regclass")}  # fmt: skip
        assert {part(NOW - timedelta(days=d)) for d in (3, 2, 1)} | {DEFAULT_PARTITION} <= days
        assert await conn.fetchval(f"SELECT count(*) FROM {DEFAULT_PARTITION}") == 1
    finally:
        await conn.close()

    async with AuditApp(settings) as app, tls.channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        await ingest(stub, 50, batch=25, streams=1)

        async def signed_head() -> bool:
            try:
                text = (await stub.GetCheckpoint(pb.GetCheckpointRequest())).data
            except grpc.aio.AioRpcError:
                return False
            return note.Checkpoint.parse(note.parse(text).text).size == 171

        await eventually(signed_head)
        verified = await stub.VerifyIntegrity(pb.VerifyIntegrityRequest())
        assert (verified.ok, verified.events_checked) == (True, 171)
        key = (await stub.GetPublicKey(pb.GetPublicKeyRequest())).public_key_pem
        # The service made today's partition and the next days' ahead of the rows.
        conn = await asyncpg.connect(db_before_0009)
        try:
            for d in range(4):
                assert await conn.fetchval("SELECT to_regclass($1)", part(NOW + timedelta(days=d)))
        finally:
            await conn.close()

    out, err = io.StringIO(), io.StringIO()
    assert await verify_command(db_before_0009, chain, out=out, err=err, settings=settings) == 0
    key_file = tmp_path / "key.pem"
    key_file.write_text(key)
    await export_bundle(settings, tmp_path / "bundle", chain_id=chain)
    report = io.StringIO()
    assert run_audit(str(tmp_path / "bundle"), str(key_file), [], None, "", out=report) == 0
    assert json.loads(report.getvalue())["events_checked"] == 171


async def test_a_resend_is_a_duplicate_across_partitions(
    db: asyncpg.Connection, make_event: Callable[..., Event]
) -> None:
    await ensure_chain(db, "c")
    late_yesterday = day_of(NOW) - timedelta(hours=1)
    first = make_event(late_yesterday)
    [(outcome, receipt)] = await append(db, "c", [first])
    assert outcome is Outcome.STORED
    # The same event again, and its id again with a time in the next day's partition.
    again = await append(db, "c", [first, make_event(late_yesterday + timedelta(hours=2),
                                                     event_id=first.event_id)])  # fmt: skip
    assert [(o, r.seq, r.hash) for o, r in again] == [(Outcome.DUPLICATE, 1, receipt.hash)] * 2
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 1


async def test_a_day_without_a_partition_gets_one_on_demand(
    db: asyncpg.Connection, make_event: Callable[..., Event]
) -> None:
    await ensure_chain(db, "c")
    then = NOW - timedelta(days=20)
    assert await db.fetchval("SELECT to_regclass($1)", part(then)) is None
    await append(db, "c", [make_event(then)])
    assert await db.fetchval(f"SELECT count(*) FROM {part(then)}") == 1
    # with the parent's statistics target for the tags (rare tags are planned as rare)
    target = await db.fetchval(
        "SELECT attstattarget FROM pg_attribute WHERE attrelid = $1::regclass "
        "AND attname = 'compliance_tags'",
        part(then),
    )
    assert target == 1000


async def test_retention_drops_archived_partitions_through_the_door(
    audit_db: str, s3: S3Info, db: asyncpg.Connection, tmp_path: Path,
    make_event: Callable[..., Event],
) -> None:  # fmt: skip
    settings = sink_settings(audit_db, tmp_path, s3=s3)
    chain = settings.chain_id
    await ensure_chain(db, chain)
    ancient, held = NOW - timedelta(days=500), NOW - timedelta(days=201)
    days = [NOW - timedelta(days=d) for d in (202, 201, 200)]
    await append(db, chain, [make_event(ancient)])  # the default partition's
    for day in days:
        await append(db, chain, [make_event(day + timedelta(seconds=i)) for i in range(30)])
    await append(db, chain, [make_event(NOW - timedelta(minutes=i)) for i in range(20)])
    # A legal hold on one day, as the legal-hold revision would answer it.
    lo, hi = day_of(held), day_of(held) + timedelta(days=1)
    await db.execute(
        "CREATE OR REPLACE FUNCTION audit_events_held(user_id text, lo timestamptz, "
        "hi timestamptz) RETURNS boolean LANGUAGE sql STABLE "
        f"RETURN lo < '{hi.isoformat()}' AND hi > '{lo.isoformat()}'"
    )
    state = PgSinkState(db)
    cutoff = NOW - timedelta(days=90)
    with pytest.raises(PartitionKept):  # nothing is archived yet: the door refuses
        await state.retire_partition(part(days[0]), cutoff)

    store = object_store(settings, settings.archive_bucket)
    cp_store = object_store(settings, settings.checkpoint_bucket)
    signer = load_signer("", settings.signing_key_file)
    checkpointer = Checkpointer(
        state, chain, cp_store, signer, every_events=10**9, interval_seconds=10**9,
        tree=PgTreeStore(db),
    )  # fmt: skip
    try:
        archiver = Archiver(
            state, chain, store, retention=timedelta(days=90), object_events=25,
            seal=checkpointer.seal,
        )  # fmt: skip
        ranges = await archiver.archive_all(cutoff)
    finally:
        store.close()
        cp_store.close()
    assert sum(r.event_count for r in ranges) == 91
    assert sorted(archiver.retired) == sorted(
        [(part(days[0]), 30), (part(days[2]), 30), (DEFAULT_PARTITION, 1)]
    )
    for gone in (days[0], days[2]):
        assert await db.fetchval("SELECT to_regclass($1)", part(gone)) is None
    # Each partition was sealed by a signed checkpoint at its end before it went.
    sealed = [r["seq"] for r in await db.fetch("SELECT seq FROM checkpoints ORDER BY seq")]
    assert sealed == [31, 61, 91]
    # The held day stays, with its rows; so do the fresh ones.
    assert await db.fetchval(f"SELECT count(*) FROM {part(held)}") == 30
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 50
    out, err = io.StringIO(), io.StringIO()
    code = await verify_command(audit_db, chain, out=out, err=err, settings=settings)
    assert code == 0, out.getvalue() + err.getvalue()
    assert "archive: OK" in out.getvalue()
