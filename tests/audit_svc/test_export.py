"""ExportEvents over gRPC and `python -m audit_svc export-events`: the reader role is
needed, the export is recorded as one `audit.read`, and the CLI writes the same
formats to a file (gzip on request) and names a bad flag."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from devstack.events import wire_events
from tests.audit_svc.test_readers import audit_reads
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields
from tests.testkit.siem import check_ocsf


@pytest.fixture
async def audited(audit_db: str) -> AsyncIterator[AuditApp]:
    settings = tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0", read_audit=True)
    async with AuditApp(settings) as app:
        yield app


async def test_export_needs_the_reader_role_and_is_recorded(
    audited: AuditApp, db: asyncpg.Connection
) -> None:
    async with tls.channel(f"127.0.0.1:{audited.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        await stub.IngestBatch(pb.IngestBatchRequest(events=wire_events(300)))
        chunks = [c async for c in stub.ExportEvents(pb.ExportEventsRequest(format="ocsf"))]
        bad = stub.ExportEvents(pb.ExportEventsRequest(format="yaml"))
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await bad.read()
    assert {c.content_type for c in chunks} == {"application/x-ndjson; charset=utf-8"}
    docs = [json.loads(line) for line in b"".join(c.data for c in chunks).splitlines()]
    assert len(docs) == 300
    for doc in docs[::7]:
        check_ocsf(doc)
    # Messages stay small (64 KiB and one line), far below gRPC's 4 MB limit.
    assert len(chunks) > 3 and max(len(c.data) for c in chunks) < 80_000
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_fields(invalid.value) == ("INVALID_ARGUMENT", ["format"])

    async with tls.channel(f"127.0.0.1:{audited.port}", "billing-service") as channel:
        denied = pb_grpc.AuditServiceStub(channel).ExportEvents(pb.ExportEventsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await denied.read()
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_fields(refused.value)[0] == "MISSING_ROLE"

    assert audited.read_audit is not None
    await audited.read_audit.flush()
    rows = [r for r in await audit_reads(db, 1) if r["action"] == "ExportEvents"]
    assert len(rows) == 1
    assert rows[0]["details"]["filters"] == {"format": "ocsf"}
    assert rows[0]["details"]["results"] == 300


async def test_cli_writes_each_format_and_names_a_bad_flag(
    app: AuditApp, audit_db: str, tmp_path: Path
) -> None:
    async with tls.channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        await stub.IngestBatch(pb.IngestBatchRequest(events=wire_events(50)))

    async def cli(*args: str) -> tuple[int, bytes, bytes]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "audit_svc", "export-events", *args,
            env=os.environ | {"AUDIT_DATABASE_URL": audit_db,
                              "AUDIT_PRIVACY_KEY_FILE": app.settings.privacy_key_file},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        return await process.wait(), out, err

    code, out, _ = await cli("--format", "csv", "--event-type", "auth.*")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out.decode())))
    assert rows[0][0] == "format" and len(rows) > 1
    assert all(r[4].startswith("auth.") for r in rows[1:])

    target = tmp_path / "events.cef.gz"
    code, _, err = await cli("--format", "cef", "--gzip", "--out", str(target))
    assert code == 0 and b"50 events" in err
    lines = gzip.decompress(target.read_bytes()).decode().splitlines()
    assert len(lines) == 50 and all(x.startswith("CEF:0|auditmesh|") for x in lines)

    code, _, err = await cli("--format", "xml")
    assert code == 2 and b"--format" in err
    code, _, err = await cli("--start-time", "yesterday")
    assert code == 2 and b"--start-time" in err
