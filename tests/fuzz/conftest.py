"""The whole mesh in this process for the fuzzers: a real audit-service and
user-service on fresh databases, and the REST gateway in front of both, on free ports.
The fuzzers themselves run outside the event loop (a subprocess, a thread)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from audit_client import ClientSettings
from audit_svc.app import AuditApp
from devstack import PostgresInfo, RedisInfo
from tests.gateway.harness import running_gateway
from tests.testkit import tls
from tests.testkit.databases import copy_of, make_template
from user_svc.app import UserApp
from user_svc.migrate import upgrade as users_upgrade
from user_svc.settings import Settings as UserSettings

# Cheap argon2: the fuzzers sign up and sign in many times.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 256, "argon2_parallelism": 1}


@dataclass(frozen=True)
class FuzzMesh:
    """Where each piece listens."""

    audit_grpc: int
    user_grpc: int
    audit_rest: int
    user_rest: int


@pytest.fixture(scope="session")
async def fuzz_users_template(postgres: PostgresInfo) -> str:
    return await make_template(postgres, "fuzz_users_template", users_upgrade)


@pytest.fixture
async def fuzz_mesh(
    postgres: PostgresInfo, fuzz_users_template: str, audit_db: str, redis_server: RedisInfo
) -> AsyncIterator[FuzzMesh]:
    prefix = f"fuzz-{uuid.uuid4().hex[:12]}:"
    audit_settings = tls.audit_settings(
        database_url=audit_db, grpc_listen="127.0.0.1:0", log_level="ERROR"
    )
    async with (
        copy_of(postgres, fuzz_users_template, "users_fuzz") as users_db,
        AuditApp(audit_settings) as audit,
    ):
        user_settings = UserSettings.from_env(
            {},
            database_url=users_db,
            grpc_listen="127.0.0.1:0",
            redis_url=redis_server.url,
            redis_prefix=prefix,
            reset_outbox_key=f"{prefix}mail:outbox",
            audit_target=f"127.0.0.1:{audit.port}",
            audit_spool_key=f"{prefix}audit:retry_queue",
            log_level="ERROR",
            **tls.settings_of("user-service"),
            **FAST_ARGON2,
        )
        client = ClientSettings(
            target=user_settings.audit_target,
            **tls.settings_of("user-service"),
            redis_url=redis_server.url,
            spool_key=user_settings.audit_spool_key,
        )
        async with UserApp(user_settings, client) as users:
            upstreams = f"audit=127.0.0.1:{audit.port},user=127.0.0.1:{users.port}"
            async with running_gateway(upstreams=upstreams) as gateway:
                yield FuzzMesh(
                    audit.port, users.port, gateway.ports["audit"], gateway.ports["user"]
                )
