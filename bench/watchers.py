"""bench.watchers: what idle live tails (Watch streams) cost ingest, in one run.

The audit-service as a child process (mutual TLS, `make up`'s settings, sinks off);
W Watch streams are opened as the operator and never read (idle: connected, HTTP/2
flow control stops their data), either with a filter no event matches or with none
(every event offered to each); then 4 concurrent IngestBatch callers (500 events a
batch) write E events. Reported: events/s, and the service's resident memory before,
after the run and at its peak. The watcher caps are raised to W for the run, so the
cost of W admitted streams is what is measured. `--against` runs each case with the
audit-service of another checkout too (e.g. `git worktree add --detach /tmp/old
<commit>`), alternating, in fresh databases migrated by this checkout, the other
checkout's code first on the service's PYTHONPATH (as bench.ingest_cpu does).

    .venv/bin/python -m bench.watchers [--events 20000] [--watchers 1000]
        [--against ../old-checkout] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from pathlib import Path

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from bench.common import Dial, Report, bench_postgres, commit_of, dial
from bench.procstat import peak_rss_mb
from devstack.events import wire_events

PER_CHANNEL = 100
# The watchers' filter in each case: none (every event offered), or one no event matches.
FILTERS: dict[str, dict[str, str]] = {
    "-": {},
    "none (all events)": {},
    "user_id=nobody": {"user_id": "nobody"},
    "service=nobody": {"service": "nobody"},
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise LookupError(pid)


async def run(writer: Dial, reader: Dial, events: int, watchers: int, where: str) -> float:
    channels = [reader.channel() for _ in range(max(1, -(-watchers // PER_CHANNEL)))]
    calls = []
    request = pb.WatchRequest(**FILTERS[where])
    for i in range(watchers):
        calls.append(pb_grpc.AuditServiceStub(channels[i // PER_CHANNEL]).Watch(request))
    await asyncio.sleep(2 + watchers / 500)  # let every stream open (or be refused)
    batches = [wire_events(500) for _ in range(events // 500)]
    async with writer.channel() as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        queue = list(batches)

        async def write() -> None:
            while queue:
                await stub.IngestBatch(pb.IngestBatchRequest(events=queue.pop()))

        start = time.perf_counter()
        await asyncio.gather(*(write() for _ in range(4)))
        seconds = time.perf_counter() - start
    for c in calls:
        c.cancel()
    for ch in channels:
        await ch.close()
    await asyncio.sleep(0.5)  # let grpc finish the cancelled calls inside the loop
    return events / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    codes: list[tuple[str, dict[str, str]]] = [(f"this checkout ({commit_of(here)})", {})]
    if args.against:
        old = args.against.resolve()
        env = {"PYTHONPATH": f"{old}:{old / 'gen'}"}
        codes.insert(0, (f"--against ({commit_of(old)})", env))
    caps = {
        "AUDIT_WATCH_MAX_TOTAL": str(args.watchers),
        "AUDIT_WATCH_MAX_PER_CALLER": str(args.watchers),
    }
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        cases = [(0, "-")] + [(args.watchers, w) for w in list(FILTERS)[1:]]
        for n, ((watchers, where), (code, env)) in enumerate(itertools.product(cases, codes)):
            dsn = bench.fresh_database(f"watchers_{n}")
            with bench.audit_service(dsn, {**caps, **env}) as service:
                pid = service.process.pid
                base = rss_mb(pid)
                got = asyncio.run(
                    run(dial(service.info), dial(service.info, "operator"), args.events,
                        watchers, where)
                )  # fmt: skip
                rows.append([f"{watchers} watchers, filter {where}", code, f"{got:,.0f}",
                             f"{base:.0f}", f"{rss_mb(pid):.0f}",
                             f"{peak_rss_mb(pid):.0f}"])  # fmt: skip
    report = Report("watchers")
    report.add(f"# {args.events:,} events by 4 IngestBatch callers (500 a batch) per case, "
               "each in a fresh database; idle watchers never read; other work shared the "
               "machine")  # fmt: skip
    report.table(["case", "code", "events/s", "RSS before MB", "RSS after MB", "peak MB"], rows)
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
