"""Query and GetStatistics latency on large tables, through the real audit-service.

    .venv/bin/python -m bench.query [--rows 1000000,10000000] [--calls 200]
        [--data DIR] [--no-record]

Each size gets its own database, filled with events spread evenly over the last 7 days
(10,000 users, the common event types). The rows are generated inside PostgreSQL
(`INSERT ... SELECT ... FROM generate_series`), which beats a COPY fed from Python: no
row crosses the socket and nothing is parsed. The load runs with no index or
constraint on the table, in the transaction that truncated it (with `wal_level=minimal`
on this private server that writes no WAL for the rows; fsync stays on), then the
indexes and constraints are rebuilt two at a time (`maintenance_work_mem` 1 GB), the
rollups are computed from the rows as the appender would have kept them, and the table
is vacuumed and analysed, as autovacuum would have left it.

Each figure is the p50/p99 of `--calls` sequential calls over gRPC from one client,
after a warm-up. GetStatistics remembers the per-user sums of hours that are over
(exactly: checked against the hourly event totals on every call); its "cold" case asks
on every call for a range it has not seen, as the first call after each hour does.
The floor is `grpc.health.v1.Health/Check` (no database): what any
call costs this client and server. Deep pages are reached by following page tokens;
the figure is the latency of the one call that fetches that page.

`--data DIR` keeps the server's files in DIR and reuses a database already loaded
there (for profiling between runs); `--no-record` prints without updating
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from bench.common import Bench, Dial, Report, bench_postgres, dial, percentiles, timed
from devstack.events import EVENT_TYPES

USERS = 10_000
WARM_UP = 10
DEEP_PAGES = (20, 100)
QUERY_TARGET_MS = 5.0
STATISTICS_TARGET_MS = 100.0
TARGET_ROWS = 10_000_000
COLD_RANGES = 6 * 24
# Server settings for the load; none of them changes what a query does.
SERVER_OPTIONS = {
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "8GB",
    "shared_buffers": "1GB",
}

# Rare values: one row in RARE has each filter's rare value; one in OLD_RARE of the
# oldest OLD_SHARE of rows has its rare-and-old value (no newer row has it).
RARE, OLD_RARE, OLD_SHARE = 10_000, 1_000, 100
RARE_VALUES = {"service": "billing-service", "action": "invoice_paid", "result": "error",
               "data_classification": "restricted", "compliance_tag": "HIPAA"}  # fmt: skip
OLD_VALUES = {"service": "legacy-service", "action": "legacy_sync",
              "data_classification": "confidential", "compliance_tag": "PCI"}  # fmt: skip

# $1 rows, $2 users, $3-$5 the type, action and result of each kind, $6 now.
LOAD = f"""
INSERT INTO audit_events
SELECT 'bench', g, (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                    || lpad(to_hex(g), 19, '0'))::uuid,
       ($3::text[])[k], 'user' || (g % $2), 'name' || (g % $2),
       ('10.0.' || (g % 250) || '.' || (g % 200))::inet, 'Mozilla/5.0 (bench)',
       CASE WHEN rare THEN '{RARE_VALUES["service"]}'
            WHEN old THEN '{OLD_VALUES["service"]}' ELSE 'user-service' END,
       CASE WHEN rare THEN '{RARE_VALUES["action"]}'
            WHEN old THEN '{OLD_VALUES["action"]}' ELSE ($4::text[])[k] END,
       CASE WHEN rare THEN '{RARE_VALUES["result"]}' ELSE ($5::text[])[k] END,
       jsonb_build_object('mfa_used', g % 2 = 0, 'session_id', 'sess_' || g),
       CASE WHEN rare THEN ARRAY['{RARE_VALUES["compliance_tag"]}']
            WHEN old THEN ARRAY['{OLD_VALUES["compliance_tag"]}']
            WHEN g % 3 = 0 THEN '{{SOX,GDPR}}'::text[] ELSE '{{GDPR}}'::text[] END,
       CASE WHEN rare THEN '{RARE_VALUES["data_classification"]}'
            WHEN old THEN '{OLD_VALUES["data_classification"]}' ELSE 'internal' END,
       t, t, '\\x00', '\\x00'
