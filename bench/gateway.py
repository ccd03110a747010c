"""REST through the gateway next to direct gRPC, for Query and Ingest, in one run.

    .venv/bin/python -m bench.gateway [--requests 2000] [--concurrency 8] [--preload 20000]

The audit-service and the gateway run as their own processes (as `make up` runs
them) over a private PostgreSQL with fsync on. Each case sends `--requests` calls
from `--concurrency` concurrent callers in this process (grpc.aio for gRPC, aiohttp
for REST), after a warm-up; requests/s is over the whole case, latencies per call.
The client shares the machine's cores with the servers, so the figures are a
comparison of the two paths, not a capacity figure of either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import httpx
from google.protobuf import json_format

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from bench.common import bench_postgres, command_line, machine, percentiles, wire_events
from devstack.errors import DevstackError
from devstack.mesh import GrpcServiceInfo
from devstack.ports import free_port
from devstack.process import ProcessSpec
from devstack.service import ServicePlan, start_service

Call = Callable[[int], Awaitable[object]]


def gateway_plan(folder: Path, audit: GrpcServiceInfo, port: int) -> ServicePlan[GrpcServiceInfo]:
    """`python -m gateway` with its audit listener on `port` in front of `audit`."""
    url = f"http://127.0.0.1:{port}/openapi.json"

    def ready() -> None:
        if httpx.get(url, trust_env=False, timeout=2).status_code != 200:
            raise DevstackError(f"{url} does not answer yet")

    folder.mkdir(parents=True, exist_ok=True)
    spec = ProcessSpec(
        name="gateway",
        argv=(sys.executable, "-m", "gateway"),
        log_path=folder / "gateway.log",
        ready=ready,
        env={
            "GATEWAY_PORTS": f"audit={port},user={free_port()}",
            "GATEWAY_UPSTREAMS": f"audit={audit.url}",
            "GATEWAY_LOG_LEVEL": "WARNING",
        },
    )
    return ServicePlan(spec=spec, info=GrpcServiceInfo("127.0.0.1", port))


async def run_case(call: Call, requests: int, concurrency: int) -> tuple[float, float, float]:
    """requests/s, p50 ms, p99 ms."""
    for i in range(concurrency * 5):  # warm-up: connections, caches, plans
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


async def measure(
    grpc_target: str, rest_port: int, requests: int, concurrency: int, preload: int
) -> list[tuple[str, float, float, float]]:
    events = wire_events(preload + 2 * (requests + concurrency * 5))
    bodies = [json_format.MessageToDict(e, preserving_proto_field_name=True) for e in events]
    rng = random.Random(11)
    base = f"http://127.0.0.1:{rest_port}"
    async with (
        grpc.aio.insecure_channel(grpc_target) as channel,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http,
    ):
        stub = pb_grpc.AuditServiceStub(channel)
        for i in range(0, preload, 1000):
            await stub.IngestBatch(pb.IngestBatchRequest(events=events[i : i + 1000]))
        fresh = iter(range(preload, len(events)))

        async def grpc_query(i: int) -> object:
            return await stub.Query(pb.QueryRequest(user_id=f"user{rng.randrange(1000)}"))

        async def rest_query(i: int) -> object:
            params = {"user_id": f"user{rng.randrange(1000)}"}
            async with http.get(f"{base}/api/v2/events/query", params=params) as response:
                assert response.status == 200, await response.text()
                return json.loads(await response.read())

        async def grpc_ingest(i: int) -> object:
            return await stub.Ingest(pb.IngestRequest(event=events[next(fresh)]))

        async def rest_ingest(i: int) -> object:
            async with http.post(f"{base}/api/v2/events", json=bodies[next(fresh)]) as response:
                assert response.status == 200, await response.text()
                return json.loads(await response.read())

        cases: list[tuple[str, Call]] = [
            ("Query user_id, gRPC", grpc_query),
            ("Query user_id, REST via gateway", rest_query),
            ("Ingest one event, gRPC", grpc_ingest),
            ("Ingest one event, REST via gateway", rest_ingest),
        ]
        return [(name, *await run_case(call, requests, concurrency)) for name, call in cases]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--preload", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        dsn = bench.fresh_database("gateway")
        with (
            bench.audit_service(dsn) as audit,
            start_service(gateway_plan(Path(tmp) / "gateway", audit.info, free_port())) as gw,
        ):
            results = asyncio.run(
                measure(audit.info.url, gw.info.port, args.requests, args.concurrency, args.preload)
            )
    print(f"# {command_line('bench.gateway')}")
    print(
        f"# {machine()}; {args.preload} events preloaded, {args.requests} calls per case, "
        f"{args.concurrency} concurrent callers"
    )
    print(f"{'case':<38} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, rate, p50, p99 in results:
        print(f"{name:<38} {rate:>8.0f} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
