"""The InfluxDB sink against a real VictoriaMetrics: counts read back equal
PostgreSQL's, and a sink that was down catches up from its cursor without slowing
ingest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.settings import Settings
from devstack import InfluxInfo, start_influx
from tests.audit_svc.sinkkit import (
    cursor_at_head,
    eventually,
    influx_counts,
    ingest,
    pg_counts,
    sink_settings,
)
from tests.testkit import tls


async def serve(settings: Settings) -> AsyncIterator[tuple[AuditApp, pb_grpc.AuditServiceStub]]:
    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
    ):
        yield app, pb_grpc.AuditServiceStub(channel)


async def test_counts_in_influxdb_equal_postgresql_after_20000_events(
    audit_db: str, influx: InfluxInfo, db: asyncpg.Connection, tmp_path: Path
) -> None:
    settings = sink_settings(audit_db, tmp_path, influx=influx)
    async for app, stub in serve(settings):
        await ingest(stub, 20_000)
        await eventually(lambda: cursor_at_head(db, "influx", settings.chain_id))
        health = await stub.Health(pb.HealthRequest())
        assert [(s.name, s.lag_events) for s in health.sinks] == [("influx", 0)]
        expected = await pg_counts(db, settings.chain_id)
        assert sum(expected.values()) == 20_000
        assert influx_counts(influx, settings.chain_id) == expected
        # A crash between a write and its cursor update replays those seqs: the
        # windows are rewritten with their full counts, so nothing is counted twice.
        await db.execute(
            "UPDATE sink_cursors SET last_seq = last_seq - 7000 WHERE chain_id = $1",
            settings.chain_id,
        )
        assert app.sinks is not None and app.sinks.runners["influx"] is not None
        app.sinks.nudge()
        await eventually(lambda: cursor_at_head(db, "influx", settings.chain_id))
        assert app.sinks.influx is not None
        points = app.sinks.influx.points_written
    assert influx_counts(influx, settings.chain_id) == expected
    assert points < 20_000 / 10  # aggregated per window: far fewer points than events
    print(f"\n20000 events became {points} points (windows x tags, rewrites included)")


async def test_a_stopped_influxdb_catches_up_and_ingest_does_not_stall(
    audit_db: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    data = tmp_path / "vm"
    server = start_influx(data)
    info = server.info
    settings = sink_settings(audit_db, tmp_path, influx=info)
    try:
        async for _app, stub in serve(settings):
            up = await ingest(stub, 5000)
            server.stop()
            down = await ingest(stub, 5000)  # the sink fails and retries meanwhile
            health = await stub.Health(pb.HealthRequest())
            (sink,) = health.sinks
            assert sink.name == "influx" and sink.lag_events > 0
            server = start_influx(data, info.port)
            after = await ingest(stub, 2000)
            await eventually(lambda: cursor_at_head(db, "influx", settings.chain_id))
        expected = await pg_counts(db, settings.chain_id)
        assert sum(expected.values()) == 12_000
        assert influx_counts(info, settings.chain_id) == expected
    finally:
        server.stop()
    print(
        f"\ningest of 5000 events: {up:.2f} s with InfluxDB up, {down:.2f} s with it down;"
        f" 2000 more after restart {after:.2f} s"
    )
