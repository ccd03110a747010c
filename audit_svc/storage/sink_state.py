"""SQL of the sinks: cursors, lag, per-window counts, checkpoints, archived ranges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from audit_svc.errors import PartitionKept
from audit_svc.model import StoredEvent
from audit_svc.storage import partitions
from audit_svc.storage.postgres import (
    EVENT_COLUMNS,
    SELECT_EVENT,
    Database,
    acquire,
    event_row,
    stored_event,
)
from audit_svc.storage.protocols import (
    ArchivedRange,
    CheckpointRow,
    DeadLetter,
    Head,
    Lag,
    Partition,
    WindowCount,
)

__all__ = ["ArchivedRange", "CheckpointRow", "Lag", "PgSinkState", "WindowCount"]

WINDOW_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


async def cursor(conn: asyncpg.Connection, sink: str, chain_id: str) -> int:
    """The last seq the sink has handled on the chain; 0 before its first run."""
    value = await conn.fetchval(
        "SELECT last_seq FROM sink_cursors WHERE sink = $1 AND chain_id = $2", sink, chain_id
    )
    return int(value or 0)


async def set_cursor(conn: asyncpg.Connection, sink: str, chain_id: str, last_seq: int) -> None:
    """Move the sink's cursor forward (never back)."""
    await conn.execute(
        """
        INSERT INTO sink_cursors (sink, chain_id, last_seq) VALUES ($1, $2, $3)
        ON CONFLICT (sink, chain_id) DO UPDATE
        SET last_seq = GREATEST(sink_cursors.last_seq, EXCLUDED.last_seq), update_time = now()
        """,
        sink,
        chain_id,
        last_seq,
    )


async def lag(conn: asyncpg.Connection, sink: str, chain_id: str) -> Lag:
    """Events after the sink's cursor, and the age of the oldest of them."""
    return await lag_after(conn, chain_id, await cursor(conn, sink, chain_id))


async def lag_after(conn: asyncpg.Connection, chain_id: str, seq: int) -> Lag:
    """Events after `seq`, and how long ago the first of them was received."""
    row = await conn.fetchrow(
        """
        SELECT c.head_seq - $2 AS events,
               (SELECT EXTRACT(EPOCH FROM now() - e.receive_time) FROM audit_events e
                WHERE e.chain_id = c.chain_id AND e.seq = $2 + 1) AS seconds
        FROM chains c WHERE c.chain_id = $1
        """,
        chain_id,
        seq,
    )
    if row is None:
        return Lag(0, 0.0)
    return Lag(max(int(row["events"]), 0), max(float(row["seconds"] or 0.0), 0.0))


async def head_seq(conn: asyncpg.Connection, chain_id: str) -> int:
    """The chain's head seq; 0 for an unknown or empty chain."""
    value = await conn.fetchval("SELECT head_seq FROM chains WHERE chain_id = $1", chain_id)
    return int(value or 0)


async def window_counts(
    conn: asyncpg.Connection, chain_id: str, after: int, upto: int, width: timedelta
) -> list[WindowCount]:
    """The full counts, over every event with seq <= upto, of each window touched by the
    events after <= seq <= upto: rewriting a window's point with them is idempotent."""
    windows = [
        r["w"]
        for r in await conn.fetch(
            "SELECT DISTINCT date_bin($4::interval, event_time, $5::timestamptz) AS w "
            "FROM audit_events WHERE chain_id = $1 AND seq > $2 AND seq <= $3",
            chain_id,
            after,
            upto,
            width,
            WINDOW_ORIGIN,
        )
    ]
    if not windows:
        return []
    rows = await conn.fetch(
        """
        SELECT date_bin($4::interval, event_time, $5::timestamptz) AS w, event_type, service,
               result, data_classification, count(*) AS n
        FROM audit_events
        WHERE chain_id = $1 AND seq <= $2
          AND date_bin($4::interval, event_time, $5::timestamptz) = ANY($3::timestamptz[])
          AND event_time >= $6 AND event_time < $7
        GROUP BY 1, 2, 3, 4, 5
        """,
        chain_id,
        upto,
        windows,
        width,
        WINDOW_ORIGIN,
        min(windows),
        max(windows) + width,
    )
    return [
        WindowCount(r["w"], r["event_type"], r["service"], r["result"],
                    r["data_classification"], int(r["n"]))
        for r in rows
    ]  # fmt: skip


