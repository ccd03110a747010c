"""Alembic migrations of a service's database over SQLAlchemy's asyncpg dialect:
`upgrade` for code and CLIs, `run_env` for the service's migrations/env.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def upgrade(script_location: Path, database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision`. Runs its own event loop: call it from a
    thread (`asyncio.to_thread`) when a loop is already running."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["database_url"] = database_url
    command.upgrade(config, revision)


def run_env(context: Any, default_url: Callable[[], str]) -> None:
    """The body of a migrations/env.py: the URL given by `upgrade`, else `default_url()`
    (the service's settings, for `alembic upgrade head`); online mode only.
    `context` is `alembic.context`, a module proxy of the EnvironmentContext."""
    if context.is_offline_mode():
        raise SystemExit("offline SQL generation is not supported; run against a database")
    given = context.config.attributes.get("database_url")
    url = given if isinstance(given, str) else default_url()

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection, target_metadata=None, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(
            url.replace("postgresql://", "postgresql+asyncpg://", 1), poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(main())
