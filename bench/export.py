"""Export and forwarder throughput, streamed from PostgreSQL, in one run.

    .venv/bin/python -m bench.export [--events 200000] [--no-record]

One fresh database is filled through StreamIngest (the audit-service as its own
process, fsync on). Then, over the same rows:

- export in each format in this process (`audit_svc.read.export`, what
  `python -m audit_svc export-events` runs): rows from one server-side cursor, the
  reader's row -> event conversion, the format, chunks counted and dropped; events/s,
  MB/s and the CPU seconds of this process and of PostgreSQL (events per CPU second
  is the figure a shared machine does not blur); ndjson and ocsf once more with the
  standard library's json encoder instead of orjson (before / after);
- ExportEvents over gRPC from the service process (ndjson, ocsf): what the gateway
  relays to REST callers, measured at the client;
- the forwarders: the service restarted with the syslog and webhook forwarders on,
  their cursors at 0, each to a receiver in this process (a TCP syslog listener
  counting octet-counted frames; an aiohttp receiver taking signed batches); events/s
  from the service being ready to the receiver holding every event.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.formats.flat import ndjson_doc
from audit_svc.formats.ocsf import ocsf_doc
from audit_svc.model import StoredEvent
from audit_svc.read.export import new_export
from audit_svc.read.filters import QueryFilters
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.postgres import create_pool
from bench.common import Bench, Report, bench_postgres, count_events, dial
from bench.procstat import postmaster_pid, tree_cpu_seconds
from bench.sinks import stream_ingest
from devstack.events import wire_events
from devstack.ports import free_port

FORMATS = ("ndjson", "ocsf", "ecs", "cef", "csv")
SECRET = "bench-webhook-secret"


def stdlib_json(doc: Callable[[StoredEvent], dict[str, Any]]) -> Callable[[StoredEvent], bytes]:
    """A line encoder with the standard library's json (the "before" of orjson)."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return lambda s: encode(doc(s)).encode()


BEFORE = {"ndjson (json)": ("ndjson", ndjson_doc), "ocsf (json)": ("ocsf", ocsf_doc)}


async def export_in_process(
    dsn: str, case: str, pg_pid: int
) -> tuple[int, int, float, float, float]:
    """(events, bytes, seconds, CPU seconds of this process, of PostgreSQL)."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        fmt, doc = BEFORE.get(case, (case, None))
        export = new_export(PgEventReader(pool), QueryFilters(), fmt, b"k" * 32)
        if doc is not None:
            export.format = dataclasses.replace(export.format, line=stdlib_json(doc))
        size = 0
        cpu, pg_cpu, start = time.process_time(), tree_cpu_seconds(pg_pid), time.perf_counter()
        async for chunk in export.chunks():
            size += len(chunk)
        seconds = time.perf_counter() - start
        return (export.count, size, seconds, time.process_time() - cpu,
                tree_cpu_seconds(pg_pid) - pg_cpu)  # fmt: skip
    finally:
        await pool.close()


async def export_over_grpc(bench: Bench, dsn: str, fmt: str) -> tuple[int, int, float]:
    """(lines, bytes, seconds) of ExportEvents read by a gRPC client."""
    with bench.audit_service(dsn) as service:
        async with dial(service.info, "operator").channel() as channel:
            stub = pb_grpc.AuditServiceStub(channel)
            size = lines = 0
            start = time.perf_counter()
            async for body in stub.ExportEvents(pb.ExportEventsRequest(format=fmt)):
                size += len(body.data)
                lines += body.data.count(b"\n")
            return lines, size, time.perf_counter() - start


class Counted:
    """How many events a receiver holds, and an event set when it reaches `want`."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.count = 0
        self.done = asyncio.Event()

    def add(self, n: int) -> None:
        self.count += n
        if self.count >= self.want:
            self.done.set()


async def syslog_receiver(counted: Counted, port: int) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        try:
            while data := await reader.read(1 << 20):
                buffer += data
                n = 0
                while b" " in buffer[:12]:
                    length, _, rest = buffer.partition(b" ")
                    if len(rest) < int(length):
                        break
                    buffer, n = rest[int(length) :], n + 1
                counted.add(n)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the service stopping, or the bench ending with the connection open
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", port)


async def webhook_receiver(counted: Counted, port: int) -> web.AppRunner:
    async def hook(request: web.Request) -> web.Response:
        counted.add((await request.read()).count(b"\n"))
        return web.Response(status=204)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def forward(bench: Bench, dsn: str, count: int, sink: str) -> tuple[int, float]:
    """(events received, seconds from the receiver starting to the last event). The
    service starts first with the forwarder on (failing to connect, retrying every
    0.2 s), so the time counts at most that much waiting."""
    port = free_port()
    env = {"AUDIT_SINK_RETRY_MAX_SECONDS": "0.2"}
    if sink == "syslog":
        env |= {"AUDIT_SYSLOG_TARGET": f"127.0.0.1:{port}", "AUDIT_SYSLOG_TLS": "false"}
    else:
        env |= {"AUDIT_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
                "AUDIT_WEBHOOK_SECRET": SECRET}  # fmt: skip
    with bench.audit_service(dsn, env):
        return asyncio.run(receive(sink, port, count))


async def receive(sink: str, port: int, count: int) -> tuple[int, float]:
    counted = Counted(count)
    start = time.perf_counter()
    if sink == "syslog":
        server = await syslog_receiver(counted, port)
        try:
            await asyncio.wait_for(counted.done.wait(), timeout=600)
        finally:
            server.close()
    else:
        runner = await webhook_receiver(counted, port)
        try:
            await asyncio.wait_for(counted.done.wait(), timeout=600)
        finally:
            await runner.cleanup()
    return counted.count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--no-record", action="store_true", help="print only (dev runs)")
    args = parser.parse_args()
    out = Report("export")
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        pg_pid = postmaster_pid(Path(tmp) / "pg")
        dsn = bench.fresh_database("export")
        with bench.audit_service(dsn) as service:
            asyncio.run(stream_ingest(dial(service.info), wire_events(args.events), 4))
        stored = asyncio.run(count_events(dsn))
        out.add(f"# {stored:,} events stored, exported whole (no filter), oldest first")
        out.add("# in process (as export-events runs), one server-side cursor, 2,000 rows a fetch:")
        rows = []
        for case in (*FORMATS, *BEFORE):
            n, size, seconds, cpu, pg_cpu = asyncio.run(export_in_process(dsn, case, pg_pid))
            rows.append([case, n, seconds, n / seconds, size / seconds / 1e6, cpu, pg_cpu,
                         n / cpu])  # fmt: skip
        out.table(
            ["format", "events", "seconds", "events/s", "MB/s", "cpu s", "pg cpu s",
             "events/cpu s"], rows,
        )  # fmt: skip
        out.add("# ExportEvents over gRPC (mutual TLS) from the service process:")
        rows = []
        for fmt in ("ndjson", "ocsf"):
            n, size, seconds = asyncio.run(export_over_grpc(bench, dsn, fmt))
            rows.append([fmt, n, seconds, n / seconds, size / seconds / 1e6])
        out.table(["format", "events", "seconds", "events/s", "MB/s"], rows)
        out.add(
            "# forwarders from cursor 0 to a receiver in this process (TCP syslog, plain HTTP):"
        )
        rows = []
        for sink in ("syslog", "webhook"):
            n, seconds = forward(bench, dsn, stored, sink)
            rows.append([sink, n, seconds, n / seconds])
        out.table(["forwarder", "received", "seconds", "events/s"], rows)
    out.add("# other engineers' work shared this 2-core machine during the run")
    out.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
