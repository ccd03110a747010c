"""The read side: filtered pages of events, one event, exact counts, chain ranges.

Every read is shaped so an index serves it: pages walk an index that ends with the
sort key (event_time DESC, event_id DESC); counts read the daily and hourly rollups,
and audit_events only for the minutes that no bucket covers (`ranges.plan`); chain
ranges walk the primary key (chain_id, seq).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from audit_svc.model import StoredEvent
from audit_svc.storage import ranges
from audit_svc.storage.postgres import SELECT_EVENT, connection, map_db_errors, stored_event
from audit_svc.storage.ranges import HOUR

if TYPE_CHECKING:
    from audit_svc.read.query import QuerySpec

# A pool, or one connection (such as a transaction's); every read takes either.
Database: TypeAlias = asyncpg.Pool | asyncpg.Connection

_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


@contextlib.asynccontextmanager
async def acquire(db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A connection from a pool, or the connection itself; driver errors mapped."""
    if isinstance(db, asyncpg.Pool):
        async with connection(db) as conn:
            yield conn
    else:
        with map_db_errors():
            yield db


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


async def query_events(conn: asyncpg.Connection, spec: QuerySpec) -> tuple[list[StoredEvent], bool]:
    """One page of events matching `spec`, newest first, and whether more follow.

    Reads one row more than the page size to know whether another page exists.
    """
    where, args = _predicates(spec)
    args.append(spec.page_size + 1)
    sql = (
        f"{SELECT_EVENT} WHERE {' AND '.join(where) or 'TRUE'} "
        f"ORDER BY event_time DESC, event_id DESC LIMIT ${len(args)}"
    )
    rows = await conn.fetch(sql, *args)
    events = [stored_event(row) for row in rows[: spec.page_size]]
    return events, len(rows) > spec.page_size


def _predicates(spec: QuerySpec) -> tuple[list[str], list[Any]]:
    """Parameterised WHERE terms for the filters that are set."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if spec.event_type and spec.event_type_prefix:
        # A constant prefix pattern lets the planner use the text_pattern_ops index.
        where.append(f"event_type LIKE {arg(escape_like(spec.event_type))} || '%'")
    elif spec.event_type:
        where.append(f"event_type = {arg(spec.event_type)}")
    for column in ("user_id", "username", "service", "action", "result", "data_classification"):
        value = getattr(spec, column)
        if value:
            where.append(f"{column} = {arg(value)}")
    if spec.compliance_tag:
        where.append(f"compliance_tags @> ARRAY[{arg(spec.compliance_tag)}::text]")
    if spec.ip_address is not None:
        where.append(f"ip_address = {arg(spec.ip_address)}::inet")
    if spec.details_contains is not None:
        where.append(f"details @> {arg(spec.details_contains)}::jsonb")
    if spec.start_time is not None:
        where.append(f"event_time >= {arg(spec.start_time)}")
    if spec.end_time is not None:
        where.append(f"event_time < {arg(spec.end_time)}")
    if spec.after is not None:
        time, event_id = arg(spec.after.event_time), arg(spec.after.event_id)
        where.append(f"(event_time, event_id) < ({time}, {event_id}::uuid)")
    return where, args


def escape_like(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (backslash is LIKE's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_event(conn: asyncpg.Connection, event_id: uuid.UUID) -> StoredEvent | None:
    """The event with this id, or None."""
    row = await conn.fetchrow(f"{SELECT_EVENT} WHERE event_id = $1", event_id)
    return None if row is None else stored_event(row)


@dataclass(slots=True)
class EventCounts:
    """Exact event counts over a time range, per dimension and per time bucket."""

    by_event_type: dict[str, int] = field(default_factory=dict)
    by_result: dict[str, int] = field(default_factory=dict)
    by_service: dict[str, int] = field(default_factory=dict)
    buckets: dict[datetime, int] = field(default_factory=dict)


# Where the counts of each source live, and the column holding their time.
_KIND_SOURCES = {
    "hour": "SELECT hour, event_type, result, service, {sign} * count AS count "
    "FROM event_counts_hourly WHERE hour >= {lo} AND hour < {hi}",
    "rows": "SELECT date_trunc('hour', event_time, 'UTC'), event_type, result, service, "
    "{sign} * count(*) FROM audit_events WHERE event_time >= {lo} AND event_time < {hi} "
    "GROUP BY 1, 2, 3, 4",
}


def union_of(sources: dict[str, str], terms: list[ranges.Term], args: list[Any]) -> str:
    """The UNION ALL of each term's signed counts; its bounds appended to `args`."""
    selects = []
    for term in terms:
        args += [term.lo, term.hi]
        selects.append(
            sources[term.source].format(sign=term.sign, lo=f"${len(args) - 1}", hi=f"${len(args)}")
        )
    return " UNION ALL ".join(selects)


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
    parts = union_of(_KIND_SOURCES, ranges.plan(start, end, (HOUR,), now), args)
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


async def chain_state(conn: asyncpg.Connection, chain_id: str) -> tuple[int, bytes] | None:
    """The chain's head (seq, hash) as recorded in `chains`; None for an unknown chain."""
    row = await conn.fetchrow(
        "SELECT head_seq, head_hash FROM chains WHERE chain_id = $1", chain_id
    )
    return None if row is None else (int(row["head_seq"]), bytes(row["head_hash"]))


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
