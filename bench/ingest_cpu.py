"""CPU per event of the write path: the audit-service and PostgreSQL, fed StreamIngest
batches serialized in advance by a client that only sends bytes.

    .venv/bin/python -m bench.ingest_cpu [--events 60000] [--streams 4] [--no-record]

CPU seconds (from /proc) per event are steadier than events/s on a shared machine:
they say what each event costs, not how much of the machine the run got. To compare
two versions, run the same command in a checkout of each (e.g. `git worktree add`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from audit.v2 import audit_service_pb2 as pb
from bench.common import Dial, Report, bench_postgres, count_events, dial
from bench.procstat import cpu_seconds, postmaster_pid, tree_cpu_seconds
from devstack.events import wire_events

BATCH = 500


def requests(count: int) -> list[bytes]:
    events = wire_events(count)
    return [
        pb.StreamIngestRequest(batch_id=str(i), events=events[i : i + BATCH]).SerializeToString()
        for i in range(0, count, BATCH)
    ]


async def send(target: Dial, batches: list[bytes], streams: int) -> None:
    async def one(mine: list[bytes]) -> None:
        async with target.channel() as channel:
            call = channel.stream_stream("/audit.v2.AuditService/StreamIngest")
            async for _ack in call(iter(mine)):
                pass

    await asyncio.gather(*(one(batches[i::streams]) for i in range(streams)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    batches = requests(args.events)
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        dsn = bench.fresh_database("ingestcpu")
        with bench.audit_service(dsn) as service:
            server, postgres = service.process.pid, postmaster_pid(Path(tmp) / "pg")
            s0, p0, t0 = cpu_seconds(server), tree_cpu_seconds(postgres), time.perf_counter()
            asyncio.run(send(dial(service.info), batches, args.streams))
            s1, p1, t1 = cpu_seconds(server), tree_cpu_seconds(postgres), time.perf_counter()
        stored = asyncio.run(count_events(dsn))
    report = Report("ingest_cpu")
    report.add(f"# {args.events:,} events in batches of {BATCH} over {args.streams} streams")
    report.table(
        ["what", "value"],
        [
            ["events committed", stored],
            ["events/s (this run)", stored / (t1 - t0)],
            ["audit-service CPU us/event", (s1 - s0) / stored * 1e6],
            ["PostgreSQL CPU us/event (all backends)", (p1 - p0) / stored * 1e6],
        ],
    )
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
