"""The audit-service under test: a real server, a pool and a direct connection over
the fresh database of `audit_db` (tests/conftest.py), and a domain event builder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.model import Event
from audit_svc.storage.postgres import create_pool, init_connection
from meshkit.ids import uuid7
from tests.testkit import tls


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
    settings = tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0")
    async with AuditApp(settings) as running:
        yield running


@pytest.fixture
async def stub(app: AuditApp) -> AsyncIterator[pb_grpc.AuditServiceStub]:
    """A client of `app`."""
    async with tls.channel(f"127.0.0.1:{app.port}") as channel:
        yield pb_grpc.AuditServiceStub(channel)


@pytest.fixture
async def db(audit_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, to see what an operator would."""
    conn = await asyncpg.connect(audit_db)
    await init_connection(conn)
    yield conn
    await conn.close()
