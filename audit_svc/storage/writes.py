"""The write side: one group commit extends a chain with a list of events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

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
    conn: asyncpg.Connection, chain_id: str, events: Sequence[Event], check_stored: bool = True
) -> list[tuple[Outcome, Receipt]]:
    """Store new events at the chain's head in one transaction; report duplicates.

    The head row is locked for the transaction, so the chain stays gap-free even if
    two processes ever wrote to it. An event whose id appears earlier in `events`, or
    (with `check_stored`) is already stored by any chain, is a duplicate and gets the
    original receipt. Without `check_stored`, an already stored id makes the COPY fail
    with a unique violation and nothing is written.
    """
    async with conn.transaction():
        head = await conn.fetchrow(
            "SELECT head_seq, head_hash FROM chains WHERE chain_id = $1 FOR UPDATE", chain_id
        )
        if head is None:
            raise LookupError(f"chain {chain_id!r} does not exist")
        seq, prev = int(head["head_seq"]), bytes(head["head_hash"])
        first_seq = seq
        existing = await _receipts_of(conn, [e.event_id for e in events]) if check_stored else {}
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
            await _count(conn, chain_id, first_seq, seq)
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


# The rollups of one group commit, counted by PostgreSQL from the rows it has just
# written (the group is the seq range ($2, $3] of chain $1): one statement instead of a
# Python pass per event. Hours and days are cut in UTC whatever the session's zone;
# ORDER BY makes concurrent chains lock rollup rows in the same order (no deadlock).
_ROLLUPS = """
WITH new AS MATERIALIZED (
    SELECT date_trunc('hour', event_time, 'UTC') AS hour,
           event_type, result, service, user_id
    FROM audit_events WHERE chain_id = $1 AND seq > $2 AND seq <= $3
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


async def _count(conn: asyncpg.Connection, chain_id: str, after: int, last: int) -> None:
    """Add the events with seq in (after, last] to the exact hourly (and daily, per
    user) rollups, in the same transaction."""
    await conn.execute(_ROLLUPS, chain_id, after, last)
