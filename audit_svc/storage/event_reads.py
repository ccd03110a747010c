"""The read side: filtered pages of events, one event, exact counts, chain ranges.

Every read is shaped so an index serves it: audit_events is partitioned by day of
event_time, and a page reads the partitions newest first, each through the btree that
ends with the sort key (event_time DESC, event_id DESC) or through the GIN indexes (the
filter terms, the tags, details), whichever the planner finds cheaper for the values
asked: a rare value then costs a few index probes per day, not a walk. Counts read
the daily and hourly rollups, and audit_events only for the minutes that no bucket
covers (`ranges.plan`); chain ranges walk the primary key (chain_id, seq).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from audit_svc.model import JsonText, StoredEvent
from audit_svc.read.filters import Match, QuerySpec
from audit_svc.storage import ranges
from audit_svc.storage.postgres import (
    PSEUDONYM_COLUMNS,
    SELECT_EVENT,
    Database,
    acquire,
    stored_event,
)
from audit_svc.storage.protocols import EventCounts, Head, RangeCounts
from audit_svc.storage.ranges import HOUR
from audit_svc.storage.sink_state import archive_boundary, chain_state
from audit_svc.storage.user_counts import UserCountCache, count_users

__all__ = ["Database", "EventCounts", "PgEventReader", "acquire", "chain_state", "snapshot"]

_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


@contextlib.asynccontextmanager
async def snapshot(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a read-only repeatable-read transaction: several reads that must
    agree (the parts of one statistics answer) see the same committed events."""
    async with acquire(db) as conn:
        if conn.is_in_transaction():  # the caller's transaction already decides
            yield conn
            return
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            # Each read here takes tens of milliseconds at most: starting parallel
            # workers for it costs more than it saves on a few busy cores.
            await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            yield conn


# The first window a page reads, back from its upper bound; each next one is twice as
# wide, until the page is full or the oldest stored event is passed.
FIRST_WINDOW = timedelta(days=1)


async def query_events(conn: asyncpg.Connection, spec: QuerySpec) -> tuple[list[StoredEvent], bool]:
    """One page of events matching `spec`, newest first, and whether more follow.

    Reads one row more than the page size to know whether another page exists. The
    page is read in time windows newest first (one day, then 2, 4, ... wide), each
    window's matches sorted on their own: PostgreSQL sorts bitmap-scan matches of all
    partitions before a LIMIT, so a value whose matches fill the page within a day is
    read from that day only, and one that is absent from most days costs one cheap
    probe per window. The windows are disjoint and in order: the page is the same as
    one query over all rows.
    """
    where, args = _predicates(spec)
    want = spec.page_size + 1
    top = spec.filters.end_time
    if spec.after is not None and (top is None or spec.after.event_time < top):
        top = spec.after.event_time + timedelta(microseconds=1)
    floor = spec.filters.start_time
    anchor = top or datetime.now(UTC)
    width, oldest = FIRST_WINDOW, None
    rows: list[asyncpg.Record] = []
    while True:
        start = anchor - width
        # The last window reaches down to the filter's start or the oldest event.
        last = (floor is not None and start <= floor) or (oldest is not None and start <= oldest)
        lo = None if last else start
        window = [f"event_time >= ${len(args) + 1}"] if lo is not None else []
        window += [f"event_time < ${len(args) + len(window) + 1}"] if top is not None else []
        bounds = [b for b in (lo, top) if b is not None]
        sql = (
            f"{SELECT_EVENT} WHERE {' AND '.join(where + window) or 'TRUE'} "
            f"ORDER BY event_time DESC, event_id DESC LIMIT ${len(args) + len(bounds) + 1}"
        )
        rows += await conn.fetch(sql, *args, *bounds, want - len(rows))
        if len(rows) >= want or lo is None:
            break
        if oldest is None:
            oldest = await conn.fetchval("SELECT min(event_time) FROM audit_events")
            if oldest is None or oldest >= start:
                break
        top, width = start, width * 2
    events = [stored_event(row) for row in rows[: spec.page_size]]
    return events, len(rows) > spec.page_size


async def export_events(
    conn: asyncpg.Connection, spec: QuerySpec, batch: int
) -> AsyncIterator[list[StoredEvent]]:
    """Every event matching `spec`'s filters, oldest first, `batch` rows at a time,
    through one server-side cursor: `conn` must be in a transaction (a `snapshot`),
    so the whole export is one consistent view however long it runs."""
    where, args = _predicates(replace(spec, after=None))
    sql = f"{SELECT_EVENT} WHERE {' AND '.join(where) or 'TRUE'} ORDER BY event_time, event_id"
    cursor = await conn.cursor(sql, *args)
    while rows := await cursor.fetch(batch):
        yield [stored_event(row) for row in rows]


