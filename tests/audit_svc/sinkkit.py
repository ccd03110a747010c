"""Helpers of the sink tests: settings for a service with sinks, bulk ingest over
gRPC, counts read back from VictoriaMetrics and from PostgreSQL, and polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.settings import Settings
from devstack import InfluxInfo, S3Info, export_series
from devstack.events import wire_events
from tests.testkit import tls


def sink_settings(
    audit_db: str,
    tmp_path: Path,
    *,
    influx: InfluxInfo | None = None,
    s3: S3Info | None = None,
    **overrides: Any,
) -> Settings:
    """Settings of a service on a free port with the given sinks, unique buckets and
    chain (the VictoriaMetrics and SeaweedFS of the session are shared), fast retries."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "database_url": audit_db,
        "grpc_listen": "127.0.0.1:0",
        "chain_id": f"chain-{tag}",
        "sink_poll_seconds": 0.2,
        "sink_retry_max_seconds": 0.5,
        "signing_key_file": str(tmp_path / "signing-key.pem"),
        "archive_interval_seconds": 0.0,
    }
    if influx is not None:
        values |= {"influx_url": influx.url, "influx_org": influx.org,
                   "influx_bucket": influx.bucket, "influx_token": influx.token}  # fmt: skip
    if s3 is not None:
        values |= {"s3_endpoint": s3.endpoint, "s3_access_key": s3.access_key,
                   "s3_secret_key": s3.secret_key, "checkpoint_bucket": f"cp-{tag}",
                   "archive_bucket": f"ar-{tag}", "object_lock_days": 1}  # fmt: skip
    values.update(overrides)
    return tls.audit_settings(**values)


async def ingest(
    stub: pb_grpc.AuditServiceStub, count: int, batch: int = 1000, streams: int = 4
) -> float:
    """Store `count` guide-shaped events through IngestBatch; return the seconds taken."""
    events = wire_events(count)
    chunks = [events[i : i + batch] for i in range(0, count, batch)]

    async def one(mine: list[list[Any]]) -> None:
        for chunk in mine:
            response = await stub.IngestBatch(pb.IngestBatchRequest(events=chunk))
            assert all(r.outcome == event_pb2.OUTCOME_STORED for r in response.results)

    start = time.perf_counter()
    await asyncio.gather(*(one(chunks[i::streams]) for i in range(streams)))
    return time.perf_counter() - start


def influx_counts(info: InfluxInfo, chain_id: str) -> Counter[tuple[str, str]]:
    """Events per (event_type, result) as the points in VictoriaMetrics say. A window
    rewritten after a replay has several samples at one timestamp: the last (largest)
    is the window's count, as InfluxDB itself would keep only that one."""
    counts: Counter[tuple[str, str]] = Counter()
    for series in export_series(info, f'audit_events_count{{chain="{chain_id}"}}'):
        per_window: dict[int, float] = {}
        for ts, value in zip(series.timestamps_ms, series.values, strict=True):
            per_window[ts] = max(per_window.get(ts, 0.0), value)
        key = (series.labels["event_type"], series.labels["result"])
        counts[key] += int(sum(per_window.values()))
    return counts


async def pg_counts(conn: asyncpg.Connection, chain_id: str) -> Counter[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT event_type, result, count(*) AS n FROM audit_events WHERE chain_id = $1"
        " GROUP BY 1, 2",
        chain_id,
    )
    return Counter({(r["event_type"], r["result"]): int(r["n"]) for r in rows})


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Poll `check` until it holds; fail after `timeout` (a hang guard, not a timing
    assertion)."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.1)


async def cursor_at_head(conn: asyncpg.Connection, sink: str, chain_id: str) -> bool:
    row = await conn.fetchrow(
        "SELECT c.head_seq, s.last_seq FROM chains c LEFT JOIN sink_cursors s"
        " ON s.chain_id = c.chain_id AND s.sink = $1 WHERE c.chain_id = $2",
        sink,
        chain_id,
    )
    return row is not None and row["head_seq"] > 0 and row["last_seq"] == row["head_seq"]
