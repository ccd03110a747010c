"""The write side: one group commit extends a chain with a list of events."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from audit_svc.errors import ChainLockLost, HeadMoved
from audit_svc.integrity.chain import ready
from audit_svc.integrity.tiles import TileAppends
from audit_svc.model import ROW_FIELDS, Event, Outcome, Ready, Receipt, StoredEvent
from audit_svc.storage import copy_rows, merkle_tiles
from audit_svc.storage.partitions import KnownDays
from audit_svc.storage.postgres import (
    EVENT_COLUMNS,
    SELECT_EVENT,
    Database,
    acquire,
    map_db_errors,
    stored_event,
)
from audit_svc.storage.protocols import Head, Prepared
from meshkit.merkle import CompactRange, leaf_hashes

log = logging.getLogger(__name__)
_TIME = ROW_FIELDS.index("event_time")

__all__ = [
    "ChainLock", "Head", "HeadMoved", "PgEventStore", "Prepared", "append", "append_ready",
    "ensure_chain",
]  # fmt: skip


async def ensure_chain(conn: asyncpg.Connection, chain_id: str) -> None:
    """Create the chain's head row if this is its first use."""
    await conn.execute(
        "INSERT INTO chains (chain_id) VALUES ($1) ON CONFLICT (chain_id) DO NOTHING", chain_id
    )


async def claim_chain(conn: asyncpg.Connection, chain_id: str) -> bool:
    """Take the session advisory lock that makes this process the chain's only writer."""
    return bool(
        await conn.fetchval("SELECT pg_try_advisory_lock(hashtext('chain:' || $1))", chain_id)
    )


async def read_head(conn: asyncpg.Connection, chain_id: str, *, lock: bool = False) -> Head:
    """The chain's head; `lock` holds its row to the end of the transaction."""
    row = await conn.fetchrow(
        "SELECT head_seq, head_hash FROM chains WHERE chain_id = $1" + (" FOR UPDATE" * lock),
        chain_id,
    )
    if row is None:
        raise LookupError(f"chain {chain_id!r} does not exist")
    return int(row["head_seq"]), bytes(row["head_hash"])


# The Merkle tree's right edge at recent heads, by (chain, seq, hash): the hash chain
# makes the key name one tree, so the cache is right whichever database it came from.
_TREES: OrderedDict[tuple[str, int, bytes], CompactRange] = OrderedDict()
_TREES_KEPT = 16


def _remember(chain_id: str, head: Head, tree: CompactRange) -> None:
    _TREES[(chain_id, *head)] = tree
    _TREES.move_to_end((chain_id, *head))
    while len(_TREES) > _TREES_KEPT:
        _TREES.popitem(last=False)


async def read_tree(conn: asyncpg.Connection, chain_id: str, head: Head) -> None:
    """Load the tree's edge at `head` from the tiles, so `prepare` can extend it."""
    if (chain_id, *head) not in _TREES:
        _remember(chain_id, head, await merkle_tiles.compact_range(conn, chain_id, head[0]))


def prepare(
    chain_id: str,
    head: Head,
    events: Sequence[Ready],
    stored: dict[str, Receipt],
    *,
    merkle: bool = True,
) -> Prepared:
    """Assign seqs and hashes from `head` on. An event whose id is in `stored` (ids
    already written, with their receipts) or earlier in `events` is a duplicate and
    gets the original receipt. With `merkle`, the leaf hashes too, and the tiles they
    add when the tree at `head` is cached. Pure computation: the ingest path's Python
    per event, after the ingest pass made each event `Ready`."""
    seq, prev = head
    known = dict(stored)
    size_after = seq + len({e.event_id for e in events}.difference(stored))
    results: list[tuple[Outcome, Receipt]] = []
    rows = []
    leaf_data: list[bytes] | None = [] if merkle else None
    sha256 = hashlib.sha256
    stored_outcome, duplicate = Outcome.STORED, Outcome.DUPLICATE
    chain, copy_row = copy_rows.chain_field(chain_id), copy_rows.row
    for event_id, before, after, row in events:
        original = known.get(event_id)
        if original is not None:
            results.append((duplicate, original))
            continue
        seq += 1
        data = b"%b%d%b" % (before, seq, after)
        digest = sha256(prev + data).digest()  # chain.link
        if leaf_data is not None:
            leaf_data.append(data)
        receipt = Receipt(chain_id, seq, digest, prev, size_after)
        known[event_id] = receipt
        rows.append(copy_row(chain, seq, prev, digest, row))
        results.append((stored_outcome, receipt))
        prev = digest
    leaves = None if leaf_data is None else leaf_hashes(leaf_data)
    times = [e.row[_TIME] for e in events] if rows else None
    span = (min(times), max(times)) if times else None  # a bound of the new rows' times
    group = Prepared(head, (seq, prev), rows, results, span, leaves)
    tree = _TREES.get((chain_id, *head))
    if leaves and tree is not None:
        tree = tree.copy()
        group.tiles = TileAppends()
        tree.extend(leaves, rows=group.tiles.add_row)
        _remember(chain_id, group.end, tree)
    return group


