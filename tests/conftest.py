"""Real servers for the whole test session, each started the first time a test asks
for it (a test that needs only PostgreSQL never starts SeaweedFS), on free loopback
ports, with data in pytest's temporary folder; all stopped at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
