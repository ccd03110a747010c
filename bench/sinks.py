"""StreamIngest with the audit-service's sinks off and on, in one run, and each sink's lag
sampled through Health under that load.

    .venv/bin/python -m bench.sinks [--events 100000] [--streams 8] [--no-record]

Sinks on: the InfluxDB sink on VictoriaMetrics, signed checkpoints on SeaweedFS, and the
archive schedule. Each case writes into its own fresh database; the audit-service runs
as its own process; events/s counts rows committed (a count afterwards), from the first
send to the last ack over `--streams` concurrent StreamIngest calls (raw gRPC, batches
of 500).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from bench.common import Bench, Dial, Report, bench_postgres, count_events, dial
from devstack import start_influx, start_s3
from devstack.events import wire_events

BATCH = 500


@contextmanager
def sink_servers(folder: Path) -> Iterator[dict[str, str]]:
    """Start VictoriaMetrics and SeaweedFS; yield the AUDIT_* settings that turn every
    sink on (InfluxDB, checkpoints every 10,000 events or 5 s; the archive schedule
    runs but finds nothing older than the retention)."""
    with ExitStack() as stack:
        influx = stack.enter_context(start_influx(folder / "influx")).info
        s3 = stack.enter_context(start_s3(folder / "s3")).info
        yield {
            "AUDIT_INFLUX_URL": influx.url,
            "AUDIT_INFLUX_ORG": influx.org,
            "AUDIT_INFLUX_BUCKET": influx.bucket,
            "AUDIT_INFLUX_TOKEN": influx.token,
            "AUDIT_S3_ENDPOINT": s3.endpoint,
            "AUDIT_S3_ACCESS_KEY": s3.access_key,
            "AUDIT_S3_SECRET_KEY": s3.secret_key,
            "AUDIT_OBJECT_LOCK_DAYS": "1",
            "AUDIT_CHECKPOINT_INTERVAL_SECONDS": "5",
            "AUDIT_ARCHIVE_INTERVAL_SECONDS": "60",
            "AUDIT_SIGNING_KEY_FILE": str(folder / "signing-key.pem"),
        }


@dataclass
class LagSamples:
    """The largest lag of each sink seen while sampling, and the time to drain after."""

    events: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    appender_seconds: float = 0.0
    drain_seconds: float = 0.0

    def add(self, health: pb.HealthResponse) -> None:
        appender = health.appender_lag.ToTimedelta().total_seconds()
        self.appender_seconds = max(self.appender_seconds, appender)
        for sink in health.sinks:
            self.events[sink.name] = max(self.events.get(sink.name, 0), sink.lag_events)
            lag = sink.lag.ToTimedelta().total_seconds()
            self.seconds[sink.name] = max(self.seconds.get(sink.name, 0.0), lag)


async def sample_lag(target: Dial, stop: asyncio.Event, every: float = 0.25) -> LagSamples:
    """Sample Health until `stop`, then wait for the InfluxDB sink to reach the head."""
    samples = LagSamples()
    async with target.channel() as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        while not stop.is_set():
            samples.add(await stub.Health(pb.HealthRequest()))
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
        start = time.perf_counter()
        while True:
            health = await stub.Health(pb.HealthRequest())
            if all(s.lag_events == 0 for s in health.sinks if s.name == "influx"):
                break
            await asyncio.sleep(0.05)
        samples.drain_seconds = time.perf_counter() - start
    return samples


async def stream_ingest(target: Dial, events: list[event_pb2.AuditEvent], streams: int) -> float:
    """Seconds to send `events` over `streams` concurrent StreamIngest calls."""
    chunks = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    per_stream = [chunks[i::streams] for i in range(streams)]

    async def one(mine: list[list[event_pb2.AuditEvent]], n: int) -> None:
        async with target.channel() as channel:
            requests = (
                pb.StreamIngestRequest(batch_id=f"{n}-{i}", events=c) for i, c in enumerate(mine)
            )
            async for _ack in pb_grpc.AuditServiceStub(channel).StreamIngest(requests):
                pass

    start = time.perf_counter()
    await asyncio.gather(*(one(mine, n) for n, mine in enumerate(per_stream)))
    return time.perf_counter() - start


async def ingest_with_lag(
    target: Dial, events: list[event_pb2.AuditEvent], streams: int
) -> tuple[float, LagSamples]:
    """`stream_ingest` while sampling the sinks' lag."""
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_lag(target, stop))
    try:
        seconds = await stream_ingest(target, events, streams)
    finally:
        stop.set()
    return seconds, await sampler


def run(bench: Bench, count: int, streams: int) -> tuple[list[tuple[str, int, float]], LagSamples]:
    events = wire_events(count)
    dsn = bench.fresh_database("sinks_off")
    with bench.audit_service(dsn) as service:
        seconds = asyncio.run(stream_ingest(dial(service.info), events, streams))
    results = [("sinks off", asyncio.run(count_events(dsn)), seconds)]
    dsn = bench.fresh_database("sinks_on")
    with sink_servers(bench.folder / "sinks") as env, bench.audit_service(dsn, env) as service:
        seconds, lag = asyncio.run(ingest_with_lag(dial(service.info), events, streams))
    results.append(("sinks on", asyncio.run(count_events(dsn)), seconds))
    return results, lag


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--no-record", action="store_true", help="print only (dev runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        results, lag = run(bench, args.events, args.streams)
    out = Report("sinks")
    out.add(f"# {args.events:,} events over {args.streams} StreamIngest streams, fsync on")
    out.table(
        ["case", "committed", "seconds", "events/s"],
        [[name, rows, seconds, rows / seconds] for name, rows, seconds in results],
    )
    out.add("# sinks on, largest lag seen in Health during the run:")
    for sink, events in sorted(lag.events.items()):
        out.add(f"#   {sink:<12} {events:>8} events {lag.seconds[sink]:>7.2f} s")
    out.add(f"#   (appender queue, for comparison: {lag.appender_seconds:.2f} s)")
    out.add(f"#   InfluxDB sink reached the head {lag.drain_seconds:.2f} s after the last ack")
    out.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