# The fence: the head moves only while the session `$6` (the chain lock's) still holds
# an advisory lock, so a replica whose lock session was lost cannot write even for the
# moment before it notices. NULL: no fence (tools and tests that write directly).
_MOVE_HEAD = """
UPDATE chains SET head_seq = $2, head_hash = $3, update_time = now()
WHERE chain_id = $1 AND head_seq = $4 AND head_hash = $5
  AND ($6::int IS NULL OR EXISTS (
      SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $6))
RETURNING false
"""


async def write(
    conn: asyncpg.Connection,
    chain_id: str,
    group: Prepared,
    *,
    fence: int | None = None,
    known: KnownDays | None = None,
) -> None:
    """Commit a prepared group, only if the chain's head is still where it starts
    (else `HeadMoved`, nothing written); that check keeps the chain gap-free. With
    `fence` (the lock session's pid), only while that session holds the chain's lock
    (else `ChainLockLost`). An id stored since `prepare` makes the COPY fail with a
    unique violation, nothing written. The daily partitions the rows need are made
    first (`known`: the days this writer has already seen made)."""
    if not group.rows or group.times is None:
        return
    first, last = group.times
    await (known or KnownDays()).ensure(conn, first, last)
    async with conn.transaction():
        moved = await conn.fetchval(
            _MOVE_HEAD, chain_id, group.end[0], group.end[1], group.start[0], group.start[1],
            fence,
        )  # fmt: skip
        if moved is None:
            if fence is not None and not await _holds_lock(conn, fence):
                raise ChainLockLost(f"this replica does not hold the lock of chain {chain_id}")
            raise HeadMoved(f"chain {chain_id} is no longer at seq {group.start[0]}")
        data = b"".join((copy_rows.HEADER, *group.rows, copy_rows.TRAILER))
        # A memoryview: asyncpg takes bytes for a file name.
        await conn.copy_to_table(
            "audit_events", source=memoryview(data), columns=EVENT_COLUMNS, format="binary"
        )
        await _grow_tree(conn, chain_id, group)
        await _count(conn, chain_id, group.start[0], group.end[0], first, last)


async def _holds_lock(conn: asyncpg.Connection, pid: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = $1)",
            pid,
        )
    )


async def _grow_tree(conn: asyncpg.Connection, chain_id: str, group: Prepared) -> None:
    """Add the group's leaves to the tiles, in the transaction that moved the head."""
    if not group.leaves:
        return
    if group.tiles is None:  # the tree at `start` was not cached: read its edge
        tree = await merkle_tiles.compact_range(conn, chain_id, group.start[0])
        group.tiles = TileAppends()
        tree.extend(group.leaves, rows=group.tiles.add_row)
        _remember(chain_id, group.end, tree)
    await merkle_tiles.append_tiles(conn, chain_id, group.tiles)


async def append(
    conn: asyncpg.Connection,
    chain_id: str,
    events: Sequence[Event],
    *,
    merkle: bool = True,
    fence: int | None = None,
) -> list[tuple[Outcome, Receipt]]:
    """Store valid events built as `Event`s (tools and tests) at the chain's head: the
    one-step write of `append_ready`."""
    return await append_ready(
        conn, chain_id, [ready(e, chain_id) for e in events], merkle=merkle, fence=fence
    )


