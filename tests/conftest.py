"""Real servers for the whole test session, each started the first time a test asks
for it (a test that needs only PostgreSQL never starts SeaweedFS), on free loopback
ports, with data in pytest's temporary folder; all stopped at the end of the session.
`audit_db` gives each test its own migrated audit database on that PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from audit_svc.migrate import upgrade
from devstack import (
    InfluxInfo,
    PostgresInfo,
    RedisInfo,
    S3Info,
    start_influx,
    start_postgres,
    start_redis,
    start_s3,
)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresInfo]:
    """PostgreSQL 15 with an empty `audit` database; fsync off (test data only)."""
    with start_postgres(tmp_path_factory.mktemp("postgres"), fsync=False) as server:
        yield server.info


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisInfo]:
    """Redis 7 without persistence."""
    with start_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.info


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxInfo]:
    """The InfluxDB v2 write API (VictoriaMetrics); read back with devstack.wait_for_series."""
    with start_influx(tmp_path_factory.mktemp("influx")) as server:
        yield server.info


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Info]:
    """S3 (SeaweedFS) with an access key pair; versioning and object lock work."""
    with start_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server.info


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
