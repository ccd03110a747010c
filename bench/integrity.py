"""What the Merkle tree costs and how fast its proofs are.

    .venv/bin/python -m bench.integrity [--events 40000] [--rounds 2] [--leaves 10000000]
                                        [--proofs 1000] [--no-record]

1. Ingest with the tree on and off, alternated in one run (off, on, off, on, ...) on
   fresh databases: CPU per event of the audit-service and of PostgreSQL (the steady
   figure, as bench.ingest_cpu), and events/s.
2. Proof latency at a large tree: the tiles of `--leaves` synthetic leaves are built
   straight into PostgreSQL (no event rows: a proof reads only tiles and the head),
   then `--proofs` inclusion proofs at random leaves and consistency proofs from
   random sizes, each timed through the service's own read path (PgTreeStore and
   integrity.proofs), p50 and p99.
3. A checkpoint's cost: reading the root from the tiles and signing the C2SP note
   (what every checkpoint adds to the bucket write it already did), per checkpoint and
   as a share of a core at one checkpoint a second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_svc.integrity import proofs, tiles
from audit_svc.sinks.checkpoints import checkpoint_body
from audit_svc.storage.merkle_tiles import PgTreeStore, append_tiles
from audit_svc.storage.postgres import create_pool
from bench.common import Report, bench_postgres, count_events, dial
from bench.ingest_cpu import requests, send
from bench.procstat import cpu_seconds, postmaster_pid, tree_cpu_seconds
from meshkit import merkle, note


def ingest_runs(args: argparse.Namespace, tmp: Path) -> list[list[object]]:
    batches = requests(args.events)
    figures: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
    with bench_postgres(tmp) as bench:
        for i in range(args.rounds * 2):
            mode = ("off", "on")[i % 2]
            dsn = bench.fresh_database(f"merkle{mode}{i}")
            env = {"AUDIT_MERKLE_TREE": "true" if mode == "on" else "false"}
            with bench.audit_service(dsn, env) as service:
                server, pg = service.process.pid, postmaster_pid(tmp / "pg")
                s0, p0, t0 = cpu_seconds(server), tree_cpu_seconds(pg), time.perf_counter()
                asyncio.run(send(dial(service.info), batches, args.streams))
                s1, p1, t1 = cpu_seconds(server), tree_cpu_seconds(pg), time.perf_counter()
            stored = asyncio.run(count_events(dsn))
            figures[mode].append(
                ((s1 - s0) / stored * 1e6, (p1 - p0) / stored * 1e6, stored / (t1 - t0))
            )
    medians = {
        mode: [statistics.median(r[k] for r in runs) for k in range(3)]
        for mode, runs in figures.items()
    }
    rows: list[list[object]] = [[f"Merkle tree {m}", *medians[m]] for m in ("off", "on")]
    cost = [f"{(b - a) / a:+.1%}" for a, b in zip(medians["off"], medians["on"], strict=True)]
    rows.append(["cost of the tree", *cost])
    return rows


async def build_tree(dsn: str, chain: str, leaves: int) -> bytes:
    """The tiles of `leaves` synthetic leaves, and the chain's head at that size."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO chains (chain_id, head_seq, head_hash) VALUES ($1, $2, $3)",
            chain, leaves, bytes(32),
        )  # fmt: skip
        tree = merkle.CompactRange()
        step = 1 << 16
        for start in range(0, leaves, step):
            appends = tiles.TileAppends()
            for i in range(start, min(start + step, leaves)):
                tree.append(merkle.leaf_hash(i.to_bytes(8, "big")), appends.add)
            await append_tiles(conn, chain, appends)
        return tree.root()
    finally:
        await conn.close()


async def proof_latency(
    dsn: str, chain: str, leaves: int, count: int, root: bytes
) -> list[list[object]]:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    store = PgTreeStore(pool)
    rng = random.Random(7)
    inclusion, consistency = [], []
    try:
        for _ in range(count):
            index = rng.randrange(leaves)
            t0 = time.perf_counter()
            p = await proofs.inclusion_proof(store, chain, seq=index + 1, tree_size=leaves)
            inclusion.append(time.perf_counter() - t0)
            if rng.random() < 0.01:  # a sample is checked: the proofs are right
                leaf = merkle.leaf_hash(index.to_bytes(8, "big"))
                merkle.verify_inclusion(index, leaves, leaf, p.hashes, root)
            old = rng.randrange(1, leaves)
            t0 = time.perf_counter()
            await proofs.consistency_proof(store, chain, old, leaves)
            consistency.append(time.perf_counter() - t0)
    finally:
        await pool.close()

    def ms(values: list[float], q: float) -> float:
        return sorted(values)[int(q * (len(values) - 1))] * 1000

    return [
        ["inclusion proof", ms(inclusion, 0.5), ms(inclusion, 0.99)],
        ["consistency proof", ms(consistency, 0.5), ms(consistency, 0.99)],
    ]


async def checkpoint_cost(dsn: str, chain: str, leaves: int) -> float:
    """Seconds of one checkpoint's tree work: the root from the tiles, the signed note."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    store = PgTreeStore(pool)
    signer = note.NoteSigner("bench.local", Ed25519PrivateKey.generate())
    times = []
    try:
        for i in range(50):
            size = leaves - i * 997
            t0 = time.perf_counter()
            root = await store.root_at(chain, size)
            body = checkpoint_body(f"bench.local/{chain}", size, root, bytes(32), datetime.now(UTC))
            note.sign(body.text(), signer).render()
            times.append(time.perf_counter() - t0)
    finally:
        await pool.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs of ingest runs")
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--proofs", type=int, default=1000)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    report = Report("integrity")
    with tempfile.TemporaryDirectory() as tmp:
        ingest = ingest_runs(args, Path(tmp) / "ingest")
        with bench_postgres(Path(tmp) / "proofs") as bench:
            dsn = bench.fresh_database("proofs")
            t0 = time.perf_counter()
            root = asyncio.run(build_tree(dsn, "bench", args.leaves))
            built = time.perf_counter() - t0
            latency = asyncio.run(proof_latency(dsn, "bench", args.leaves, args.proofs, root))
            per_checkpoint = asyncio.run(checkpoint_cost(dsn, "bench", args.leaves))
    report.add(f"# ingest: {args.events:,} events per run, {args.rounds} off/on pairs, medians")
    report.table(["", "audit-service CPU us/event", "PostgreSQL CPU us/event", "events/s"], ingest)
    report.add()
    report.add(
        f"# proofs at {args.leaves:,} leaves (tiles built in {built:.0f} s), {args.proofs} each"
    )
    report.table(["", "p50 ms", "p99 ms"], latency)
    report.add()
    report.add(
        f"# a checkpoint's tree work (root from tiles, signed note): {per_checkpoint * 1e3:.2f} ms"
    )
    report.add(
        f"# at one checkpoint a second: {per_checkpoint:.2%} of one core ({os.cpu_count()} here)"
    )
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
