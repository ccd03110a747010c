"""Alembic environment: runs the migrations over SQLAlchemy's asyncpg dialect."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from audit_svc.settings import Settings

config = context.config


def database_url() -> str:
    """The URL given by `migrate.upgrade`, else the one in the audit-service settings."""
    given = config.attributes.get("database_url")
    url = given if isinstance(given, str) else Settings.from_env().database_url
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def main() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run against a database")
asyncio.run(main())
