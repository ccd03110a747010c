"""Fresh databases per test: a service's schema is migrated once into a template, and
each test gets a copy (`CREATE DATABASE ... TEMPLATE`, a file copy), dropped after.

Tests reach the databases as the superuser (to see and tamper as an operator with
database access would); the audit-services under test log in as `audit_writer`,
the runtime role `make up` uses (`as_writer`, applied by tls.audit_settings)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from devstack import PostgresInfo
from devstack.mesh import AUDIT_WRITER_ROLE
from devstack.postgres import SUPERUSER, create_role, server_role_password

# The audit_writer password of each test server, by (host, port).
_WRITER_PASSWORDS: dict[tuple[str, int], str] = {}


async def _execute(postgres: PostgresInfo, *statements: str) -> None:
    conn = await asyncpg.connect(postgres.for_database("postgres").dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def make_template(postgres: PostgresInfo, name: str, upgrade: Callable[[str], None]) -> str:
    """Create database `name` (again) and migrate it with `upgrade(dsn)`; returns `name`."""
    await _execute(
        postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    await asyncio.to_thread(upgrade, postgres.for_database(name).dsn)
    return name


@contextlib.asynccontextmanager
async def copy_of(postgres: PostgresInfo, template: str, prefix: str) -> AsyncIterator[str]:
    """The URL of a new database copied from `template`, dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _execute(postgres, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield postgres.for_database(name).dsn
    finally:
        await _execute(postgres, f'DROP DATABASE "{name}" WITH (FORCE)')


async def let_writer_log_in(postgres: PostgresInfo) -> None:
    """Make `audit_writer` (created NOLOGIN by the audit migrations) a login role of
    `postgres` with its server password, for `as_writer`."""
    password = server_role_password(postgres, AUDIT_WRITER_ROLE)
    await asyncio.to_thread(create_role, postgres, AUDIT_WRITER_ROLE, password)
    _WRITER_PASSWORDS[(postgres.host, postgres.port)] = password


def as_writer(dsn: str) -> str:
    """`dsn` logging in as audit_writer instead of the superuser; other URLs as they are."""
    parts = urlsplit(dsn)
    password = _WRITER_PASSWORDS.get((parts.hostname or "", parts.port or 0))
    if parts.username != SUPERUSER or password is None:
        return dsn
    netloc = f"{AUDIT_WRITER_ROLE}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