# The predicate of each kind of filter ({column}: the filter's name; {arg}: its value).
_PREDICATES = {
    Match.EQUALS: "{column} = {arg}",
    Match.TAG: "compliance_tags @> ARRAY[{arg}::text]",
    Match.CONTAINS: "details @> {arg}::jsonb",
    Match.FROM: "event_time >= {arg}",
    Match.BEFORE: "event_time < {arg}",
}


# Filters served by one GIN index over terms (migration 0009): the filter's name and
# the prefix of its term. `TERMS` must stay the index's expression, word for word.
_TERM_PREFIXES = {
    "service": "s:",
    "action": "a:",
    "result": "r:",
    "data_classification": "c:",
    "username": "n:",
}
TERMS = "audit_terms(service, action, result, data_classification, username, ip_address)"


def _predicates(spec: QuerySpec) -> tuple[list[str], list[Any]]:
    """Parameterised WHERE terms for the filters that are set."""
    where: list[str] = []
    args: list[Any] = []
    terms: list[str] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    pseudonyms = dict(spec.pseudonyms)
    for name, match, value in spec.filters.set_filters():
        if name in pseudonyms:  # a personal filter matches its pseudonym (privacy)
            where.append(f"{PSEUDONYM_COLUMNS[name]} = {arg(pseudonyms[name])}")
        elif name in _TERM_PREFIXES:
            terms.append(f"'{_TERM_PREFIXES[name]}' || {arg(value)}::text")
        elif match is Match.ADDRESS:
            terms.append(f"'i:' || host({arg(value)}::inet)")
        elif match is Match.TYPE and value.endswith(".*"):
            # A constant prefix pattern lets the planner use the text_pattern_ops index.
            where.append(f"{name} LIKE {arg(escape_like(value[:-1]))} || '%'")
        elif match is Match.TYPE:
            where.append(f"{name} = {arg(value)}")
        else:
            value = JsonText(value) if match is Match.CONTAINS else value
            where.append(_PREDICATES[match].format(column=name, arg=arg(value)))
    if terms:
        where.append(f"{TERMS} @> ARRAY[{', '.join(terms)}]")
    if spec.after is not None:
        time, event_id = arg(spec.after.event_time), arg(spec.after.event_id)
        # The plain bound lets the planner skip the newer partitions.
        where.append(f"event_time <= {time}")
        where.append(f"(event_time, event_id) < ({time}, {event_id}::uuid)")
    return where, args


