"""Cold tier: `Query` over one archived day (Parquet objects in S3) against the same
queries while the day was still in PostgreSQL, in one run; and what writing Parquet
next to the NDJSON costs the archiver.

One day of events (received 200 days ago, so older than the hot window) is stored with
real hash chains, queried through a real audit-service over gRPC (mutual TLS), then
archived by the real archiver (NDJSON + Parquet, read back and checked, the partition
dropped), and queried again: the day's time range reaches the archive by itself. The first
query after archiving downloads the objects it needs into the service's bounded cache;
it is reported on its own, then every case runs warm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import ipaddress
import json
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from google.protobuf import timestamp_pb2

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.model import Event, StoredEvent
from audit_svc.sinks.archive import Archiver, encode_events
from audit_svc.sinks.objects import ObjectStore
from audit_svc.storage.event_reads import chain_range
from audit_svc.storage.event_writes import append, ensure_chain
from audit_svc.storage.parquet import PARQUET
from audit_svc.storage.postgres import create_pool, init_connection
from audit_svc.storage.sink_state import PgSinkState
from bench.common import Bench, Dial, Report, bench_postgres, dial, percentiles, timed
from devstack import S3Info, start_s3
from devstack.events import EVENT_TYPES
from meshkit.ids import uuid7

USERS = 1000
WARM_UP = 5
TARGET_MS = 500.0
OBJECT_EVENTS = 10_000
MFA_USED = json.dumps({"mfa_used": True})
DAY = (datetime.now(UTC) - timedelta(days=200)).replace(hour=0, minute=0, second=0, microsecond=0)


def ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


def day_events(count: int) -> list[Event]:
    """`count` guide-shaped events spread over DAY, received when they happened."""
    step = timedelta(days=1) / count
    out = []
    for i in range(count):
        t = DAY + step * i
        event_type, action, result = EVENT_TYPES[i % len(EVENT_TYPES)]
        out.append(Event(
            event_id=uuid7(int(t.timestamp() * 1000)), event_type=event_type,
            user_id="rare-user" if i == count // 3 else f"user{i % USERS}",
            username=f"name{i % USERS}",
            ip_address=ipaddress.ip_address(f"10.0.{i % 250}.{i % 200}"),
            user_agent="Mozilla/5.0 (bench)", service="user-service", action=action,
            result=result, details={"mfa_used": i % 2 == 0, "session_id": f"sess_{i}"},
            compliance_tags=("SOX", "GDPR") if i % 3 == 0 else ("GDPR",),
            data_classification="internal", event_time=t, receive_time=t,
        ))  # fmt: skip
    return out


async def load(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        await ensure_chain(conn, "day")
        events = day_events(count)
        for i in range(0, count, 5000):
            await append(conn, "day", events[i : i + 5000])
    finally:
        await conn.close()


def store_of(s3: S3Info, bucket: str) -> ObjectStore:
    return ObjectStore(s3.endpoint, s3.access_key, s3.secret_key, bucket, lock_days=1)


async def archive(dsn: str, s3: S3Info, bucket: str) -> tuple[float, int]:
    """Archive the day as the service's archiver does; (seconds, objects)."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    store = store_of(s3, bucket)
    try:
        archiver = Archiver(
            PgSinkState(pool), "day", store, retention=timedelta(days=90),
            object_events=OBJECT_EVENTS, table=PARQUET,
        )  # fmt: skip
        start = time.perf_counter()
        done = await archiver.archive_all()
        seconds = time.perf_counter() - start
        left = await pool.fetchval("SELECT count(*) FROM audit_events WHERE chain_id = 'day'")
        if left:
            raise SystemExit(f"{left} events of the day are still in PostgreSQL: not cold")
        return seconds, len(done)
    finally:
        store.close()
        await pool.close()


