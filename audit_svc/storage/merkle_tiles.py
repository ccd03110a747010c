"""SQL of the Merkle tiles (audit_svc.integrity.tiles): appended to by the group
commit in its transaction, read by proofs and checkpoints."""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict

import asyncpg

from audit_svc.integrity import tiles
from audit_svc.integrity.chain import canonical_bytes
from audit_svc.storage import event_reads as reads
from audit_svc.storage import sink_state as sql
from audit_svc.storage.postgres import Database, acquire
from audit_svc.storage.protocols import CheckpointRow
from meshkit import merkle

log = logging.getLogger(__name__)

_APPEND = """
INSERT INTO merkle_tiles (chain_id, level, idx, hashes)
SELECT $1, t.level, t.idx, t.hashes
FROM unnest($2::int2[], $3::int8[], $4::bytea[]) AS t(level, idx, hashes)
ON CONFLICT (chain_id, level, idx) DO UPDATE SET hashes = merkle_tiles.hashes || EXCLUDED.hashes
"""


async def append_tiles(conn: asyncpg.Connection, chain_id: str, appends: tiles.TileAppends) -> None:
    """Add a group's new complete nodes to the chain's tiles (in the caller's
    transaction, the one that moves the head)."""
    levels, indexes, data = appends.rows()
    if levels:
        await conn.execute(_APPEND, chain_id, levels, indexes, data)


async def read_tiles(
    conn: asyncpg.Connection, chain_id: str, keys: set[tiles.TileKey]
) -> dict[tiles.TileKey, bytes]:
    rows = await conn.fetch(
        "SELECT t.level, t.idx, m.hashes FROM unnest($2::int2[], $3::int8[]) AS t(level, idx) "
        "JOIN merkle_tiles m ON m.chain_id = $1 AND m.level = t.level AND m.idx = t.idx",
        chain_id, [k[0] for k in keys], [k[1] for k in keys],
    )  # fmt: skip
    return {(r["level"], r["idx"]): bytes(r["hashes"]) for r in rows}


async def node_hashes(
    conn: asyncpg.Connection, chain_id: str, nodes: set[merkle.Node]
) -> dict[merkle.Node, bytes]:
    """The hashes of complete nodes, in one read; tiles.MissingTile if one is not stored."""
    if not nodes:
        return {}
    return tiles.node_hashes(nodes, await read_tiles(conn, chain_id, tiles.tiles_for(nodes)))


async def tree_size(conn: asyncpg.Connection, chain_id: str) -> int:
    """How many leaves the stored tiles hold."""
    row = await conn.fetchrow(
        "SELECT idx, length(hashes) AS n FROM merkle_tiles WHERE chain_id = $1 AND level = 0 "
        "ORDER BY idx DESC LIMIT 1",
        chain_id,
    )
    return 0 if row is None else int(row["idx"]) * tiles.WIDTH + int(row["n"]) // tiles.HASH_SIZE


async def compact_range(conn: asyncpg.Connection, chain_id: str, size: int) -> merkle.CompactRange:
    """The right edge of the chain's tree at `size` leaves, from the tiles."""
    nodes = merkle.range_nodes(0, size)
    return merkle.CompactRange.at(size, await node_hashes(conn, chain_id, set(nodes)))


async def root_at(conn: asyncpg.Connection, chain_id: str, size: int) -> bytes:
    """The tree's root at `size` leaves."""
    return (await compact_range(conn, chain_id, size)).root()


async def catch_up(conn: asyncpg.Connection, chain_id: str, batch: int = 5000) -> int:
    """Add the leaves of rows the tiles do not hold yet (rows stored before the tree
    existed), under the chain's head row lock; returns how many were added.

    LookupError if those rows are not in the table (moved to the archive first)."""
    added = 0
    async with conn.transaction():
        head = await conn.fetchval(
            "SELECT head_seq FROM chains WHERE chain_id = $1 FOR UPDATE", chain_id
        )
        size = await tree_size(conn, chain_id)
        if head is None or size >= head:
            return 0
        tree = await compact_range(conn, chain_id, size)
        async for rows in reads.chain_range(conn, chain_id, size + 1, head, batch):
            appends = tiles.TileAppends()
            for stored in rows:
                seq = stored.receipt.seq
                if seq != tree.size + 1:
                    raise LookupError(
                        f"chain {chain_id}: seq {tree.size + 1} is not in the table; "
                        "the Merkle tree cannot be built from the rows"
                    )
                leaf = merkle.leaf_hash(canonical_bytes(stored.event, chain_id, seq))
                tree.append(leaf, appends.add)
            await append_tiles(conn, chain_id, appends)
            added += len(rows)
    if added:
        log.info("chain %s: Merkle tree caught up by %d leaves", chain_id, added)
    return added


class PgTreeStore:
    """`TreeStore` on PostgreSQL: each call takes a connection of `db`, driver errors
    mapped."""

    def __init__(self, db: Database, cached_nodes: int = 50_000) -> None:
        self._db = db
        # A complete node's hash never changes: the recently used ones are kept (the
        # upper levels of the tree are in nearly every proof).
        self._nodes: OrderedDict[tuple[str, merkle.Node], bytes] = OrderedDict()
        self._kept = cached_nodes

    async def head_seq(self, chain_id: str) -> int | None:
        async with acquire(self._db) as conn:
            state = await sql.chain_state(conn, chain_id)
        return None if state is None else state[0]

    async def event_seq(self, chain_id: str, event_id: uuid.UUID) -> int | None:
        async with acquire(self._db) as conn:
            seq = await conn.fetchval(
                "SELECT seq FROM audit_events WHERE event_id = $1 AND chain_id = $2",
                event_id, chain_id,
            )  # fmt: skip
        return None if seq is None else int(seq)

    async def node_hashes(self, chain_id: str, nodes: set[merkle.Node]) -> dict[merkle.Node, bytes]:
        async with acquire(self._db) as conn:
            return await node_hashes(conn, chain_id, nodes)

    async def root_at(self, chain_id: str, size: int) -> bytes:
        async with acquire(self._db) as conn:
            return await root_at(conn, chain_id, size)

    async def checkpoint_at(self, chain_id: str, size: int) -> CheckpointRow | None:
        async with acquire(self._db) as conn:
            return await sql.checkpoint_at(conn, chain_id, size)

    async def last_note(self, chain_id: str) -> CheckpointRow | None:
        async with acquire(self._db) as conn:
            return await sql.last_note(conn, chain_id)

    async def add_cosignatures(self, chain_id: str, size: int, lines: str) -> None:
        async with acquire(self._db) as conn:
            await sql.add_cosignatures(conn, chain_id, size, lines)
