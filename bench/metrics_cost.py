"""What Prometheus metrics cost the write path: the same StreamIngest load with the
audit-service's /metrics off and on (scraped every second), in one run.

    .venv/bin/python -m bench.metrics_cost [--events 60000] [--streams 4] [--rounds 3] [--no-record]

Rounds go off, on, on, off, off, on... (ABBA) over fresh databases, so drift of a
shared machine and the order of runs hit both alike; the table gives the median of
each. The issue's budget: at most 5% of throughput (we compare CPU per event, the
steadier figure, and events/s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Report, bench_postgres, count_events, dial
from bench.ingest_cpu import requests, send
from bench.procstat import cpu_seconds
from devstack import free_port

SCRAPE_SECONDS = 1.0


# A scraper in its own process, as Prometheus is: in the load generator's process it
# would take the generator's GIL and change the load, not the server's cost.
SCRAPER = """
import sys, time, urllib.request
while True:
    time.sleep(float(sys.argv[2]))
    urllib.request.urlopen(sys.argv[1], timeout=5).read()
"""


def _scraper(port: int) -> subprocess.Popen[bytes]:
    """Scrape /metrics every SCRAPE_SECONDS until killed."""
    url = f"http://127.0.0.1:{port}/metrics"
    return subprocess.Popen([sys.executable, "-c", SCRAPER, url, str(SCRAPE_SECONDS)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    rounds: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        for i in range(args.rounds * 2):
            on = i % 4 in (1, 2)
            batches = requests(args.events)
            dsn = bench.fresh_database(f"metrics{i}")
            port = free_port()
            env = {"AUDIT_METRICS_LISTEN": f"127.0.0.1:{port}"} if on else {}
            with bench.audit_service(dsn, env) as service:
                scraper = _scraper(port) if on else None
                c0, t0 = cpu_seconds(service.process.pid), time.perf_counter()
                asyncio.run(send(dial(service.info), batches, args.streams))
                c1, t1 = cpu_seconds(service.process.pid), time.perf_counter()
                if scraper is not None:
                    scraper.kill()
                    scraper.wait()
            stored = asyncio.run(count_events(dsn))
            runs[on].append(((c1 - c0) / stored * 1e6, stored / (t1 - t0)))
            rounds.append([str(i + 1), "on" if on else "off", *runs[on][-1]])
    cpu = {on: statistics.median(r[0] for r in runs[on]) for on in runs}
    rate = {on: statistics.median(r[1] for r in runs[on]) for on in runs}
    report = Report("metrics_cost")
    report.add(
        f"# {args.events:,} events per round over {args.streams} streams, "
        f"{args.rounds} rounds each; medians; /metrics scraped every {SCRAPE_SECONDS:g} s when on"
    )
    report.table(
        ["what", "metrics off", "metrics on", "cost"],
        [
            ["audit-service CPU us/event", cpu[False], cpu[True], _pct(cpu[True], cpu[False])],
            ["events/s", rate[False], rate[True], _pct(rate[False], rate[True])],
        ],
    )
    report.add()
    report.table(["round", "metrics", "CPU us/event", "events/s"], rounds)
    report.publish(record=not args.no_record)


def _pct(more: float, less: float) -> str:
    return f"{(more - less) / less * 100:+.1f}%"


if __name__ == "__main__":
    main()
