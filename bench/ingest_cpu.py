"""CPU per event of the write path: the audit-service and PostgreSQL, fed StreamIngest
batches serialized in advance by a client that only sends bytes.

    .venv/bin/python -m bench.ingest_cpu [--events 60000] [--streams 4] [--no-record]
    .venv/bin/python -m bench.ingest_cpu --against ../old-checkout [--rounds 3]

CPU seconds (from /proc) per event are steadier than events/s on a shared machine:
they say what each event costs, not how much of the machine the run got. `--against`
compares with the audit-service of another checkout (e.g. `git worktree add --detach
/tmp/old <commit>`) in the same run: rounds alternate between the two, each in a fresh
database migrated by this checkout, the old service's code put first on its PYTHONPATH.
Events carry an event time, as the audit client stamps one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from audit.v2 import audit_service_pb2 as pb
from bench.common import Bench, Dial, Report, bench_postgres, commit_of, count_events, dial
from bench.procstat import cpu_seconds, postmaster_pid, tree_cpu_seconds
from devstack.events import wire_events

BATCH = 500


def requests(count: int) -> list[bytes]:
    events = wire_events(count)
    for event in events:
        event.event_time.GetCurrentTime()
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


@dataclass
class Round:
    code: str
    stored: int
    seconds: float
    server_cpu: float
    pg_cpu: float


def one_round(bench: Bench, pg_folder: Path, code: str, checkout: Path | None, n: int,
              batches: list[bytes], streams: int) -> Round:  # fmt: skip
    """One load through the audit-service of `checkout` (None: this one)."""
    dsn = bench.fresh_database(f"ingestcpu{n}")
    env = {"PYTHONPATH": f"{checkout}:{checkout / 'gen'}"} if checkout else None
    with bench.audit_service(dsn, env) as service:
        server, postgres = service.process.pid, postmaster_pid(pg_folder)
        s0, p0, t0 = cpu_seconds(server), tree_cpu_seconds(postgres), time.perf_counter()
        asyncio.run(send(dial(service.info), batches, streams))
        s1, p1, t1 = cpu_seconds(server), tree_cpu_seconds(postgres), time.perf_counter()
    stored = asyncio.run(count_events(dsn))
    return Round(code, stored, t1 - t0, s1 - s0, p1 - p0)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=0, help="per checkout (default 1, 3)")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.against else 1)
    here = Path(__file__).resolve().parent.parent
    codes: list[tuple[str, Path | None]] = [(f"this checkout ({commit_of(here)})", None)]
    if args.against:
        codes.insert(0, (f"--against ({commit_of(args.against)})", args.against.resolve()))
    batches = requests(args.events)
    runs: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        for _ in range(rounds):
            for code, checkout in codes:
                n = len(runs)
                runs.append(one_round(bench, Path(tmp) / "pg", code, checkout, n, batches,
                                      args.streams))  # fmt: skip
    report = Report("ingest_cpu")
    report.add(
        f"# {args.events:,} events in batches of {BATCH} over {args.streams} streams, each "
        f"run in a fresh database; {rounds} round(s), the checkouts alternating; the "
        "machine is shared with other work (compare CPU per event, within this run)"
    )
    report.table(
        ["code", "committed", "events/s", "audit-service CPU us/event", "PostgreSQL us/event"],
        [
            [
                r.code,
                r.stored,
                r.stored / r.seconds,
                r.server_cpu / r.stored * 1e6,
                r.pg_cpu / r.stored * 1e6,
            ]
            for r in runs
        ],  # fmt: skip
    )
    if len(codes) > 1 or rounds > 1:
        report.add("# medians")
        report.table(
            ["code", "audit-service CPU us/event", "PostgreSQL us/event", "events/s"],
            [
                [
                    code,
                    statistics.median(r.server_cpu / r.stored * 1e6 for r in mine),
                    statistics.median(r.pg_cpu / r.stored * 1e6 for r in mine),
                    statistics.median(r.stored / r.seconds for r in mine),
                ]
                for code, _ in codes
                if (mine := [r for r in runs if r.code == code])
            ],
        )
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
