"""Fresh databases per test: a service's schema is migrated once into a template, and
each test gets a copy (`CREATE DATABASE ... TEMPLATE`, a file copy), dropped after."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg

from devstack import PostgresInfo


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
