"""PostgreSQL side of privacy: subject keys (apart from the events), legal holds, and
the outbox of audited admin actions.

Holds and erasures serialise on one transaction-level advisory lock (`_HOLDS_LOCK`):
a hold placed while an erasure runs is seen by it, or waits for it. Partition
retirement asks the database function `audit_events_held` (migration 0013), which
reads the same holds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from audit_svc.errors import LegalHoldActive
from audit_svc.storage.postgres import Database, acquire
from audit_svc.storage.protocols import AdminAction, Erased, LegalHold, SubjectKeyRow

_HOLDS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('auditmesh:legal_holds'))"
_ACTIVE = "SELECT * FROM legal_holds WHERE lift_time IS NULL"


async def lock_holds(conn: asyncpg.Connection) -> None:
    """Hold the holds' lock to the end of the caller's transaction."""
    await conn.execute(_HOLDS_LOCK)


def _hold(r: asyncpg.Record) -> LegalHold:
    return LegalHold(
        r["hold_id"], r["subject"], r["start_time"], r["end_time"], r["reason"],
        r["placed_by"], r["place_time"], r["lifted_by"], r["lift_time"],
    )  # fmt: skip


def refuse(held: Sequence[LegalHold], what: str) -> None:
    """LegalHoldActive naming the first hold, if any."""
    if held:
        h = held[0]
        raise LegalHoldActive(
            f"legal hold {h.hold_id} ({h.reason}) covers {what}",
            metadata={"hold_id": h.hold_id, "hold_reason": h.reason},
        )


async def holds_covering(
    conn: asyncpg.Connection,
    subjects: Sequence[str],
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[LegalHold]:
    """Active holds on any of `subjects`, or whose time range overlaps [start, end)
    (an open bound is unbounded; no bounds at all: no time-range hold matches)."""
    time_clause = ""
    args: list[object] = [list(subjects)]
    if start is not None or end is not None:
        args += [start, end]
        time_clause = (
            " OR (subject IS NULL AND coalesce(start_time, '-infinity') "
            "< coalesce($3::timestamptz, 'infinity') AND coalesce($2::timestamptz, '-infinity') "
            "< coalesce(end_time, 'infinity'))"
        )
    rows = await conn.fetch(
        f"{_ACTIVE} AND (subject = ANY($1::text[]){time_clause}) ORDER BY place_time", *args
    )
    return [_hold(r) for r in rows]


async def held_subject(conn: asyncpg.Connection, subject: str) -> list[LegalHold]:
    """Active holds covering any event of `subject`: a hold on the subject, or a time
    range one of its events falls in (erasure's check)."""
    rows = await conn.fetch(
        f"""{_ACTIVE} AND (subject = $1 OR (subject IS NULL AND EXISTS (
            SELECT 1 FROM audit_events e WHERE e.user_id = $1
            AND e.event_time >= coalesce(legal_holds.start_time, '-infinity')
            AND e.event_time < coalesce(legal_holds.end_time, 'infinity'))))
        ORDER BY place_time""",
        subject,
    )
    return [_hold(r) for r in rows]


async def _queue(conn: asyncpg.Connection, a: AdminAction) -> None:
    await conn.execute(
        "INSERT INTO admin_actions (event_id, event_type, action, details, requested_by,"
        " request_time) VALUES ($1, $2, $3, $4, $5, $6)",
        a.event_id, a.event_type, a.action, a.details, a.requested_by, a.request_time,
    )  # fmt: skip


class PgPrivacyStore:
    """`PrivacyStore` on PostgreSQL (a pool, or one connection)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def subject_keys(self, subjects: Sequence[str]) -> dict[str, SubjectKeyRow]:
        async with acquire(self._db) as conn:
            rows = await conn.fetch(
                "SELECT subject, wrapped_key, sealed_subject FROM subject_keys "
                "WHERE subject = ANY($1::text[])",
                list(subjects),
            )
        return {
            r["subject"]: SubjectKeyRow(
                r["subject"],
                None if r["wrapped_key"] is None else bytes(r["wrapped_key"]),
                r["sealed_subject"],
            )
            for r in rows
        }

    async def add_subject_keys(self, rows: Sequence[SubjectKeyRow]) -> None:
        async with acquire(self._db) as conn:
            await conn.execute(
                "INSERT INTO subject_keys (subject, wrapped_key, sealed_subject) "
                "SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[]) "
                "ON CONFLICT (subject) DO NOTHING",
                [r.subject for r in rows],
                [r.wrapped_key for r in rows],
                [r.sealed_subject for r in rows],
            )

    async def erase_subject(self, subject: str, action: AdminAction) -> Erased:
        async with acquire(self._db) as conn, conn.transaction():
            await lock_holds(conn)
            row = await conn.fetchrow(
                "SELECT erase_time FROM subject_keys WHERE subject = $1 FOR UPDATE", subject
            )
            if row is None:
                raise LookupError(subject)
            events = int(
                await conn.fetchval("SELECT count(*) FROM audit_events WHERE user_id = $1", subject)
            )
            archived = int(
                await conn.fetchval(
                    "SELECT coalesce(sum(count), 0) FROM user_counts_daily WHERE user_id = $1",
                    subject,
                )
            )
            archived = max(archived - events, 0)
            if row["erase_time"] is not None:
                return Erased(subject, events, archived, row["erase_time"], already=True)
            refuse(await held_subject(conn, subject), f"events of {subject}")
            erase_time = await conn.fetchval(
                "UPDATE subject_keys SET wrapped_key = NULL, sealed_subject = NULL, "
                "erase_time = now(), erasure_event = $2 WHERE subject = $1 RETURNING erase_time",
                subject,
                action.event_id,
            )
            await _queue(conn, action)
        return Erased(subject, events, archived, erase_time)

    async def place_hold(self, hold: LegalHold, action: AdminAction) -> None:
        async with acquire(self._db) as conn, conn.transaction():
            await lock_holds(conn)
            await conn.execute(
                "INSERT INTO legal_holds (hold_id, subject, start_time, end_time, reason,"
                " placed_by, place_time) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                hold.hold_id, hold.subject, hold.start_time, hold.end_time, hold.reason,
                hold.placed_by, hold.place_time,
            )  # fmt: skip
            await _queue(conn, action)

    async def lift_hold(self, hold_id: str, by: str, action: AdminAction) -> LegalHold:
        async with acquire(self._db) as conn, conn.transaction():
            await lock_holds(conn)
            row = await conn.fetchrow(
                "UPDATE legal_holds SET lifted_by = $2, lift_time = now() "
                "WHERE hold_id = $1 AND lift_time IS NULL RETURNING *",
                hold_id,
                by,
            )
            if row is None:
                raise LookupError(hold_id)
            await _queue(conn, action)
        return _hold(row)

    async def holds(self, *, active_only: bool = True) -> list[LegalHold]:
        async with acquire(self._db) as conn:
            sql = _ACTIVE if active_only else "SELECT * FROM legal_holds"
            return [_hold(r) for r in await conn.fetch(sql + " ORDER BY place_time")]

    async def holds_covering(
        self, subjects: Sequence[str], start: datetime | None, end: datetime | None
    ) -> list[LegalHold]:
        async with acquire(self._db) as conn:
            return await holds_covering(conn, subjects, start, end)

    async def pending_actions(self, limit: int) -> list[AdminAction]:
        async with acquire(self._db) as conn:
            rows = await conn.fetch(
                "SELECT * FROM admin_actions WHERE NOT recorded ORDER BY request_time LIMIT $1",
                limit,
            )
        return [
            AdminAction(
                r["event_id"],
                r["event_type"],
                r["action"],
                _json(r["details"]),
                r["requested_by"],
                r["request_time"],
            )  # fmt: skip
            for r in rows
        ]

    async def mark_recorded(self, event_ids: Sequence[uuid.UUID]) -> None:
        async with acquire(self._db) as conn:
            await conn.execute(
                "UPDATE admin_actions SET recorded = true WHERE event_id = ANY($1::uuid[])",
                list(event_ids),
            )


def _json(value: Any) -> dict[str, Any]:
    """jsonb as a dict, whether or not the connection decodes jsonb (init_connection)."""
    out: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
    return out
