"""Query and GetStatistics latency on a large table, through the real audit-service.

    .venv/bin/python -m bench.query [--rows 1000000] [--calls 200]

Rows are generated inside PostgreSQL (generate_series) over the last 7 days, with the
secondary indexes dropped during the load and rebuilt after it, and the hourly rollups
computed from the rows, as the appender would have kept them. Each figure is the
p50/p99 of `--calls` sequential calls over gRPC from one client.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
from google.protobuf import timestamp_pb2

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from bench.common import EVENT_TYPES, bench_postgres, command_line, machine, percentiles

USERS = 10_000

LOAD = """
INSERT INTO audit_events
SELECT 'bench', g, gen_random_uuid(), t.event_type, 'user' || (g % $2), 'name' || (g % $2),
       ('10.0.' || (g % 250) || '.' || (g % 200))::inet, 'Mozilla/5.0 (bench)', 'user-service',
       t.action, t.result, jsonb_build_object('mfa_used', g % 2 = 0, 'session_id', 'sess_' || g),
       CASE WHEN g % 3 = 0 THEN ARRAY['SOX', 'GDPR'] ELSE ARRAY['GDPR'] END, 'internal',
       now() - (interval '7 days') * (($1 - g)::float8 / $1), now(), '\\x00', '\\x00'
FROM generate_series(1, $1) AS g
JOIN (SELECT * FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY
      AS x(event_type, action, result, n)) t ON t.n = g % $6 + 1
"""
ROLLUPS = """
INSERT INTO event_counts_hourly
SELECT date_trunc('hour', event_time), event_type, result, service, count(*)
FROM audit_events GROUP BY 1, 2, 3, 4;
INSERT INTO user_counts_hourly
SELECT date_trunc('hour', event_time), user_id, count(*) FROM audit_events GROUP BY 1, 2;
UPDATE chains SET head_seq = (SELECT max(seq) FROM audit_events) WHERE chain_id = 'bench';
"""


async def load(dsn: str, rows: int) -> float:
    conn = await asyncpg.connect(dsn)
    start = time.perf_counter()
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_events' "
            "AND indexname NOT IN ('audit_events_pkey', 'audit_events_event_id_key')"
        )
        for row in indexes:
            await conn.execute(f"DROP INDEX {row['indexname']}")
        await conn.execute("INSERT INTO chains (chain_id) VALUES ('bench')")
        types, actions, results = (list(col) for col in zip(*EVENT_TYPES, strict=True))
        await conn.execute(LOAD, rows, USERS, types, actions, results, len(EVENT_TYPES))
        for row in indexes:
            await conn.execute(row["indexdef"])
        await conn.execute(ROLLUPS)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - start


def ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


async def measure(target: str, calls: int) -> list[tuple[str, float, float]]:
    rng = random.Random(7)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        day_ago = datetime.now(UTC) - timedelta(hours=24)

        async def deep_page() -> object:
            token = ""
            for _ in range(5):
                page = await stub.Query(pb.QueryRequest(event_type="auth.*", page_token=token))
                token = page.next_page_token
            return page

        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("Query user_id", lambda: stub.Query(
                pb.QueryRequest(user_id=f"user{rng.randrange(USERS)}"))),
            ("Query event_type + last 24h", lambda: stub.Query(
                pb.QueryRequest(event_type="auth.login_failed", start_time=ts(day_ago)))),
            ("Query prefix auth.*", lambda: stub.Query(pb.QueryRequest(event_type="auth.*"))),
            ("Query compliance_tag SOX", lambda: stub.Query(
                pb.QueryRequest(compliance_tag="SOX"))),
            ("Query 5 pages deep (auth.*), per call", deep_page),
            ("GetStatistics 24h", lambda: stub.GetStatistics(
                pb.GetStatisticsRequest(time_range="24h"))),
            ("GetStatistics 7d", lambda: stub.GetStatistics(
                pb.GetStatisticsRequest(time_range="7d"))),
        ]  # fmt: skip
        out = []
        for name, call in cases:
            for _ in range(5):  # warm the caches and the plan
                await call()
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                await call()
                samples.append(time.perf_counter() - start)
            out.append((name, *percentiles(samples)))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        dsn = bench.fresh_database("query")
        seconds = asyncio.run(load(dsn, args.rows))
        with bench.audit_service(dsn) as service:
            results = asyncio.run(measure(service.info.url, args.calls))
    print(f"# {command_line('bench.query')}")
    print(f"# {machine()}; {args.rows} rows over 7 days (loaded in {seconds:.0f} s)")
    print(f"{'call':<40} {'p50 ms':>8} {'p99 ms':>8}")
    for name, p50, p99 in results:
        print(f"{name:<40} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
