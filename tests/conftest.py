"""Real servers for the whole test session, each started the first time a test asks
for it (a test that needs only PostgreSQL never starts SeaweedFS), on free loopback
ports, with data in pytest's temporary folder; all stopped at the end of the session.
`audit_db` gives each test its own migrated audit database on that PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from audit_svc.ops.migrate import upgrade as audit_upgrade
from devstack import (
    InfluxInfo,
    PostgresInfo,
    RabbitInfo,
    RedisInfo,
    S3Info,
    start_influx,
    start_postgres,
    start_rabbitmq,
    start_redis,
    start_s3,
)
from tests.testkit.databases import copy_of, let_writer_log_in, make_template


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


# RabbitMQ users of the tests: the consumer (audit-service) and these publishers, each
# mapped to a principal by tests/testkit/policy.toml.
AMQP_PUBLISHERS = ("test-client", "user-service", "billing-service", "stranger")


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitInfo]:
    """RabbitMQ, one node for the session (it takes seconds to start): each test
    uses queues of its own (`audit.ingest.<id>`)."""
    with start_rabbitmq(tmp_path_factory.mktemp("rabbitmq"), publishers=AMQP_PUBLISHERS) as server:
        yield server.info


@pytest.fixture(scope="session")
async def audit_template(postgres: PostgresInfo) -> str:
    """Name of a database migrated to the audit schema, used only as a template; its
    runtime role audit_writer may log in (what audit-services under test run as)."""
    name = await make_template(postgres, "audit_template", audit_upgrade)
    await let_writer_log_in(postgres)
    return name


@pytest.fixture
async def audit_db(postgres: PostgresInfo, audit_template: str) -> AsyncIterator[str]:
    """URL of a fresh database with the audit schema and no rows, as the superuser
    (testkit.databases.as_writer gives the runtime role's); dropped afterwards."""
    async with copy_of(postgres, audit_template, "audit_test") as dsn:
        yield dsn
