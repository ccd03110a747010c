"""Real servers for the user-service's tests: the session's PostgreSQL and Redis, a fresh
users database and a fresh audit database (`audit_db`, tests/conftest.py) per test, a
real audit-service (AuditApp) and the user-service (UserApp) in this process on free
ports, talking over real gRPC.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from audit.v2 import audit_service_pb2_grpc as audit_grpc
from audit_client import ClientSettings
from audit_svc.app import AuditApp
from devstack import PostgresInfo, RedisInfo
from tests.testkit import tls
from tests.testkit.databases import copy_of, make_template
from tests.user_svc.support import MAIL_KEY, Harness
from user.v1 import user_service_pb2_grpc as pb_grpc
from user_svc.app import UserApp
from user_svc.migrate import upgrade as users_upgrade
from user_svc.settings import Settings

USERS_TEMPLATE = "user_svc_users_template"
# Cheap argon2 for tests; production uses the defaults in user_svc/settings.py.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 256, "argon2_parallelism": 1}


@pytest.fixture(scope="session")
async def users_template(postgres: PostgresInfo) -> str:
    """A users database migrated to head, used only as a template."""
    return await make_template(postgres, USERS_TEMPLATE, users_upgrade)


@pytest.fixture
async def users_db(postgres: PostgresInfo, users_template: str) -> AsyncIterator[str]:
    """URL of a fresh users database; dropped afterwards."""
    async with copy_of(postgres, users_template, "users_test") as dsn:
        yield dsn


@pytest.fixture
async def audit_app(audit_db: str) -> AsyncIterator[AuditApp]:
    """A real audit-service on a free port over a fresh audit database."""
    settings = tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0")
    async with AuditApp(settings) as running:
        yield running


@pytest.fixture
def user_settings(
    users_db: str, redis_server: RedisInfo, audit_app: AuditApp
) -> Callable[..., Settings]:
    """Settings of a user-service of this test (own Redis prefix and spool), with changes."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:"

    def make(**changes: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": users_db,
            "grpc_listen": "127.0.0.1:0",
            "redis_url": redis_server.url,
            "redis_prefix": prefix,
            "reset_outbox_key": f"{prefix}mail:outbox",
            "mail_encryption_key": MAIL_KEY,
            "audit_target": f"127.0.0.1:{audit_app.port}",
            "audit_spool_key": f"{prefix}audit:retry_queue",
            "pool_min_size": 1,
            "pool_max_size": 4,
            "log_format": "text",
            # Codes one step old stay good if a step ends mid-call (see support.next_code).
            "totp_window_steps": 2,
            **tls.settings_of("user-service"),
            **FAST_ARGON2,
        }
        values.update(changes)
        return Settings.from_env({}, **values)

    return make


StartUser = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def start_user(
    user_settings: Callable[..., Settings], audit_app: AuditApp, redis_server: RedisInfo
) -> StartUser:
    """`async with start_user(**setting_changes) as h:` a running user-service and its
    clients (see `Harness`)."""

    @contextlib.asynccontextmanager
    async def start(**changes: Any) -> AsyncIterator[Harness]:
        settings = user_settings(**changes)
        audit_settings = ClientSettings(
            target=settings.audit_target,
            **tls.settings_of("user-service"),
            redis_url=settings.redis_url,
            spool_key=settings.audit_spool_key,
            max_batch_age_seconds=0.01,
        )
        async with (
            UserApp(settings, audit_settings) as app,
            # As the gateway: its x-forwarded-for is believed (tests/user_svc/test_throttle.py).
            tls.channel(f"127.0.0.1:{app.port}", "gateway") as channel,
            tls.channel(f"127.0.0.1:{audit_app.port}") as audit_channel,
        ):
            yield Harness(
                app=app,
                stub=pb_grpc.UserServiceStub(channel),
                audit_stub=audit_grpc.AuditServiceStub(audit_channel),
                redis_url=redis_server.url,
            )

    return start


@pytest.fixture
async def h(start_user: StartUser) -> AsyncIterator[Harness]:
    """A user-service with the test settings, and its clients."""
    async with start_user() as harness:
        yield harness
