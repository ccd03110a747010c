"""bench.tls: what mutual TLS and authorization cost, on vs off in one run.

Ingest: 4 audit_client producer processes -> StreamIngest, as bench.ingest runs it,
with the audit-service on mutual TLS and the writer policy (`make up`'s setting) and
then plaintext (AUDIT_TLS=plaintext, dev mode's anonymous writer), alternated twice
each. Query: the same sequential calls as bench.query over a 100,000-event table,
with the caller identified and each read recorded as an `audit.read` event, TLS on
and off. Target: TLS costs at most 15% of ingest throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench.common import Report, dial
from bench.ingest import machinery, ours
from bench.query import load, measure

TARGET_COST = 0.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="per ingest run")
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=100_000, help="query table size")
    parser.add_argument("--calls", type=int, default=100, help="per query case")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    rates: dict[bool, list[float]] = {True: [], False: []}
    queries: dict[bool, list[tuple[str, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, machinery(Path(tmp)) as (bench, pg, redis):
        for tls in (True, False, True, False):
            run = ours(bench, pg, args.producers, args.events, redis, tls=tls)
            rates[tls].append(run.rate)
        dsn = bench.fresh_database("tls_query")
        asyncio.run(load(dsn, args.rows))
        for tls in (True, False):
            with bench.audit_service(dsn, tls=tls) as service:
                target = dial(service.info, "operator", tls=tls)
                queries[tls] = asyncio.run(measure(target, args.calls, args.rows))

    on, off = max(rates[True]), max(rates[False])
    cost = 1 - on / off
    report = Report("tls")
    report.add(f"# ingest: {args.events:,} events, {args.producers} producers, best of 2 "
               f"alternated runs each; query: {args.rows:,} events, {args.calls} calls per "
               "case")  # fmt: skip
    report.table(
        ["ingest", "events/s (best)", "runs"],
        [[name, f"{max(rates[t]):,.0f}", ", ".join(f"{r:,.0f}" for r in rates[t])]
         for name, t in (("mutual TLS + writer policy", True), ("plaintext", False))],
    )  # fmt: skip
    report.add()
    off_by_case = {name: (p50, p99) for name, p50, p99 in queries[False]}
    report.table(
        ["call", "TLS p50 ms", "TLS p99 ms", "plaintext p50 ms", "plaintext p99 ms"],
        [[name, f"{p50:.2f}", f"{p99:.2f}", f"{off_by_case[name][0]:.2f}",
          f"{off_by_case[name][1]:.2f}"] for name, p50, p99 in queries[True]],
    )  # fmt: skip
    report.add()
    verdict = "PASS" if cost <= TARGET_COST else "MISS"
    report.add(f"target: TLS costs <= {TARGET_COST:.0%} of ingest throughput: "
               f"{cost:.1%} {verdict}")  # fmt: skip
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