async def append_ready(
    conn: asyncpg.Connection,
    chain_id: str,
    events: Sequence[Ready],
    *,
    merkle: bool = True,
    fence: int | None = None,
    known: KnownDays | None = None,
) -> list[tuple[Outcome, Receipt]]:
    """Store new events at the chain's head in one transaction, looking their ids up
    first; report duplicates. The one-step form of read_head, prepare and write."""
    async with conn.transaction():
        stored = await stored_receipts(conn, events)
        head = await read_head(conn, chain_id, lock=True)
        group = prepare(chain_id, head, events, stored, merkle=merkle)
        await write(conn, chain_id, group, fence=fence, known=known)  # nested: a savepoint
    return group.results


# How far before a group's oldest event an earlier copy of one of its ids is looked
# for. An exact resend carries the same event_time, so it is always found (and the
# unique key (event_id, event_time) catches it in a race); an id reused with another
# time is found when that time is at most this much older.
DUPLICATE_LOOKBACK = timedelta(days=1)


async def stored_receipts(conn: asyncpg.Connection, events: Sequence[Ready]) -> dict[str, Receipt]:
    """The receipts of those of `events` whose ids are already stored (by any chain),
    by the id's standard text, looked up in the partitions from `DUPLICATE_LOOKBACK`
    before the oldest event on."""
    if not events:
        return {}
    rows = await conn.fetch(
        "SELECT event_id, chain_id, seq, hash, prev_hash FROM audit_events "
        "WHERE event_id = ANY($1::uuid[]) AND event_time >= $2",
        [e.event_id for e in events],
        min(e.event_time for e in events) - DUPLICATE_LOOKBACK,
    )
    return {
        str(r["event_id"]): Receipt(
            r["chain_id"], r["seq"], bytes(r["hash"]), bytes(r["prev_hash"])
        )
        for r in rows
    }


async def events_by_id(
    conn: asyncpg.Connection, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, StoredEvent]:
    """The stored events with these ids (any chain), by id."""
    rows = await conn.fetch(f"{SELECT_EVENT} WHERE event_id = ANY($1::uuid[])", list(ids))
    return {r["event_id"]: stored_event(r) for r in rows}


# The rollups of one group commit, counted by PostgreSQL from the rows it has just
# written (the group is the seq range ($2, $3] of chain $1): one statement instead of a
# Python pass per event. Hours and days are cut in UTC whatever the session's zone;
# ORDER BY makes concurrent chains lock rollup rows in the same order (no deadlock).
_ROLLUPS = """
WITH new AS MATERIALIZED (
    SELECT date_trunc('hour', event_time, 'UTC') AS hour,
           event_type, result, service, user_id
    FROM audit_events
    WHERE chain_id = $1 AND seq > $2 AND seq <= $3 AND event_time BETWEEN $4 AND $5
), kinds AS (
    INSERT INTO event_counts_hourly (hour, event_type, result, service, count)
    SELECT hour, event_type, result, service, count(*) FROM new
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (hour, event_type, result, service)
    DO UPDATE SET count = event_counts_hourly.count + EXCLUDED.count
), users AS (
    INSERT INTO user_counts_hourly (hour, user_id, count)
    SELECT hour, user_id, count(*) FROM new WHERE user_id <> ''
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (hour, user_id)
    DO UPDATE SET count = user_counts_hourly.count + EXCLUDED.count
)
INSERT INTO user_counts_daily (day, user_id, count)
SELECT date_trunc('day', hour, 'UTC'), user_id, count(*) FROM new WHERE user_id <> ''
GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (day, user_id)
DO UPDATE SET count = user_counts_daily.count + EXCLUDED.count
"""


async def _count(
    conn: asyncpg.Connection, chain_id: str, after: int, last: int, t0: datetime, t1: datetime
) -> None:
    """Add the events with seq in (after, last] to the exact hourly (and daily, per
    user) rollups, in the same transaction; their event_times lie in [t0, t1], which
    keeps the read to the partitions they are in."""
    await conn.execute(_ROLLUPS, chain_id, after, last, t0, t1)


