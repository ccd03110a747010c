"""What the REST gateway adds to a call, next to the same call over direct gRPC.

    .venv/bin/python -m bench.gateway [--calls 1000] [--preload 20000]
        [--requests 2000] [--concurrency 8] [--no-record]

The audit-service and the gateway run as their own processes (as `make up` runs
them) over a private PostgreSQL with fsync on. For each call (Ingest one event,
Query a page of 50 events, GetEvent, Health) this process sends `--calls` pairs
sequentially (concurrency 1): the same request over gRPC and as REST through the
gateway, in alternating order, so the machine's load drifts over both alike. The
gateway's cost is the REST latency minus the gRPC one: at p50, at p99, and as the
median of the per-pair differences. A throughput row (`--concurrency` callers,
`--requests` calls) follows for Query; `--requests 0` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from google.protobuf import json_format

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from bench.common import Dial, Report, bench_postgres, dial, percentiles
from devstack.events import wire_events
from devstack.mesh import GrpcServiceInfo, certs_env, probe_http
from devstack.ports import free_port
from devstack.process import ProcessSpec
from devstack.service import ServicePlan, start_service

Call = Callable[[int], Awaitable[object]]
TARGET_MS = 1.0
WARM_UP = 50


def gateway_plan(folder: Path, audit: GrpcServiceInfo, port: int) -> ServicePlan[GrpcServiceInfo]:
    """`python -m gateway` with its audit listener on `port` in front of `audit`."""
    url = f"http://127.0.0.1:{port}/openapi.json"

    folder.mkdir(parents=True, exist_ok=True)
    spec = ProcessSpec(
        name="gateway",
        argv=(sys.executable, "-m", "gateway"),
        log_path=folder / "gateway.log",
        ready=functools.partial(probe_http, url),
        env={
            "GATEWAY_PORTS": f"audit={port},user={free_port()}",
            "GATEWAY_UPSTREAMS": f"audit={audit.url}",
            **certs_env("GATEWAY_TLS", Path(audit.certs_dir), "gateway"),
            "GATEWAY_LOG_LEVEL": "WARNING",
        },
    )
    return ServicePlan(spec=spec, info=GrpcServiceInfo("127.0.0.1", port))


@dataclass(frozen=True, slots=True)
class Overhead:
    """One call over both paths, sequentially, in alternating order."""

    name: str
    grpc_p50: float
    grpc_p99: float
    rest_p50: float
    rest_p99: float
    paired_ms: float  # median of (REST - gRPC) over pairs

    @property
    def adds_p50(self) -> float:
        return self.rest_p50 - self.grpc_p50

    @property
    def adds_p99(self) -> float:
        return self.rest_p99 - self.grpc_p99


async def paired(name: str, grpc_call: Call, rest_call: Call, calls: int) -> Overhead:
    """`calls` pairs, one after the other; odd pairs start with REST."""
    for i in range(WARM_UP):
        await grpc_call(i)
        await rest_call(i)
    g: list[float] = []
    r: list[float] = []
    for i in range(calls):
        order = ((grpc_call, g), (rest_call, r)) if i % 2 == 0 else ((rest_call, r), (grpc_call, g))
        for call, samples in order:
            start = time.perf_counter()
            await call(i)
            samples.append(time.perf_counter() - start)
    g50, g99 = percentiles(g)
    r50, r99 = percentiles(r)
    diff = statistics.median(b - a for a, b in zip(g, r, strict=True)) * 1000
    return Overhead(name, g50, g99, r50, r99, diff)


async def throughput(call: Call, requests: int, concurrency: int) -> tuple[float, float, float]:
    """requests/s, p50 ms, p99 ms of `requests` calls from `concurrency` callers."""
    for i in range(concurrency * 5):
        await call(i)
    samples: list[float] = []
    counter = iter(range(requests))

    async def caller() -> None:
        for i in counter:
            start = time.perf_counter()
            await call(i)
            samples.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    p50, p99 = percentiles(samples)
    return requests / elapsed, p50, p99


@dataclass
class Results:
    overheads: list[Overhead]
    throughput: list[tuple[str, float, float, float]]


async def measure(
    grpc_target: Dial, rest_port: int, calls: int, preload: int, requests: int, concurrency: int
) -> Results:
    fresh_needed = 2 * (calls + WARM_UP)
    events = wire_events(preload + fresh_needed)
    bodies = [json_format.MessageToDict(e, preserving_proto_field_name=True) for e in events]
    ids = [e.event_id for e in events[:preload]]
    rng = random.Random(11)
    base = f"http://127.0.0.1:{rest_port}"
    connector = aiohttp.TCPConnector(limit=max(concurrency, 1))
    async with (
        grpc_target.channel() as channel,
        aiohttp.ClientSession(connector=connector) as http,
    ):
        stub = pb_grpc.AuditServiceStub(channel)
        for i in range(0, preload, 1000):
            await stub.IngestBatch(pb.IngestBatchRequest(events=events[i : i + 1000]))
        fresh = iter(range(preload, len(events)))

        async def rest_get(path: str, params: dict[str, str] | None = None) -> bytes:
            async with http.get(base + path, params=params) as response:
                body = await response.read()
                assert response.status == 200, body
                return body

        async def grpc_ingest(i: int) -> object:
            return await stub.Ingest(pb.IngestRequest(event=events[next(fresh)]))

        async def rest_ingest(i: int) -> object:
            async with http.post(f"{base}/api/v2/events", json=bodies[next(fresh)]) as response:
                body = await response.read()
                assert response.status == 200, body
                return body

        event_types = sorted({e.event_type for e in events})

        async def grpc_query(i: int) -> object:
            return await stub.Query(pb.QueryRequest(event_type=event_types[i % len(event_types)]))

        async def rest_query(i: int) -> object:
            return await rest_get(
                "/api/v2/events/query", {"event_type": event_types[i % len(event_types)]}
            )

        async def grpc_get(i: int) -> object:
            return await stub.GetEvent(pb.GetEventRequest(event_id=ids[rng.randrange(len(ids))]))

        async def rest_get_event(i: int) -> object:
            return await rest_get(f"/api/v2/events/{ids[rng.randrange(len(ids))]}")

        async def grpc_health(i: int) -> object:
            return await stub.Health(pb.HealthRequest())

        async def rest_health(i: int) -> object:
            return await rest_get("/api/v2/events/health")

        page = await stub.Query(pb.QueryRequest(event_type=event_types[0]))
        overheads = [
            await paired("Ingest one event", grpc_ingest, rest_ingest, calls),
            await paired(f"Query, page of {len(page.events)}", grpc_query, rest_query, calls),
            await paired("GetEvent", grpc_get, rest_get_event, calls),
            await paired("Health", grpc_health, rest_health, calls),
        ]
        rows = []
        if requests > 0:
            for name, call in (("gRPC", grpc_query), ("REST via gateway", rest_query)):
                rows.append((f"Query, {name}", *await throughput(call, requests, concurrency)))
        return Results(overheads, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="pairs per call, sequential")
    parser.add_argument("--preload", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2000, help="throughput row; 0: skip")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        dsn = bench.fresh_database("gateway")
        with (
            bench.audit_service(dsn) as audit,
            start_service(gateway_plan(Path(tmp) / "gateway", audit.info, free_port())) as gw,
        ):
            results = asyncio.run(
                measure(
                    dial(audit.info),
                    gw.info.port,
                    args.calls,
                    args.preload,
                    args.requests,
                    args.concurrency,
                )
            )
    report = Report("gateway")
    report.add(
        f"# {args.preload} events preloaded; {args.calls} sequential pairs per call "
        "(gRPC and REST alternating); ms"
    )
    report.table(
        ["call", "gRPC p50", "REST p50", "adds p50", "gRPC p99", "REST p99", "adds p99", "paired"],
        [
            [o.name, o.grpc_p50, o.rest_p50, o.adds_p50, o.grpc_p99, o.rest_p99, o.adds_p99]
            + [o.paired_ms]
            for o in results.overheads
        ],
    )
    if results.throughput:
        report.add()
        report.add(f"# {args.requests} calls, {args.concurrency} concurrent callers")
        report.table(["case", "req/s", "p50 ms", "p99 ms"], [list(r) for r in results.throughput])
    report.add()
    for o in results.overheads:
        verdict = "PASS" if o.adds_p50 < TARGET_MS else "MISS"
        report.add(
            f"target: gateway adds < {TARGET_MS:g} ms at p50, {o.name}: "
            f"{o.adds_p50:.2f} ms  {verdict}"
        )
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
