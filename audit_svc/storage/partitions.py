"""The daily partitions of audit_events: made ahead of time and on demand, and retired
once archived (retention by partition instead of DELETE).

audit_events is partitioned by range of `event_time`, one partition per UTC day
(`audit_events_YYYYMMDD`), plus `audit_events_default` for the times no daily
partition is made for (further back than `ON_DEMAND_BACK` or ahead than `AHEAD`).
Partitions are made and dropped only by the database's own functions (migration 0009),
which run as the schema's owner (SECURITY DEFINER): the writer needs no DDL rights.

- `audit_events_ensure_partition(t)`: the partition of t's day, made if missing (rows
  of that day already in the default partition are moved into it).
- `audit_events_retire_partition(name)`: the one door for removing events. It drops a
  daily partition (detach and drop in one transaction) only when every row in it is in
  an archived range of its chain and no legal hold covers its days; for the default
  partition it deletes only the archived rows outside any hold. Anything else: refused,
  nothing removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import asyncpg

from audit_svc.storage.postgres import Database, acquire
from audit_svc.storage.protocols import Partition

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
AHEAD = timedelta(days=3)  # partitions exist this far ahead of now
ON_DEMAND_BACK = timedelta(days=400)  # older days go to the default partition
DEFAULT_PARTITION = "audit_events_default"


def day_of(t: datetime) -> datetime:
    """The UTC midnight starting t's day: a partition's lower bound."""
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, t.day, tzinfo=UTC)


def days_between(first: datetime, last: datetime) -> list[datetime]:
    """The UTC days from first's to last's, both included."""
    day, end, out = day_of(first), day_of(last), []
    while day <= end:
        out.append(day)
        day += DAY
    return out


async def ensure(conn: asyncpg.Connection, days: Iterable[datetime]) -> None:
    """Make the daily partitions of `days` that do not exist yet."""
    await conn.execute(
        "SELECT audit_events_ensure_partition(d) FROM unnest($1::timestamptz[]) AS d", list(days)
    )


class KnownDays:
    """The days whose partition this process has seen made, so a commit asks the
    database only when a group touches a new day (at most once a day per writer)."""

    def __init__(self) -> None:
        self._days: set[datetime] = set()

    def missing(self, first: datetime, last: datetime, now: datetime) -> list[datetime]:
        """Days of [first, last] without a known partition that get one (not too far
        back nor ahead: those rows go to the default partition)."""
        lo, hi = day_of(now - ON_DEMAND_BACK), day_of(now + AHEAD)
        return [
            d for d in days_between(max(first, lo), min(last, hi)) if d not in self._days
        ] if first <= hi and last >= lo else []  # fmt: skip

    async def ensure(self, conn: asyncpg.Connection, first: datetime, last: datetime) -> None:
        days = self.missing(first, last, datetime.now(UTC))
        if days:
            await ensure(conn, days)
            self._days.update(days)


async def ensure_ahead(conn: asyncpg.Connection, now: datetime) -> None:
    """The partitions of today and the next `AHEAD` days: inserts never wait for DDL."""
    await ensure(conn, days_between(now, now + AHEAD))


class PartitionKeeper:
    """The service's maintenance task: keeps the daily partitions `AHEAD` days ahead
    (`step` once at start-up, then every `CHECK_SECONDS` in a SinkRunner)."""

    CHECK_SECONDS = 3600.0

    def __init__(self, db: Database) -> None:
        self._db = db

    async def step(self) -> bool:
        async with acquire(self._db) as conn:
            await ensure_ahead(conn, datetime.now(UTC))
        return False


async def partitions(conn: asyncpg.Connection) -> list[Partition]:
    """The partitions, daily ones oldest first, the default partition last."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_events'::regclass
        """
    )
    out = []
    for r in rows:
        if r["name"] == DEFAULT_PARTITION:
            continue
        day = datetime.strptime(r["name"].rsplit("_", 1)[1], "%Y%m%d").replace(tzinfo=UTC)
        out.append(Partition(r["name"], day, day + DAY))
    out.sort(key=lambda p: p.lower or datetime.min.replace(tzinfo=UTC))
    if any(r["name"] == DEFAULT_PARTITION for r in rows):
        out.append(Partition(DEFAULT_PARTITION, None, None))
    return out


async def retire(conn: asyncpg.Connection, name: str, before: datetime) -> int:
    """Remove the partition `name` through the database's door (see the module's
    docstring); `before` bounds the default partition's rows that may go. Returns the
    number of events removed; raises asyncpg's error when the door refuses."""
    return int(await conn.fetchval("SELECT audit_events_retire_partition($1, $2)", name, before))


async def unarchived(conn: asyncpg.Connection, name: str) -> int:
    """How many rows of partition `name` are in no archived range of their chain."""
    return int(
        await conn.fetchval(
            f"""
            SELECT count(*) FROM {quoted(name)} e
            WHERE e.seq > coalesce((SELECT max(a.last_seq) FROM archived_ranges a
                                    WHERE a.chain_id = e.chain_id), 0)
            """
        )
    )


def quoted(name: str) -> str:
    """A partition's name as an SQL identifier (checked: letters, digits, _)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a partition name: {name!r}")
    return f'"{name}"'