async def last_checkpoint(conn: asyncpg.Connection, chain_id: str) -> CheckpointRow | None:
    """The newest checkpoint of the chain, or None."""
    row = await conn.fetchrow(
        "SELECT * FROM checkpoints WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1", chain_id
    )
    return None if row is None else _checkpoint(row)


async def add_checkpoint(conn: asyncpg.Connection, cp: CheckpointRow) -> None:
    """Record a checkpoint already written to the bucket."""
    await conn.execute(
        "INSERT INTO checkpoints (chain_id, seq, hash, checkpoint_time, key_id, signature, "
        "object_key, root_hash, note, cosignatures) VALUES ($1, $2, $3, $4, $5, $6, $7, "
        "$8, $9, $10) ON CONFLICT (chain_id, seq) DO NOTHING",
        cp.chain_id, cp.seq, cp.hash, cp.checkpoint_time, cp.key_id, cp.signature,
        cp.object_key, cp.root_hash or None, cp.note or None, cp.cosignatures,
    )  # fmt: skip


async def add_cosignatures(conn: asyncpg.Connection, chain_id: str, seq: int, lines: str) -> None:
    """Keep witnesses' cosignature lines with the checkpoint they sign."""
    await conn.execute(
        "UPDATE checkpoints SET cosignatures = cosignatures || $3 WHERE chain_id = $1 AND seq = $2",
        chain_id, seq, lines,
    )  # fmt: skip


async def checkpoint_at(conn: asyncpg.Connection, chain_id: str, seq: int) -> CheckpointRow | None:
    """The chain's checkpoint of tree size `seq`, or None."""
    row = await conn.fetchrow(
        "SELECT * FROM checkpoints WHERE chain_id = $1 AND seq = $2", chain_id, seq
    )
    return None if row is None else _checkpoint(row)


async def last_note(conn: asyncpg.Connection, chain_id: str) -> CheckpointRow | None:
    """The newest checkpoint of the chain in the C2SP form, or None."""
    row = await conn.fetchrow(
        "SELECT * FROM checkpoints WHERE chain_id = $1 AND note IS NOT NULL "
        "ORDER BY seq DESC LIMIT 1",
        chain_id,
    )
    return None if row is None else _checkpoint(row)


async def list_checkpoints(
    conn: asyncpg.Connection, chain_id: str, after: tuple[str, int], limit: int
) -> list[CheckpointRow]:
    """Checkpoints ordered by (chain, seq) after the position `after`; one chain or all."""
    rows = await conn.fetch(
        "SELECT * FROM checkpoints WHERE ($1 = '' OR chain_id = $1) AND (chain_id, seq) > ($2, $3)"
        " ORDER BY chain_id, seq LIMIT $4",
        chain_id,
        after[0],
        after[1],
        limit,
    )
    return [_checkpoint(r) for r in rows]


def _checkpoint(row: asyncpg.Record) -> CheckpointRow:
    return CheckpointRow(
        row["chain_id"], int(row["seq"]), bytes(row["hash"]), row["checkpoint_time"],
        row["key_id"], bytes(row["signature"]), row["object_key"],
        bytes(row["root_hash"] or b""), row["note"] or "", row["cosignatures"] or "",
    )  # fmt: skip


async def archived_ranges(conn: asyncpg.Connection, chain_id: str) -> list[ArchivedRange]:
    """The chain's archived ranges in seq order."""
    rows = await conn.fetch(
        "SELECT * FROM archived_ranges WHERE chain_id = $1 ORDER BY first_seq", chain_id
    )
    return [_archived(r) for r in rows]