def escape_like(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (backslash is LIKE's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_event(conn: asyncpg.Connection, event_id: uuid.UUID) -> StoredEvent | None:
    """The event with this id, or None."""
    row = await conn.fetchrow(f"{SELECT_EVENT} WHERE event_id = $1", event_id)
    return None if row is None else stored_event(row)


# Where the counts of each source live, and the column holding their time.
_KIND_SOURCES = {
    "hour": "SELECT hour, event_type, result, service, {sign} * count AS count "
    "FROM event_counts_hourly WHERE hour >= {lo} AND hour < {hi}",
    "rows": "SELECT date_trunc('hour', event_time, 'UTC'), event_type, result, service, "
    "{sign} * count(*) FROM audit_events WHERE event_time >= {lo} AND event_time < {hi} "
    "GROUP BY 1, 2, 3, 4",
}


_COUNT_EVENTS = """
    WITH parts (hour, event_type, result, service, count) AS ({parts}),
    binned AS (
        SELECT date_bin($1::interval, hour, $2::timestamptz) AS bucket,
               event_type, result, service, count
        FROM parts
    )
    SELECT CASE WHEN GROUPING(event_type) = 0 THEN 'event_type'
                WHEN GROUPING(result) = 0 THEN 'result'
                WHEN GROUPING(service) = 0 THEN 'service'
                ELSE 'bucket' END AS dimension,
           COALESCE(event_type, result, service) AS key,
           bucket,
           sum(count)::bigint AS count
    FROM binned
    GROUP BY GROUPING SETS ((event_type), (result), (service), (bucket))
    HAVING sum(count) <> 0
"""


async def count_events(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    bucket_width: timedelta,
    now: datetime,
) -> EventCounts:
    """Exact counts of the events with start <= event_time < end.

    Buckets are `bucket_width` wide (an hour or a day), aligned to UTC; only buckets
    holding events are present. `now` only steers how the counts are read
    (`ranges.plan`), never what they are.
    """
    args: list[Any] = [bucket_width, _ORIGIN]
    parts = ranges.union_of(_KIND_SOURCES, ranges.plan(start, end, (HOUR,), now), args)
    rows = await conn.fetch(_COUNT_EVENTS.format(parts=parts), *args)
    counts = EventCounts()
    by_dimension = {
        "event_type": counts.by_event_type,
        "result": counts.by_result,
        "service": counts.by_service,
    }
    for row in rows:
        if row["dimension"] == "bucket":
            counts.buckets[row["bucket"]] = int(row["count"])
        else:
            by_dimension[row["dimension"]][row["key"]] = int(row["count"])
    return counts


async def chain_ids(conn: asyncpg.Connection) -> list[str]:
    """Every chain's id, in order."""
    return [row["chain_id"] for row in await conn.fetch("SELECT chain_id FROM chains ORDER BY 1")]


async def chain_tail(conn: asyncpg.Connection, chain_id: str) -> tuple[int, int]:
    """The recorded head seq and the highest stored seq, read in one snapshot."""
    row = await conn.fetchrow(
        "SELECT c.head_seq, (SELECT max(seq) FROM audit_events e WHERE e.chain_id = c.chain_id)"
        " AS max_seq FROM chains c WHERE c.chain_id = $1",
        chain_id,
    )
    if row is None:
        return 0, 0
    return int(row["head_seq"]), int(row["max_seq"] or 0)


async def chain_range(
    conn: asyncpg.Connection, chain_id: str, from_seq: int, to_seq: int, batch: int = 5000
) -> AsyncIterator[list[StoredEvent]]:
    """The stored events of a chain with from_seq <= seq <= to_seq, in seq order, a
    batch at a time: memory stays bounded however long the range is."""
    after = from_seq - 1
    while after < to_seq:
        rows = await conn.fetch(
            f"{SELECT_EVENT} WHERE chain_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
            chain_id,
            after,
            to_seq,
            batch,
        )
        if not rows:
            return
        yield [stored_event(row) for row in rows]
        after = int(rows[-1]["seq"])


class PgEventReader:
    """`EventReader` on PostgreSQL: a pool, or one connection (a test's transaction).
    `user_counts` keeps the per-user sums of finished hours between statistics calls."""

    def __init__(self, db: Database, user_counts: UserCountCache | None = None) -> None:
        self._db = db
        self._user_counts = user_counts

    async def ping(self) -> None:
        async with acquire(self._db) as conn:
            await conn.fetchval("SELECT 1")

    async def query_events(self, spec: QuerySpec) -> tuple[list[StoredEvent], bool]:
        async with acquire(self._db) as conn:
            return await query_events(conn, spec)

    async def get_event(self, event_id: uuid.UUID) -> StoredEvent | None:
        async with acquire(self._db) as conn:
            return await get_event(conn, event_id)

    async def export_events(
        self, spec: QuerySpec, batch: int = 2000
    ) -> AsyncGenerator[list[StoredEvent], None]:
        async with snapshot(self._db) as conn:
            async for rows in export_events(conn, spec, batch):
                yield rows

    async def count(
        self, start: datetime, end: datetime, bucket_width: timedelta, top_users: int,
        now: datetime,
    ) -> RangeCounts:  # fmt: skip
        async with snapshot(self._db) as conn:
            counts = await count_events(conn, start, end, bucket_width, now)
            top, unique = await count_users(conn, start, end, top_users, now, self._user_counts)
        return RangeCounts(counts, top, unique)

    async def chain_ids(self) -> list[str]:
        async with acquire(self._db) as conn:
            return await chain_ids(conn)

    async def chain_state(self, chain_id: str) -> Head | None:
        async with acquire(self._db) as conn:
            return await chain_state(conn, chain_id)

    async def chain_tail(self, chain_id: str) -> tuple[int, int]:
        async with acquire(self._db) as conn:
            return await chain_tail(conn, chain_id)

    async def chain_range(
        self, chain_id: str, from_seq: int, to_seq: int, batch: int = 5000
    ) -> AsyncGenerator[list[StoredEvent], None]:
        async with acquire(self._db) as conn:
            async for rows in chain_range(conn, chain_id, from_seq, to_seq, batch):
                yield rows

    async def archive_boundary(self, chain_id: str) -> Head:
        async with acquire(self._db) as conn:
            return await archive_boundary(conn, chain_id)
