"""Real servers for the client's tests: the session's PostgreSQL and Redis, a fresh audit
database per test (`audit_db`, from tests/conftest.py), the audit-service in-process
(AuditApp) or as a child process that a test may kill -9, and a Redis of the test's own
that it may stop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from audit_client import ClientSettings
from audit_svc.app import AuditApp
from devstack import PostgresInfo, RedisInfo, free_port
from tests.audit_client.support import AuditProcess, MakeSettings, OwnRedis, service_settings
from tests.testkit import tls


@pytest.fixture
async def db(audit_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, to see what an operator would."""
    conn = await asyncpg.connect(audit_db)
    yield conn
    await conn.close()


@pytest.fixture
async def app(audit_db: str) -> AsyncIterator[AuditApp]:
    """A real audit-service on a free port, in this process."""
    async with AuditApp(service_settings(audit_db)) as running:
        yield running


@pytest.fixture
def spool_key() -> str:
    """A spool list of this test's own on the shared Redis."""
    return f"test:{uuid.uuid4().hex[:12]}:audit:retry_queue"


@pytest.fixture
def client_settings(redis_server: RedisInfo, spool_key: str) -> MakeSettings:
    """ClientSettings for a target, with quick retries so tests finish soon."""

    def build(target: str, **changes: Any) -> ClientSettings:
        values: dict[str, Any] = {
            "target": target,
            "redis_url": redis_server.url,
            "spool_key": spool_key,
            "breaker_reset_seconds": 0.2,
            "backoff_initial_seconds": 0.02,
            "backoff_max_seconds": 0.5,
            "spool_poll_seconds": 0.1,
            "replay_lease_seconds": 2.0,
            "connect_timeout_seconds": 1.0,
            "redis_timeout_seconds": 0.5,
            "close_timeout_seconds": 10.0,
            **tls.settings_of("user-service"),
        }
        values.update(changes)
        return ClientSettings(**values)

    return build


@pytest.fixture
async def audit_process(
    postgres: PostgresInfo, audit_db: str, tmp_path: Path
) -> AsyncIterator[AuditProcess]:
    """The audit-service as a child process over `audit_db`, not yet started."""
    pg = postgres.for_database(audit_db.rsplit("/", 1)[1])
    service = AuditProcess(pg, free_port(), tmp_path / "audit-service")
    yield service
    await asyncio.to_thread(service.stop)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A running Redis of this test's own."""
    server = OwnRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_durable_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A running Redis of this test's own with AOF, `appendfsync always`: nothing it
    answered is lost to a kill -9 (everysec may lose up to ~2 s, see devstack)."""
    server = OwnRedis(tmp_path / "durable-redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_everysec_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A running Redis of this test's own with AOF as `make up` runs it (everysec)."""
    server = OwnRedis(tmp_path / "everysec-redis", appendfsync="everysec")
    server.start()
    yield server
    server.stop()