async def archived_in(
    conn: asyncpg.Connection, start: datetime | None, end: datetime | None,
    before: datetime | None,
) -> list[ArchivedRange]:  # fmt: skip
    """Every chain's ranges with Parquet that may hold events with start <= event_time
    < end and event_time <= before (None: unbounded), newest max_event_time first."""
    rows = await conn.fetch(
        "SELECT * FROM archived_ranges WHERE parquet_key <> ''"
        " AND ($1::timestamptz IS NULL OR max_event_time >= $1)"
        " AND ($2::timestamptz IS NULL OR min_event_time < $2)"
        " AND ($3::timestamptz IS NULL OR min_event_time <= $3)"
        " ORDER BY max_event_time DESC, chain_id, first_seq",
        start,
        end,
        before,
    )
    return [_archived(r) for r in rows]


async def record_table(conn: asyncpg.Connection, r: ArchivedRange) -> None:
    """Record the Parquet object of a range archived without one."""
    await conn.execute(
        "UPDATE archived_ranges SET parquet_key = $3, parquet_version_id = $4,"
        " parquet_sha256 = $5, min_event_time = $6, max_event_time = $7"
        " WHERE chain_id = $1 AND first_seq = $2 AND parquet_key = ''",
        r.chain_id, r.first_seq, r.parquet_key, r.parquet_version_id, r.parquet_sha256,
        r.min_event_time, r.max_event_time,
    )  # fmt: skip


def _archived(r: asyncpg.Record) -> ArchivedRange:
    return ArchivedRange(
        r["chain_id"], int(r["first_seq"]), int(r["last_seq"]), int(r["event_count"]),
        bytes(r["prev_hash"]), bytes(r["last_hash"]), bytes(r["sha256"]), r["object_key"],
        r["version_id"], r["parquet_key"], r["parquet_version_id"],
        bytes(r["parquet_sha256"] or b""), r["min_event_time"], r["max_event_time"],
    )  # fmt: skip


async def archive_candidates(
    conn: asyncpg.Connection, chain_id: str, after: int, cutoff: datetime, limit: int
) -> list[StoredEvent]:
    """Up to `limit` events from seq after+1 on, stopping at the first one received at
    or after `cutoff`: archived ranges stay contiguous."""
    rows = await conn.fetch(
        f"{SELECT_EVENT} WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        chain_id,
        after,
        limit,
    )
    out = []
    for row in rows:
        if row["receive_time"] >= cutoff:
            break
        out.append(stored_event(row))
    return out


async def record_archived(conn: asyncpg.Connection, r: ArchivedRange) -> int:
    """Record the range as archived through the database's door (`audit_record_archived`,
    migration 0011: the writer role may not insert into archived_ranges itself), which
    refuses (nothing recorded) a range that does not follow the chain's last archived
    one, whose first prev_hash and last hash are not the stored rows', or whose count is
    not the rows stored. The rows stay until their partition is retired
    (`retire_partitions`). Returns the range's count."""
    return int(
        await conn.fetchval(
            "SELECT audit_record_archived($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
            " $13, $14)",
            r.chain_id,
            r.first_seq,
            r.last_seq,
            r.event_count,
            r.prev_hash,
            r.last_hash,
            r.sha256,
            r.object_key,
            r.version_id,
            r.parquet_key,
            r.parquet_version_id,
            r.parquet_sha256 or None,
            r.min_event_time,
            r.max_event_time,
        )  # fmt: skip
    )


async def expired_partitions(conn: asyncpg.Connection, before: datetime) -> list[Partition]:
    """The daily partitions that end at or before `before`, oldest first, and the
    default partition when it holds rows older than `before`."""
    out = [p for p in await partitions.partitions(conn) if p.upper and p.upper <= before]
    if await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {partitions.DEFAULT_PARTITION} WHERE event_time < $1)",
        before,
    ):
        out.append(Partition(partitions.DEFAULT_PARTITION, None, None))
    return out