class PgEventStore:
    """`EventStore` on PostgreSQL: each call takes a connection of `db` (a pool, or
    one connection), with driver errors mapped."""

    def __init__(self, db: Database, *, merkle: bool = True) -> None:
        self._db = db
        self._merkle = merkle  # extend the chain's Merkle tree in each commit
        # The pid of the session holding the chain's lock (`ChainLock.pid`): writes
        # are fenced on it; 0 while the lock is lost (nothing can be written).
        self.fence_pid: int | None = None
        self._days = KnownDays()  # the daily partitions seen made

    async def read_head(self, chain_id: str) -> Head:
        async with acquire(self._db) as conn:
            head = await read_head(conn, chain_id)
            if self._merkle:
                await read_tree(conn, chain_id, head)
            return head

    async def catch_up_tree(self, chain_id: str) -> bool:
        """Build the tree of rows stored before it existed (or while it was off); False
        (and the tree stays off for this store) when those rows are no longer in the
        table (archived before the tree existed): it cannot be built from the rows."""
        if not self._merkle:
            return False
        try:
            async with acquire(self._db) as conn:
                await merkle_tiles.catch_up(conn, chain_id)
        except LookupError as exc:
            log.error("MERKLE TREE OFF for chain %s: %s", chain_id, exc)
            self._merkle = False
            return False
        return True

    async def stored_receipts(self, events: Sequence[Ready]) -> dict[str, Receipt]:
        async with acquire(self._db) as conn:
            return await stored_receipts(conn, events)

    async def events_by_id(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredEvent]:
        async with acquire(self._db) as conn:
            return await events_by_id(conn, ids)

    def prepare(
        self, chain_id: str, head: Head, events: Sequence[Ready], stored: dict[str, Receipt]
    ) -> Prepared:
        return prepare(chain_id, head, events, stored, merkle=self._merkle)

    async def write(self, chain_id: str, prepared: Prepared) -> None:
        async with acquire(self._db) as conn:
            await write(conn, chain_id, prepared, fence=self.fence_pid, known=self._days)

    async def append(self, chain_id: str, events: Sequence[Ready]) -> list[tuple[Outcome, Receipt]]:
        async with acquire(self._db) as conn:
            return await append_ready(
                conn, chain_id, events, merkle=self._merkle, fence=self.fence_pid, known=self._days
            )


class ChainLock:
    """A dedicated session that holds a chain's advisory lock for the process's life:
    the replica that holds it is the chain's only writer."""

    def __init__(self, conn: asyncpg.Connection, dsn: str = "") -> None:
        self._conn = conn
        self._dsn = dsn
        self.chain_id = ""
        self.pid = conn.get_server_pid()
        self.lost = asyncio.Event()  # set as soon as the session is seen to be gone
        conn.add_termination_listener(self._terminated)

    def _terminated(self, _: object) -> None:
        self.lost.set()

    @classmethod
    async def connect(cls, dsn: str) -> ChainLock:
        with map_db_errors():
            return cls(await asyncpg.connect(dsn), dsn)

    async def alive(self, timeout: float = 2.0) -> bool:
        """Whether the session (and with it the lock) is still there."""
        if self._conn.is_closed():
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=timeout)
        except (TimeoutError, asyncpg.PostgresError, OSError):
            return False
        return True

    async def reclaim(self) -> bool:
        """A new session, and the chain's lock on it if it is free (another replica may
        have taken it meanwhile: then False, and nothing is held)."""
        with map_db_errors():
            conn = await asyncpg.connect(self._dsn, timeout=5)
        try:
            with map_db_errors():
                got = await claim_chain(conn, self.chain_id)
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        old, self._conn = self._conn, conn
        old.terminate()
        self.pid = conn.get_server_pid()
        self.lost = asyncio.Event()
        conn.add_termination_listener(self._terminated)
        return True

    async def claim(self, wanted: Sequence[str]) -> str | None:
        """The first of `wanted` whose lock was free, now held (its head row made on
        first use); None when every one is held by another replica."""
        with map_db_errors():
            for chain_id in wanted:
                if await claim_chain(self._conn, chain_id):
                    await ensure_chain(self._conn, chain_id)
                    self.chain_id = chain_id
                    return chain_id
        return None

    async def close(self) -> None:
        await self._conn.close()
