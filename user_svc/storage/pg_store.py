"""`UserStore` on PostgreSQL: units of work over an asyncpg pool whose records are
the statements of `storage.users` and `storage.sessions` with the connection bound."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg

from user_svc.storage import sessions, users
from user_svc.storage.postgres import connection, transaction

P = ParamSpec("P")
R = TypeVar("R")


def _bound(
    statement: Callable[Concatenate[asyncpg.Connection, P], Awaitable[R]],
) -> Callable[Concatenate[PgUserRecords, P], Coroutine[Any, Any, R]]:
    """A method that runs `statement` on the records' connection."""

    async def method(records: PgUserRecords, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await statement(records.conn, *args, **kwargs)

    method.__doc__ = statement.__doc__
    return method


class PgUserRecords:
    """`UserRecords` on one connection (a transaction's, or a pooled one)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    insert = _bound(users.insert)
    get = _bound(users.get)
    get_by_username = _bound(users.get_by_username)
    get_by_email = _bound(users.get_by_email)
    credentials_by_username = _bound(users.credentials_by_username)
    credentials_by_id = _bound(users.credentials_by_id)
    page = _bound(users.page)
    update_profile = _bound(users.update_profile)
    delete = _bound(users.delete)
    set_lock = _bound(users.set_lock)
    set_failures = _bound(users.set_failures)
    signed_in = _bound(users.signed_in)
    set_password = _bound(users.set_password)
    set_mfa = _bound(users.set_mfa)
    set_mfa_step = _bound(users.set_mfa_step)
    add_role = _bound(users.add_role)
    remove_role = _bound(users.remove_role)
    add_permission = _bound(users.add_permission)
    touch = _bound(users.touch)
    active_holders = _bound(users.active_holders)
    known_addresses = _bound(users.known_addresses)
    remember_address = _bound(users.remember_address)
    dev_key = _bound(users.dev_key)
    create_session = _bound(sessions.create_session)
    add_refresh_token = _bound(sessions.add_refresh_token)
    find_refresh_token = _bound(sessions.find_refresh_token)
    use_refresh_token = _bound(sessions.use_refresh_token)
    end_session = _bound(sessions.end_session)
    end_sessions = _bound(sessions.end_sessions)
    session_for_bearer = _bound(sessions.session_for_bearer)
    add_reset_token = _bound(sessions.add_reset_token)
    take_reset_token = _bound(sessions.take_reset_token)
    end_reset_tokens = _bound(sessions.end_reset_tokens)
    clean_up = _bound(sessions.clean_up)


class PgUserStore:
    """`UserStore` on an asyncpg pool; driver errors mapped to the domain's."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[PgUserRecords]:
        async with connection(self._pool) as conn:
            yield PgUserRecords(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgUserRecords]:
        async with transaction(self._pool) as conn:
            yield PgUserRecords(conn)

    async def ping(self) -> bool:
        async with connection(self._pool) as conn:
            return bool(await conn.fetchval("SELECT true"))