FROM generate_series(1, $1) AS g,
     LATERAL (SELECT $6::timestamptz - interval '7 days' * (($1 - g)::float8 / $1) AS t,
                     (g % cardinality($3::text[]) + 1)::int AS k,
                     g % {RARE} = 0 AS rare,
                     g % {OLD_RARE} = {OLD_RARE // 2} AND g <= $1 / {OLD_SHARE} AS old) AS x
"""
ROLLUPS = [
    """INSERT INTO event_counts_hourly
       SELECT date_trunc('hour', event_time, 'UTC'), event_type, result, service, count(*)
       FROM audit_events GROUP BY 1, 2, 3, 4""",
    """INSERT INTO user_counts_hourly
       SELECT date_trunc('hour', event_time, 'UTC'), user_id, count(*) FROM audit_events
       WHERE user_id <> '' GROUP BY 1, 2""",
    """INSERT INTO user_counts_daily
       SELECT date_trunc('day', event_time, 'UTC'), user_id, count(*) FROM audit_events
       WHERE user_id <> '' GROUP BY 1, 2""",
]


@dataclass
class Loaded:
    """How a database was filled: seconds per step, or reused as found."""

    rows: int
    steps: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.steps:
            return "reused from --data"
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in self.steps.items())
        return f"loaded in {sum(self.steps.values()):.0f} s: {parts}"


Insert = Callable[[asyncpg.Connection, int], Awaitable[None]]


async def load(dsn: str, rows: int, insert: Insert | None = None) -> Loaded:
    """Fill an empty, migrated database with `rows` events and their rollups; `insert`
    writes the rows instead of LOAD (bench.privacy: sealed rows)."""
    out = Loaded(rows)
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT count(*) FROM chains WHERE chain_id = 'bench'"):
            return out
        indexes = [  # a partitioned table's index, rebuilt on every partition
            r["indexdef"].replace(" ON ONLY ", " ON ")
            for r in await conn.fetch(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_events' AND indexname "
                "NOT IN (SELECT conname FROM pg_constraint "
                "WHERE conrelid = 'audit_events'::regclass)"
            )
        ]
        constraints = await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE conrelid = 'audit_events'::regclass AND contype IN ('p', 'u')"
        )
        start = time.perf_counter()
        now = datetime.now(UTC)
        await conn.execute(  # the daily partitions the rows go to
            "SELECT audit_events_ensure_partition(d) FROM generate_series("
            "$1::timestamptz - interval '8 days', $1, interval '1 day') AS d",
            now,
        )
        async with conn.transaction():
            await conn.execute("TRUNCATE audit_events")
            for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events'"
            ):
                if r["indexname"] not in {c["conname"] for c in constraints}:
                    await conn.execute(f"DROP INDEX {r['indexname']}")
            for c in constraints:
                await conn.execute(f"ALTER TABLE audit_events DROP CONSTRAINT {c['conname']}")
            await conn.execute("INSERT INTO chains (chain_id, head_seq) VALUES ('bench', $1)", rows)
            # The chain_id foreign key holds by construction; skip its per-row trigger.
            await conn.execute("SET LOCAL session_replication_role = replica")
            types, actions, results = (list(col) for col in zip(*EVENT_TYPES, strict=True))
            if insert is None:
                await conn.execute(LOAD, rows, USERS, types, actions, results, now)
            else:
                await insert(conn, rows)
        out.steps["insert"] = time.perf_counter() - start

        start = time.perf_counter()
        work = [f"ALTER TABLE audit_events ADD CONSTRAINT {c['conname']} {c['def']}"
                for c in constraints] + indexes + ROLLUPS  # fmt: skip
        await _two_at_a_time(dsn, work)
        out.steps["indexes and rollups"] = time.perf_counter() - start

        start = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        out.steps["vacuum"] = time.perf_counter() - start
    finally:
        await conn.close()
    return out


async def _two_at_a_time(dsn: str, statements: list[str]) -> None:
    """Run the statements on two connections (the machine has two cores)."""
    queue = list(reversed(statements))

    async def worker() -> None:
        conn = await asyncpg.connect(
            dsn, server_settings={"maintenance_work_mem": "1GB", "synchronous_commit": "off"}
        )
        try:
            while queue:
                await conn.execute(queue.pop())
        finally:
            await conn.close()

    await asyncio.gather(worker(), worker())


def ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


Case = tuple[str, Callable[[], Awaitable[object]]]


async def measure(target: Dial, calls: int, rows: int) -> list[tuple[str, float, float]]:
    """(case, p50 ms, p99 ms) for each call, `calls` sequential calls each."""
    rng = random.Random(7)
    async with target.channel() as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        day_ago = datetime.now(UTC) - timedelta(hours=24)
        tokens = await _page_tokens(stub, pb.QueryRequest(event_type="auth.*"), max(DEEP_PAGES))

        def query(**fields: str) -> Callable[[], Awaitable[object]]:
            request = pb.QueryRequest()
            for name, value in fields.items():
                setattr(request, name, value)
            return _call(stub.Query, request)

        cases: list[Case] = [
            ("floor: grpc.health.v1 Check", lambda: health.Check(health_pb2.HealthCheckRequest())),
            ("Query user_id", lambda: stub.Query(
                pb.QueryRequest(user_id=f"user{rng.randrange(USERS)}"))),
            ("Query username", lambda: stub.Query(
                pb.QueryRequest(username=f"name{rng.randrange(USERS)}"))),
            ("Query ip_address", lambda: stub.Query(pb.QueryRequest(
                ip_address=f"10.0.{rng.randrange(250)}.{rng.randrange(200)}"))),
            ("Query event_type + last 24h", lambda: stub.Query(
                pb.QueryRequest(event_type="auth.login_failed", start_time=ts(day_ago)))),
            ("Query prefix auth.*", query(event_type="auth.*")),
            ("Query service (common)", query(service="user-service")),
            ("Query action (common)", query(action="login_failed")),
            ("Query result (common)", query(result="failure")),
            ("Query data_classification (common)", query(data_classification="internal")),
            ("Query compliance_tag SOX (common)", query(compliance_tag="SOX")),
            ("Query details mfa_used (common)", query(details_contains='{"mfa_used": true}')),
            ("Query details session_id (one event)", lambda: stub.Query(pb.QueryRequest(
                details_contains=f'{{"session_id": "sess_{rng.randrange(1, rows)}"}}'))),
        ]  # fmt: skip
        for name, value in RARE_VALUES.items():
            cases.append((f"Query {name} (rare: 1 in {RARE:,})", query(**{name: value})))
        for name, value in OLD_VALUES.items():
            cases.append((f"Query {name} (rare, oldest {100 // OLD_SHARE}% only)",
                          query(**{name: value})))  # fmt: skip
        for page in DEEP_PAGES:
            request = pb.QueryRequest(event_type="auth.*", page_token=tokens[page - 2])
            cases.append((f"Query auth.* page {page} (by token)", _call(stub.Query, request)))
        cases += [
            ("GetStatistics 24h", lambda: stub.GetStatistics(
                pb.GetStatisticsRequest(time_range="24h"))),
            ("GetStatistics 7d", lambda: stub.GetStatistics(
                pb.GetStatisticsRequest(time_range="7d"))),
            ("GetStatistics 24h, cold: new range each call", _cold_statistics(stub)),
        ]  # fmt: skip
        out = []
        for name, call in cases:
            samples, _ = await timed(call, calls, WARM_UP)
            out.append((name, *percentiles(samples)))
        return out


def _cold_statistics(stub: pb_grpc.AuditServiceStub) -> Callable[[], Awaitable[object]]:
    """24 hours ending a different whole number of hours ago on each call, cycling
    through 6 days: the service has never summed that range's finished hours."""
    calls = iter(range(1_000_000))
    now = datetime.now(UTC)

    def call() -> Awaitable[object]:
        end = now - timedelta(hours=1 + next(calls) % COLD_RANGES)
        start = end - timedelta(hours=24)
        response: Awaitable[object] = stub.GetStatistics(
            pb.GetStatisticsRequest(start_time=ts(start), end_time=ts(end))
        )
        return response

    return call


def _call(method: Callable[[pb.QueryRequest], Awaitable[object]], request: pb.QueryRequest) -> (
    Callable[[], Awaitable[object]]
):  # fmt: skip
    return lambda: method(request)


async def _page_tokens(stub: pb_grpc.AuditServiceStub, request: pb.QueryRequest, pages: int) -> (
    list[str]
):  # fmt: skip
    """The tokens of pages 2..`pages`, by following next_page_token from the first."""
    tokens: list[str] = []
    page = await stub.Query(request)
    while len(tokens) < pages - 1 and page.next_page_token:
        tokens.append(page.next_page_token)
        request.page_token = page.next_page_token
        page = await stub.Query(request)
    if len(tokens) < pages - 1:
        raise SystemExit(f"fewer than {pages} pages of {request.event_type}")
    return tokens


@contextlib.contextmanager
def server(data: Path | None) -> Iterator[Bench]:
    """The benchmark's PostgreSQL, in `data` or in a temporary folder."""
    with contextlib.ExitStack() as stack:
        folder = data or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        yield stack.enter_context(bench_postgres(folder, options=SERVER_OPTIONS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="sizes, comma-separated")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--data", type=Path, help="keep and reuse the server's files here")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    report = Report("query")
    report.add(f"# {args.calls} sequential calls per case after {WARM_UP} warm-up calls; "
               f"{USERS:,} users; pages of 50 events")  # fmt: skip
    worst: dict[int, tuple[float, float]] = {}
    with server(args.data) as bench:
        for rows in sizes:
            dsn = bench.fresh_database(f"query_{rows}")
            loaded = asyncio.run(load(dsn, rows))
            with bench.audit_service(dsn) as service:
                results = asyncio.run(measure(dial(service.info, "operator"), args.calls, rows))
            report.add()
            report.add(f"## {rows:,} events over 7 days ({loaded.describe()})")
            report.table(["call", "p50 ms", "p99 ms"], [list(r) for r in results])
            query = max(p99 for name, _, p99 in results if name.startswith("Query"))
            stats = next(p99 for name, _, p99 in results if name == "GetStatistics 24h")
            worst[rows] = (query, stats)
    report.add()
    for rows, (query, stats) in worst.items():
        scope = "" if rows == TARGET_ROWS else " (target is at 10,000,000)"
        report.add(f"target at {rows:,}{scope}: Query p99 < {QUERY_TARGET_MS:g} ms: worst "
                   f"{query:.2f} ms {_verdict(query, QUERY_TARGET_MS)}; GetStatistics 24h p99 "
                   f"< {STATISTICS_TARGET_MS:g} ms: {stats:.1f} ms "
                   f"{_verdict(stats, STATISTICS_TARGET_MS)}")  # fmt: skip
    report.publish(record=not args.no_record)


def _verdict(value: float, target: float) -> str:
    return "PASS" if value < target else "MISS"


if __name__ == "__main__":
    main()
