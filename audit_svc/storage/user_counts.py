"""Top users and distinct users over a time range, exact, with the finished part of
recent ranges remembered.

Per-user counts cannot be summed ahead of time for every range: the last 24 hours of
10,000 active users are about 130,000 rollup rows (a day bucket minus some hours,
plus today). Most of them lie in hours that are over, and a finished hour changes
only when a late event lands in it. So the per-user sums of the finished buckets are
kept (`UserCountCache`) and reused while those buckets' event totals (a few hundred
rows of event_counts_hourly) are what they were; only the current buckets and edge
rows are summed on each call.

This is exact because every stored event adds to event_counts_hourly and to the user
rollups in the same transaction, and nothing ever takes from them (archiving deletes
rows, not counts): equal totals mean no event was added to those buckets since.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from datetime import datetime
from typing import Any

import asyncpg

from audit_svc.storage import ranges
from audit_svc.storage.ranges import DAY, HOUR, Term

_SOURCES = {
    "day": "SELECT user_id, {sign} * count::int AS count "
    "FROM user_counts_daily WHERE day >= {lo} AND day < {hi}",
    "hour": "SELECT user_id, {sign} * count::int AS count "
    "FROM user_counts_hourly WHERE hour >= {lo} AND hour < {hi}",
    "rows": "SELECT user_id, {sign} * count(*)::int FROM audit_events "
    "WHERE event_time >= {lo} AND event_time < {hi} AND user_id <> '' GROUP BY 1",
}
_TOP = """
    WITH parts (user_id, count) AS ({parts}),
    users AS (SELECT user_id, sum(count) AS count FROM parts GROUP BY user_id)
    SELECT user_id, count, count(*) OVER () AS distinct_users
    FROM users WHERE count > 0 ORDER BY count DESC, user_id LIMIT $1
"""
_SUMS = """
    WITH parts (user_id, count) AS ({parts}),
    users AS (SELECT user_id, sum(count)::int AS count FROM parts GROUP BY user_id)
    SELECT array_agg(user_id), array_agg(count) FROM users
"""
_TOTALS = """
    SELECT t.i, sum(c.count)::bigint AS total
    FROM unnest($1::timestamptz[], $2::timestamptz[]) WITH ORDINALITY AS t (lo, hi, i)
    JOIN event_counts_hourly c ON c.hour >= t.lo AND c.hour < t.hi
    GROUP BY t.i
"""

_Key = tuple[tuple[int, str, datetime, datetime], ...]


class UserCountCache:
    """Per-user sums of finished rollup buckets, a few ranges' worth, each with the
    event totals it was summed at. One per process; no locking needed under asyncio."""

    def __init__(self, ranges_kept: int = 4, max_users: int = 200_000) -> None:
        self._kept = ranges_kept
        self._max_users = max_users
        self._items: OrderedDict[_Key, tuple[tuple[int, ...], dict[str, int]]] = OrderedDict()

    def get(self, key: _Key, totals: tuple[int, ...]) -> dict[str, int] | None:
        item = self._items.get(key)
        if item is None or item[0] != totals:
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: _Key, totals: tuple[int, ...], sums: dict[str, int]) -> None:
        if len(sums) > self._max_users:
            return
        self._items[key] = (totals, sums)
        self._items.move_to_end(key)
        while len(self._items) > self._kept:
            self._items.popitem(last=False)


async def count_users(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    top: int,
    now: datetime,
    cache: UserCountCache | None = None,
) -> tuple[list[tuple[str, int]], int]:
    """The `top` accounts with most events in [start, end) (most first, ties by id),
    and the number of distinct accounts with any event there.

    Run it inside one snapshot (`event_reads.snapshot`). `now` only steers how the counts
    are read; with a `cache`, finished buckets are summed once and reused.
    """
    terms = ranges.plan(start, end, (DAY, HOUR), now)
    finished = _floor_hour(now)
    done = [t for t in terms if t.source != "rows" and t.hi <= finished]
    if cache is None or not done:
        args: list[Any] = [top]
        rows = await conn.fetch(_TOP.format(parts=ranges.union_of(_SOURCES, terms, args)), *args)
        distinct = int(rows[0]["distinct_users"]) if rows else 0
        return [(row["user_id"], int(row["count"])) for row in rows], distinct

    key = tuple((t.sign, t.source, t.lo, t.hi) for t in done)
    totals = await _totals(conn, done)
    base = cache.get(key, totals)
    if base is None:
        base = await _sums(conn, done)
        cache.put(key, totals, base)
    users = dict(base)
    get = users.get
    for user_id, n in (await _sums(conn, [t for t in terms if t not in done])).items():
        users[user_id] = get(user_id, 0) + n
    return _top(users, top), sum(1 for n in users.values() if n > 0)


def _top(users: dict[str, int], top: int) -> list[tuple[str, int]]:
    """The `top` users by count (most first, ties by id), counts above zero."""
    counts = heapq.nlargest(top, users.values())
    if not counts or counts[-1] <= 0:
        counts = [n for n in counts if n > 0]
    if not counts:
        return []
    least = counts[-1]
    ranked = sorted((-n, user_id) for user_id, n in users.items() if n >= least)
    return [(user_id, -n) for n, user_id in ranked[:top]]


async def _sums(conn: asyncpg.Connection, terms: list[Term]) -> dict[str, int]:
    if not terms:
        return {}
    args: list[Any] = []
    row = await conn.fetchrow(_SUMS.format(parts=ranges.union_of(_SOURCES, terms, args)), *args)
    if row is None or row[0] is None:
        return {}
    return dict(zip(row[0], row[1], strict=True))


async def _totals(conn: asyncpg.Connection, terms: list[Term]) -> tuple[int, ...]:
    """Each term's event total from event_counts_hourly (0 when empty)."""
    rows = await conn.fetch(_TOTALS, [t.lo for t in terms], [t.hi for t in terms])
    found = {int(row["i"]): int(row["total"]) for row in rows}
    return tuple(found.get(i, 0) for i in range(1, len(terms) + 1))


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)
