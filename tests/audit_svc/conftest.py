"""A fresh, migrated, empty audit database per test, on the session's real PostgreSQL.

The schema is migrated once into a template database; each test gets a copy of it
(`CREATE DATABASE ... TEMPLATE`, a file copy), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
import pytest

from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.ids import uuid7
from audit_svc.migrate import upgrade
from audit_svc.model import Event
from audit_svc.settings import Settings
from audit_svc.storage.postgres import create_pool, init_connection
from devstack import PostgresInfo

TEMPLATE = "audit_template"


async def _admin(postgres: PostgresInfo) -> asyncpg.Connection:
    return await asyncpg.connect(postgres.for_database("postgres").dsn)


@pytest.fixture(scope="session")
async def audit_template(postgres: PostgresInfo) -> str:
    """Name of a database migrated to head, used only as a template."""
    conn = await _admin(postgres)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, postgres.for_database(TEMPLATE).dsn)
    return TEMPLATE


@pytest.fixture
async def audit_db(postgres: PostgresInfo, audit_template: str) -> AsyncIterator[str]:
    """URL of a fresh database with the audit schema and no rows; dropped afterwards."""
    name = f"audit_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin(postgres)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{audit_template}"')
    finally:
        await conn.close()
    yield postgres.for_database(name).dsn
    conn = await _admin(postgres)
    try:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def audit_pool(audit_db: str) -> AsyncIterator[asyncpg.Pool]:
    """The audit-service's own kind of pool (jsonb codec) on a fresh database."""
    pool = await create_pool(audit_db, min_size=1, max_size=4)
    yield pool
    await pool.close()


MakeEvent = Callable[..., Event]


@pytest.fixture
def make_event() -> MakeEvent:
    """Builds a valid `Event` like the integration guide's, with any field changed."""

    def build(event_time: datetime, **changes: Any) -> Event:
        fields: dict[str, Any] = {
            "event_id": uuid7(int(event_time.timestamp() * 1000)),
            "event_type": "auth.login_success",
            "user_id": "user123",
            "username": "johndoe",
            "ip_address": None,
            "user_agent": "Mozilla/5.0",
            "service": "user-service",
            "action": "login_success",
            "result": "success",
            "details": {"mfa_used": False, "session_id": "sess_123"},
            "compliance_tags": ("SOX", "GDPR"),
            "data_classification": "internal",
            "event_time": event_time.astimezone(UTC),
            "receive_time": event_time.astimezone(UTC),
        }
        fields.update(changes)
        return Event(**fields)

    return build


@pytest.fixture
async def app(audit_db: str) -> AsyncIterator[AuditApp]:
    """A real audit-service on a free port, over a fresh database."""
    settings = Settings.from_env({}, database_url=audit_db, grpc_listen="127.0.0.1:0")
    async with AuditApp(settings) as running:
        yield running


@pytest.fixture
async def stub(app: AuditApp) -> AsyncIterator[pb_grpc.AuditServiceStub]:
    """A client of `app`."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield pb_grpc.AuditServiceStub(channel)


@pytest.fixture
async def db(audit_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, to see what an operator would."""
    conn = await asyncpg.connect(audit_db)
    await init_connection(conn)
    yield conn
    await conn.close()
