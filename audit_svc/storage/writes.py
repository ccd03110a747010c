"""The write side: one group commit extends a chain with a list of events."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from audit_svc.chain import canonical_bytes, link
from audit_svc.model import Event, Outcome, Receipt
from audit_svc.storage.postgres import EVENT_COLUMNS, event_row


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


async def append(
    conn: asyncpg.Connection, chain_id: str, events: Sequence[Event]
) -> list[tuple[Outcome, Receipt]]:
    """Store new events at the chain's head in one transaction; report duplicates.

    The head row is locked for the transaction, so the chain stays gap-free even if
    two processes ever wrote to it. An event whose id is already stored (by any chain,
    or earlier in `events`) is a duplicate and gets the original receipt.
    """
    async with conn.transaction():
        head = await conn.fetchrow(
            "SELECT head_seq, head_hash FROM chains WHERE chain_id = $1 FOR UPDATE", chain_id
        )
        if head is None:
            raise LookupError(f"chain {chain_id!r} does not exist")
        seq, prev = int(head["head_seq"]), bytes(head["head_hash"])
        existing = await _receipts_of(conn, [e.event_id for e in events])
        results: list[tuple[Outcome, Receipt]] = []
        rows = []
        for event in events:
            known = existing.get(event.event_id)
            if known is not None:
                results.append((Outcome.DUPLICATE, known))
                continue
            seq += 1
            digest = link(prev, canonical_bytes(event, chain_id, seq))
            receipt = Receipt(chain_id, seq, digest, prev)
            existing[event.event_id] = receipt
            rows.append(event_row(event, receipt))
            results.append((Outcome.STORED, receipt))
            prev = digest
        if rows:
            await conn.copy_records_to_table("audit_events", records=rows, columns=EVENT_COLUMNS)
            await conn.execute(
                "UPDATE chains SET head_seq = $2, head_hash = $3, update_time = now() "
                "WHERE chain_id = $1",
                chain_id,
                seq,
                prev,
            )
            stored = [e for e, (o, _) in zip(events, results, strict=True) if o is Outcome.STORED]
            await _count(conn, stored)
        return results


async def _receipts_of(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, Receipt]:
    rows = await conn.fetch(
        "SELECT event_id, chain_id, seq, hash, prev_hash FROM audit_events "
        "WHERE event_id = ANY($1::uuid[])",
        ids,
    )
    return {
        r["event_id"]: Receipt(r["chain_id"], r["seq"], bytes(r["hash"]), bytes(r["prev_hash"]))
        for r in rows
    }


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


async def _count(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    """Add the events to the exact hourly rollups, in the same transaction."""
    by_kind = Counter((_hour(e.event_time), e.event_type, e.result, e.service) for e in events)
    by_user = Counter((_hour(e.event_time), e.user_id) for e in events if e.user_id)
    await conn.execute(
        """
        INSERT INTO event_counts_hourly (hour, event_type, result, service, count)
        SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::bigint[])
        ON CONFLICT (hour, event_type, result, service)
        DO UPDATE SET count = event_counts_hourly.count + EXCLUDED.count
        """,
        *_columns(by_kind, 4),
    )
    if by_user:
        await conn.execute(
            """
            INSERT INTO user_counts_hourly (hour, user_id, count)
            SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::bigint[])
            ON CONFLICT (hour, user_id)
            DO UPDATE SET count = user_counts_hourly.count + EXCLUDED.count
            """,
            *_columns(by_user, 2),
        )


def _columns(counter: Counter[Any], width: int) -> list[list[object]]:
    # Sorted keys: concurrent chains lock rollup rows in the same order (no deadlock).
    cols: list[list[object]] = [[] for _ in range(width + 1)]
    for key, n in sorted(counter.items()):
        for i, part in enumerate(key):
            cols[i].append(part)
        cols[width].append(n)
    return cols