async def partition_end(
    conn: asyncpg.Connection, name: str, chain_id: str, before: datetime
) -> tuple[int, int, bytes] | None:
    """The chain's first and last seq in the partition (rows before `before` only, for
    the default partition) and the hash at the last; None when it has none there."""
    table = partitions.quoted(name)
    row = await conn.fetchrow(
        f"SELECT min(seq) AS first, max(seq) AS last FROM {table} "
        "WHERE chain_id = $1 AND event_time < $2",
        chain_id,
        before,
    )
    if row is None or row["last"] is None:
        return None
    digest = await conn.fetchval(
        f"SELECT hash FROM {table} WHERE chain_id = $1 AND seq = $2", chain_id, row["last"]
    )
    return int(row["first"]), int(row["last"]), bytes(digest)


async def retire_partition(conn: asyncpg.Connection, name: str, before: datetime) -> int:
    """Detach and drop the partition (the default one: delete its rows older than
    `before`) through the database's one door, which refuses unless every row in it is
    archived and no legal hold covers it (`PartitionKept`). Returns the number of
    events removed."""
    try:
        return await partitions.retire(conn, name, before)
    except (asyncpg.ObjectNotInPrerequisiteStateError, asyncpg.UndefinedTableError) as exc:
        raise PartitionKept(f"{name}: {exc}") from exc


async def drop_restored(
    conn: asyncpg.Connection, chain_id: str, through: int, cutoff: datetime
) -> int:
    """Delete restored rows of archived ranges (seq <= through) received before cutoff
    (`audit_drop_restored`: only rows within archived ranges)."""
    return int(
        await conn.fetchval("SELECT audit_drop_restored($1, $2, $3)", chain_id, through, cutoff)
    )