async def object_costs(dsn: str) -> list[list[object]]:
    """Encode time and size of one object's worth of events: NDJSON vs Parquet."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        events: list[StoredEvent] = []
        async for batch in chain_range(conn, "day", 1, OBJECT_EVENTS):
            events += batch
    finally:
        await conn.close()
    rows: list[list[object]] = []
    for name, encode in (("NDJSON gzip", encode_events), ("Parquet zstd", PARQUET.encode)):
        encode(events)
        start = time.perf_counter()
        body = encode(events)
        rows.append([name, (time.perf_counter() - start) * 1000, len(body) / 1024])
    start = time.perf_counter()
    PARQUET.decode(PARQUET.encode(events))
    rows.append(["Parquet encode + decode (the archiver's check)",
                 (time.perf_counter() - start) * 1000, 0.0])  # fmt: skip
    return rows


Case = tuple[str, Callable[[], Awaitable[object]]]


def cases(stub: pb_grpc.AuditServiceStub, tokens: list[str]) -> list[Case]:
    rng = random.Random(7)
    day = {"start_time": ts(DAY), "end_time": ts(DAY + timedelta(days=1))}
    hour = {"start_time": ts(DAY + timedelta(hours=11)), "end_time": ts(DAY + timedelta(hours=12))}

    def q(**fields: object) -> Callable[[], Awaitable[object]]:
        return lambda: stub.Query(pb.QueryRequest(**fields))  # type: ignore[arg-type]

    return [
        ("day, newest page", q(**day)),
        ("day, one hour in the middle", q(**hour)),
        ("day, user_id (~200 events)", lambda: stub.Query(
            pb.QueryRequest(user_id=f"user{rng.randrange(USERS)}", **day))),  # type: ignore[arg-type]
        ("day, rare user_id (1 event)", q(user_id="rare-user", **day)),
        ("day, event_type prefix auth.*", q(event_type="auth.*", **day)),
        ("day, compliance_tag SOX", q(compliance_tag="SOX", **day)),
        ("day, details {mfa_used: true}", q(details_contains=MFA_USED, **day)),
        ("day, page 20 (by token)", q(page_token=tokens[-1], **day)),
        ("include_archive, no time range", q(include_archive=True)),
    ]  # fmt: skip


async def page_tokens(stub: pb_grpc.AuditServiceStub, pages: int) -> list[str]:
    request = pb.QueryRequest(start_time=ts(DAY), end_time=ts(DAY + timedelta(days=1)))
    tokens: list[str] = []
    while len(tokens) < pages - 1:
        reply = await stub.Query(request)
        tokens.append(reply.next_page_token)
        request.page_token = reply.next_page_token
    return tokens


async def measure(target: Dial, calls: int) -> tuple[list[tuple[str, float, float]], float]:
    """(case, p50, p99) per case, and the first call's ms (cold cache, if archived)."""
    async with target.channel() as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        start = time.perf_counter()
        await stub.Query(pb.QueryRequest(start_time=ts(DAY), end_time=ts(DAY + timedelta(days=1))))
        first = (time.perf_counter() - start) * 1000
        tokens = await page_tokens(stub, 20)
        out = []
        for name, call in cases(stub, tokens):
            samples, _ = await timed(call, calls, WARM_UP)
            out.append((name, *percentiles(samples)))
        return out, first


@contextlib.contextmanager
def servers(data: Path | None) -> Iterator[tuple[Bench, S3Info]]:
    with contextlib.ExitStack() as stack:
        folder = data or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        bench = stack.enter_context(bench_postgres(folder))
        s3 = stack.enter_context(start_s3(folder / "s3")).info
        yield bench, s3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the day")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--data", type=Path, help="keep the servers' files here")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    report = Report("cold")
    report.add(f"# one day of {args.events:,} events ({USERS:,} users) received 200 days ago, "
               f"objects of {OBJECT_EVENTS:,} events; {args.calls} sequential Query calls per "
               f"case after {WARM_UP} warm-up calls, pages of 50; other work shared the "
               "machine")  # fmt: skip
    bucket = "bench-archive-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:8]
    with servers(args.data) as (bench, s3):
        dsn = bench.fresh_database("cold")
        asyncio.run(load(dsn, args.events))
        costs = asyncio.run(object_costs(dsn))
        env = {
            "AUDIT_S3_ENDPOINT": s3.endpoint, "AUDIT_S3_ACCESS_KEY": s3.access_key,
            "AUDIT_S3_SECRET_KEY": s3.secret_key, "AUDIT_ARCHIVE_BUCKET": bucket,
            "AUDIT_CHECKPOINT_BUCKET": bucket + "-cp", "AUDIT_OBJECT_LOCK_DAYS": "1",
            "AUDIT_ARCHIVE_INTERVAL_SECONDS": "0",
        }  # fmt: skip
        with bench.audit_service(dsn, env) as service:
            target = dial(service.info, "operator")
            hot, _ = asyncio.run(measure(target, args.calls))
            seconds, objects = asyncio.run(archive(dsn, s3, bucket))
            cold, first = asyncio.run(measure(target, args.calls))
    report.add()
    report.add(f"## archiving the day: {objects} objects in {seconds:.1f} s "
               f"({args.events / seconds:,.0f} events/s: NDJSON + Parquet written, read back, "
               "checked, the day's partition dropped)")  # fmt: skip
    report.table(["one object of 10,000 events", "ms", "KiB"], costs)
    report.add()
    report.add("## Query: the day in PostgreSQL (hot) vs the same day archived (cold, warm cache)")
    rows = [[h[0], h[1], h[2], c[1], c[2]] for h, c in zip(hot, cold, strict=True)]
    report.table(["case", "hot p50 ms", "hot p99 ms", "cold p50 ms", "cold p99 ms"], rows)
    report.add(f"first query after archiving (downloads its objects): {first:.0f} ms")
    worst = max(c[2] for c in cold)
    verdict = "PASS" if worst < TARGET_MS else "MISS"
    report.add(f"target: cold-tier query over one archived day p99 < {TARGET_MS:g} ms: "
               f"worst {worst:.1f} ms {verdict}")  # fmt: skip
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
