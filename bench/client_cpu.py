"""CPU per event of the audit client: one producer process emitting pre-built events
through an AuditClient to a real audit-service (and Redis for its spool), timed from
the first emit() to the last ack, its process CPU from /proc.

    .venv/bin/python -m bench.client_cpu [--events 30000] [--rounds 2] [--no-record]
    .venv/bin/python -m bench.client_cpu --against /tmp/old-checkout

Two loads: `burst` emits as fast as it can (the client spools to Redis what its memory
cannot hold, and replays it), `paced` waits for acks to stay within 4,000 events ahead
(nothing spooled). With `--against`, the producer of another checkout (its audit_client
first on the PYTHONPATH) runs the same loads in the same run, against this checkout's
audit-service; rounds alternate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import Report, bench_postgres, commit_of, dial
from devstack import start_redis

# The producer: only audit_client and devstack.events, so any checkout can run it.
PRODUCER = """
import asyncio, json, sys, time
from audit_client import AuditClient, ClientSettings
from devstack.events import wire_events

settings, count, load = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

async def main():
    events = wire_events(count)
    for event in events:
        event.ClearField("event_id")  # emit() stamps one, as in a service
    async with AuditClient(ClientSettings(**settings)) as client:
        await asyncio.sleep(0.5)
        cpu, start = time.process_time(), time.perf_counter()
        for i, event in enumerate(events):
            await client.emit(event)
            if load == "paced" and i % 500 == 499:
                while client.stats().acked < i - 4000:
                    await asyncio.sleep(0.005)
        await client.flush()
        while (s := client.stats()).acked + s.dropped < s.emitted:
            await asyncio.sleep(0.005)
        cpu, seconds = time.process_time() - cpu, time.perf_counter() - start
    print(json.dumps({"cpu": cpu, "seconds": seconds, "acked": s.acked,
                      "spooled": s.spooled, "dropped": s.dropped}))

asyncio.run(main())
"""
LOADS = ("burst", "paced")


def produce(checkout: Path, settings: dict[str, object], count: int, load: str) -> dict[str, float]:
    """One producer process of `checkout` (its code first on the path)."""
    env = {**os.environ, "PYTHONPATH": f"{checkout}:{checkout / 'gen'}"}
    out = subprocess.run(
        [sys.executable, "-c", PRODUCER, json.dumps(settings), str(count), load],
        env=env, cwd=checkout, capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--against", type=Path, help="another checkout's client to compare")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    codes = [(f"this checkout ({commit_of(here)})", here)]
    if args.against:
        codes.insert(0, (f"--against ({commit_of(args.against)})", args.against.resolve()))
    rows: list[list[object]] = []
    per_event: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        with start_redis(Path(tmp) / "redis") as redis:
            for r in range(args.rounds):
                for load in LOADS:
                    for code, checkout in codes:
                        dsn = bench.fresh_database(f"client{r}{load}{len(rows)}")
                        with bench.audit_service(dsn) as service:
                            settings = {
                                **dial(service.info).client_settings(),
                                "redis_url": redis.info.url,
                                "spool_key": f"bench:{len(rows)}",
                            }
                            got = produce(checkout, settings, args.events, load)
                        us = got["cpu"] / args.events * 1e6
                        per_event.setdefault((code, load), []).append(us)
                        rows.append([code, load, int(got["acked"]), args.events / got["seconds"],
                                     us, int(got["spooled"]), int(got["dropped"])])  # fmt: skip
    report = Report("client_cpu")
    report.add(
        f"# one producer process, {args.events:,} events per run, each run against a fresh "
        f"audit-service and database of this checkout; {args.rounds} rounds, loads and "
        "checkouts alternating; the machine is shared with other work (compare CPU per "
        "event, within this run)"
    )
    report.table(
        ["client", "load", "acked", "events/s", "client CPU us/event", "spooled", "dropped"], rows
    )
    report.add("# medians of client CPU us/event")
    report.table(
        ["client", *LOADS],
        [
            [code, *(statistics.median(per_event[(code, load)]) for load in LOADS)]
            for code, _ in codes
        ],  # fmt: skip
    )
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
