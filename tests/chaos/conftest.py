"""The chaos suite's servers and its record: each scenario adds one row (what was
taken, stored, reported lost, lost without a trace), and the session ends by printing
the durability table (`make chaos` runs it larger, CHAOS_EVENTS)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.ops.migrate import upgrade
from devstack import PostgresInfo, start_postgres
from tests.audit_client.conftest import (  # noqa: F401  (fixtures shared with the client's tests)
    audit_process,
    client_settings,
    db,
    own_durable_redis,
    own_everysec_redis,
    own_redis,
    spool_key,
)
from tests.audit_client.support import OwnServer
from tests.testkit import tls

EVENTS = int(os.environ.get("CHAOS_EVENTS", "2000"))


@dataclass(frozen=True)
class Row:
    """One failure, as a real run measured it."""

    failure: str
    taken: int
    stored: int
    reported_lost: int
    duplicates: int
    chain_ok: bool
    promise: str

    @property
    def silent_lost(self) -> int:
        return self.taken - self.stored - self.reported_lost


ROWS: list[Row] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    write = terminalreporter.write_line
    write("")
    write(f"Durability per failure ({EVENTS} events per scenario; tests/chaos):")
    write("")
    header = ("failure", "taken", "stored", "lost, reported", "lost, silent", "duplicates")
    write("| " + " | ".join((*header, "chain", "promise")) + " |")
    write("|---|---|---|---|---|---|---|---|")
    for r in ROWS:
        chain = "verifies" if r.chain_ok else "BROKEN"
        write(
            f"| {r.failure} | {r.taken} | {r.stored} | {r.reported_lost} | {r.silent_lost}"
            f" | {r.duplicates} | {chain} | {r.promise} |"
        )


async def record(
    failure: str,
    conn: asyncpg.Connection,
    taken: list[str],
    *,
    reported_lost: int,
    target: str,
    promise: str,
) -> Row:
    """Count what is stored of `taken`, verify every chain through `target`, add the row."""
    rows, distinct, stored = await conn.fetchrow(
        "SELECT count(*), count(DISTINCT event_id),"
        " count(*) FILTER (WHERE event_id = ANY($1::uuid[])) FROM audit_events",
        taken,
    )
    chains = [r["chain_id"] for r in await conn.fetch("SELECT DISTINCT chain_id FROM audit_events")]
    ok = True
    async with asyncio.timeout(60), tls.channel(target) as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        for chain in chains:
            reply = await stub.VerifyIntegrity(pb.VerifyIntegrityRequest(chain_id=chain))
            ok = ok and reply.ok
    row = Row(failure, len(taken), stored, reported_lost, rows - distinct, ok, promise)
    ROWS.append(row)
    return row


class OwnPostgres(OwnServer[PostgresInfo]):
    """A PostgreSQL of one test's own (fsync on, as in production); kill9 takes the
    postmaster and every backend."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, lambda d, port: start_postgres(d, port))


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[tuple[OwnPostgres, PostgresInfo]]:
    server = OwnPostgres(tmp_path / "pg")
    info = await asyncio.to_thread(server.start)
    await asyncio.to_thread(upgrade, info.dsn)
    yield server, info
    await asyncio.to_thread(server.stop)