async def restore_events(conn: asyncpg.Connection, events: Sequence[StoredEvent]) -> int:
    """Put archived events back into audit_events (hourly counts untouched: they never
    left them). Rows already present are kept. Returns the number inserted."""
    if not events:
        return 0
    times = [s.event.event_time for s in events]
    await partitions.KnownDays().ensure(conn, min(times), max(times))
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE restore_events (LIKE audit_events INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        await conn.copy_records_to_table(
            "restore_events",
            records=[event_row(s.event, s.receipt) for s in events],
            columns=EVENT_COLUMNS,
        )
        status = await conn.execute(
            "INSERT INTO audit_events SELECT * FROM restore_events ON CONFLICT DO NOTHING"
        )
    return int(status.split()[-1])


async def events_after(
    conn: asyncpg.Connection, chain_id: str, after: int, limit: int
) -> list[StoredEvent]:
    """Up to `limit` events of the chain with seq > after, in seq order."""
    rows = await conn.fetch(
        f"{SELECT_EVENT} WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        chain_id,
        after,
        limit,
    )
    return [stored_event(row) for row in rows]


async def dead_letter(conn: asyncpg.Connection, d: DeadLetter) -> None:
    """Record a batch given up on and move the sink's cursor past it, in one transaction."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO forwarder_dead_letters (sink, chain_id, first_seq, last_seq, event_ids,"
            " attempts, last_status, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            d.sink, d.chain_id, d.first_seq, d.last_seq, list(d.event_ids), d.attempts,
            d.last_status, d.last_error,
        )  # fmt: skip
        await set_cursor(conn, d.sink, d.chain_id, d.last_seq)


async def archive_boundary(conn: asyncpg.Connection, chain_id: str) -> tuple[int, bytes]:
    """The last archived seq of the chain and its hash; (0, b'') when none is archived."""
    row = await conn.fetchrow(
        "SELECT last_seq, last_hash FROM archived_ranges WHERE chain_id = $1 "
        "ORDER BY last_seq DESC LIMIT 1",
        chain_id,
    )
    return (0, b"") if row is None else (int(row["last_seq"]), bytes(row["last_hash"]))


async def chain_state(conn: asyncpg.Connection, chain_id: str) -> Head | None:
    """The chain's head (seq, hash) as recorded in `chains`; None for an unknown chain."""
    row = await conn.fetchrow(
        "SELECT head_seq, head_hash FROM chains WHERE chain_id = $1", chain_id
    )
    return None if row is None else (int(row["head_seq"]), bytes(row["head_hash"]))


class PgSinkState:
    """`SinkStore` on PostgreSQL: each call takes a connection of `db` (a pool, or
    one connection), with driver errors mapped."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def cursor(self, sink: str, chain_id: str) -> int:
        async with acquire(self._db) as conn:
            return await cursor(conn, sink, chain_id)

    async def set_cursor(self, sink: str, chain_id: str, last_seq: int) -> None:
        async with acquire(self._db) as conn:
            await set_cursor(conn, sink, chain_id, last_seq)

    async def lag(self, sink: str, chain_id: str) -> Lag:
        async with acquire(self._db) as conn:
            return await lag(conn, sink, chain_id)

    async def lag_after(self, chain_id: str, seq: int) -> Lag:
        async with acquire(self._db) as conn:
            return await lag_after(conn, chain_id, seq)

    async def head_seq(self, chain_id: str) -> int:
        async with acquire(self._db) as conn:
            return await head_seq(conn, chain_id)

    async def chain_state(self, chain_id: str) -> Head | None:
        async with acquire(self._db) as conn:
            return await chain_state(conn, chain_id)

    async def window_counts(
        self, chain_id: str, after: int, upto: int, width: timedelta
    ) -> list[WindowCount]:
        async with acquire(self._db) as conn:
            return await window_counts(conn, chain_id, after, upto, width)

    async def last_checkpoint(self, chain_id: str) -> CheckpointRow | None:
        async with acquire(self._db) as conn:
            return await last_checkpoint(conn, chain_id)

    async def add_checkpoint(self, cp: CheckpointRow) -> None:
        async with acquire(self._db) as conn:
            await add_checkpoint(conn, cp)

    async def list_checkpoints(
        self, chain_id: str, after: tuple[str, int], limit: int
    ) -> list[CheckpointRow]:
        async with acquire(self._db) as conn:
            return await list_checkpoints(conn, chain_id, after, limit)

    async def archived_ranges(self, chain_id: str) -> list[ArchivedRange]:
        async with acquire(self._db) as conn:
            return await archived_ranges(conn, chain_id)

    async def archive_boundary(self, chain_id: str) -> Head:
        async with acquire(self._db) as conn:
            return await archive_boundary(conn, chain_id)

    async def archived_in(
        self, start: datetime | None, end: datetime | None, before: datetime | None
    ) -> list[ArchivedRange]:
        async with acquire(self._db) as conn:
            return await archived_in(conn, start, end, before)

    async def record_table(self, r: ArchivedRange) -> None:
        async with acquire(self._db) as conn:
            await record_table(conn, r)

    async def archive_candidates(
        self, chain_id: str, after: int, cutoff: datetime, limit: int
    ) -> list[StoredEvent]:
        async with acquire(self._db) as conn:
            return await archive_candidates(conn, chain_id, after, cutoff, limit)

    async def record_archived(self, r: ArchivedRange) -> int:
        async with acquire(self._db) as conn:
            return await record_archived(conn, r)

    async def expired_partitions(self, before: datetime) -> list[Partition]:
        async with acquire(self._db) as conn:
            return await expired_partitions(conn, before)

    async def partition_end(
        self, name: str, chain_id: str, before: datetime
    ) -> tuple[int, int, bytes] | None:
        async with acquire(self._db) as conn:
            return await partition_end(conn, name, chain_id, before)

    async def retire_partition(self, name: str, before: datetime) -> int:
        async with acquire(self._db) as conn:
            return await retire_partition(conn, name, before)

    async def drop_restored(self, chain_id: str, through: int, cutoff: datetime) -> int:
        async with acquire(self._db) as conn:
            return await drop_restored(conn, chain_id, through, cutoff)

    async def restore_events(self, events: Sequence[StoredEvent]) -> int:
        async with acquire(self._db) as conn:
            return await restore_events(conn, events)

    async def events_after(self, chain_id: str, after: int, limit: int) -> list[StoredEvent]:
        async with acquire(self._db) as conn:
            return await events_after(conn, chain_id, after, limit)

    async def dead_letter(self, d: DeadLetter) -> None:
        async with acquire(self._db) as conn:
            await dead_letter(conn, d)
