"""Committed ingest through StreamIngest (1 and 8 streams, sinks off; 8 streams with
every sink on) next to raw COPY, one run.

    .venv/bin/python -m bench.ingest [--events 200000] [--batch 500]

Each variant writes into its own fresh database with the same schema and indexes;
events/s counts only rows committed (a count afterwards), from the first send to
the last ack. The audit-service runs as its own process, as in production. With
sinks on (InfluxDB on VictoriaMetrics, signed checkpoints on SeaweedFS, the archive
schedule), Health is sampled during the run for each sink's largest lag.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.storage.postgres import EVENT_COLUMNS, create_pool
from bench.common import Bench, bench_postgres, command_line, machine, wire_events
from bench.sinks import LagSamples, sample_lag, sink_servers


async def stream_ingest(
    target: str, events: list[event_pb2.AuditEvent], streams: int, batch: int
) -> float:
    """Seconds to send `events` over `streams` concurrent StreamIngest calls."""
    chunks = [events[i : i + batch] for i in range(0, len(events), batch)]
    per_stream = [chunks[i::streams] for i in range(streams)]

    async def one(mine: list[list[event_pb2.AuditEvent]], n: int) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            requests = (
                pb.StreamIngestRequest(batch_id=f"{n}-{i}", events=c) for i, c in enumerate(mine)
            )
            async for _ack in pb_grpc.AuditServiceStub(channel).StreamIngest(requests):
                pass

    start = time.perf_counter()
    await asyncio.gather(*(one(mine, n) for n, mine in enumerate(per_stream)))
    return time.perf_counter() - start


async def raw_copy(dsn: str, events: list[event_pb2.AuditEvent], batch: int) -> float:
    """Seconds to COPY the same rows (no validation, no chain) in `batch`-row commits."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    await pool.execute("INSERT INTO chains (chain_id) VALUES ('copy')")
    t = datetime.now(UTC)
    rows = [
        (
            "copy", i + 1, uuid.UUID(e.event_id), e.event_type, e.user_id, e.username,
            None, e.user_agent, e.service, e.action, e.result,
            {"mfa_used": e.details["mfa_used"], "session_id": e.details["session_id"]},
            list(e.compliance_tags), e.data_classification, t, t, b"\0" * 32, b"\1" * 32,
        )
        for i, e in enumerate(events)
    ]  # fmt: skip
    start = time.perf_counter()
    async with pool.acquire() as conn:
        for i in range(0, len(rows), batch):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "audit_events", records=rows[i : i + batch], columns=EVENT_COLUMNS
                )
    elapsed = time.perf_counter() - start
    await pool.close()
    return elapsed


async def committed(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM audit_events"))
    finally:
        await conn.close()


async def ingest_with_lag(
    target: str, events: list[event_pb2.AuditEvent], streams: int, batch: int
) -> tuple[float, LagSamples]:
    """`stream_ingest` while sampling the sinks' lag."""
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_lag(target, stop))
    try:
        seconds = await stream_ingest(target, events, streams, batch)
    finally:
        stop.set()
    return seconds, await sampler


def run(bench: Bench, count: int, batch: int) -> tuple[list[tuple[str, int, float]], LagSamples]:
    events = wire_events(count)
    results = []
    for streams in (1, 8):
        dsn = bench.fresh_database(f"stream{streams}")
        with bench.audit_service(dsn) as service:
            seconds = asyncio.run(stream_ingest(service.info.url, events, streams, batch))
        results.append((f"StreamIngest, {streams} stream(s)", asyncio.run(committed(dsn)), seconds))
    dsn = bench.fresh_database("sinks")
    with sink_servers(bench.folder / "sinks") as env, bench.audit_service(dsn, env) as service:
        seconds, lag = asyncio.run(ingest_with_lag(service.info.url, events, 8, batch))
    results.append(("StreamIngest, 8 streams, sinks on", asyncio.run(committed(dsn)), seconds))
    dsn = bench.fresh_database("rawcopy")
    seconds = asyncio.run(raw_copy(dsn, events, batch))
    results.append(("raw COPY (asyncpg), same table", asyncio.run(committed(dsn)), seconds))
    return results, lag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        results, lag = run(bench, args.events, args.batch)
    copy_rate = results[-1][1] / results[-1][2]
    print(f"# {command_line('bench.ingest')}")
    print(f"# {machine()}; {args.events} events, batches of {args.batch}, fsync on")
    print(f"{'variant':<36} {'committed':>10} {'seconds':>8} {'events/s':>10} {'vs COPY':>8}")
    for name, rows, seconds in results:
        rate = rows / seconds
        print(f"{name:<36} {rows:>10} {seconds:>8.2f} {rate:>10.0f} {rate / copy_rate:>8.2f}")
    print("# sinks on, largest lag seen in Health during the run:")
    for sink, events in sorted(lag.events.items()):
        print(f"#   {sink:<12} {events:>8} events {lag.seconds[sink]:>7.2f} s")
    print(f"#   (appender queue, for comparison: {lag.appender_seconds:.2f} s)")
    print(f"#   InfluxDB sink reached the head {lag.drain_seconds:.2f} s after the last ack")


if __name__ == "__main__":
    main()
