"""The sinks' part of bench.ingest: VictoriaMetrics and SeaweedFS for the audit-service's
InfluxDB sink and checkpoints, and the sink lag sampled through Health under load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from devstack import start_influx, start_s3


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


async def sample_lag(target: str, stop: asyncio.Event, every: float = 0.25) -> LagSamples:
    """Sample Health until `stop`, then wait for the InfluxDB sink to reach the head."""
    samples = LagSamples()
    async with grpc.aio.insecure_channel(target) as channel:
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
