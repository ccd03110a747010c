"""PostgreSQL pool, driver-error translation, and row <-> domain mapping."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from meshkit import pg
from user_svc.errors import Unavailable
from user_svc.model import Credentials, User

# Columns of a `User`, selected from `users u`.
USER_COLUMNS = """
    u.user_id, u.username, u.email, u.display_name,
    u.mfa_secret IS NOT NULL AS mfa_enabled,
    (u.locked AND (u.locked_until IS NULL OR u.locked_until > now())) AS locked_now,
    u.create_time, u.update_time,
    ARRAY(SELECT r.role FROM user_roles r WHERE r.user_id = u.user_id ORDER BY r.role) AS roles,
    ARRAY(SELECT p.permission FROM user_permissions p
          WHERE p.user_id = u.user_id ORDER BY p.permission) AS permissions
"""
CREDENTIAL_COLUMNS = (
    USER_COLUMNS
    + """,
    u.password_hash, u.mfa_secret, u.mfa_pending_secret, u.mfa_last_step,
    u.failed_logins, u.last_failure_time
"""
)


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool; unreachable databases become `Unavailable`."""
    return await pg.create_pool(dsn, Unavailable, min_size=min_size, max_size=max_size)


def map_db_errors() -> contextlib.AbstractContextManager[None]:
    """Turn driver and network failures into the domain's `Unavailable`."""
    return pg.map_db_errors(Unavailable)


def connection(pool: asyncpg.Pool) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
    """A pooled connection, with driver errors mapped."""
    return pg.connection(pool, map_db_errors)


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection inside a transaction: committed when the block ends, rolled
    back when it raises."""
    async with connection(pool) as conn, conn.transaction():
        yield conn


def user(row: asyncpg.Record) -> User:
    """The domain view of a row selected with USER_COLUMNS."""
    return User(
        user_id=str(row["user_id"]),
        username=row["username"],
        email=row["email"],
        display_name=row["display_name"],
        roles=tuple(row["roles"]),
        permissions=tuple(row["permissions"]),
        mfa_enabled=row["mfa_enabled"],
        locked=row["locked_now"],
        create_time=row["create_time"],
        update_time=row["update_time"],
    )


def credentials(row: asyncpg.Record) -> Credentials:
    """The account and its secrets, from a row selected with CREDENTIAL_COLUMNS."""
    return Credentials(
        user=user(row),
        password_hash=row["password_hash"],
        mfa_secret=_bytes(row["mfa_secret"]),
        mfa_pending_secret=_bytes(row["mfa_pending_secret"]),
        mfa_last_step=row["mfa_last_step"],
        failed_logins=row["failed_logins"],
        last_failure_time=row["last_failure_time"],
    )


def _bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)
