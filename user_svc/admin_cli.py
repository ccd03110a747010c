"""`python -m user_svc create-admin`: the first admin (bootstrap), audited like any
other account creation (`user.user_created` and `permission.role_assigned`, user agent
`user_svc create-admin`)."""

from __future__ import annotations

import contextlib
import getpass
import logging
import sys
from typing import TextIO

from audit_client import AuditClient, ClientSettings
from user_svc.app import open_redis
from user_svc.errors import UserError
from user_svc.keys import load_keys
from user_svc.model import ADMIN, Caller
from user_svc.service import build_services
from user_svc.settings import Settings
from user_svc.storage.pg_store import PgUserStore
from user_svc.storage.postgres import create_pool

log = logging.getLogger(__name__)

USER_AGENT = "user_svc create-admin"


def read_password(stdin: TextIO, from_stdin: bool) -> str:
    """The password from the first line of stdin, or typed at a prompt (twice)."""
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    if not stdin.isatty():
        raise ValueError("no terminal to prompt on: pass --password-stdin and pipe it in")
    first = getpass.getpass("password for the new admin: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


async def create_admin(
    settings: Settings,
    audit_settings: ClientSettings | None,
    username: str,
    email: str,
    password: str,
    display_name: str = "",
) -> str:
    """Create an account with the admin role; return its id. Raises UserError
    (InvalidArgument, AlreadyExists...) like the CreateUser call would."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        stack.push_async_callback(pool.close)
        redis = await open_redis(settings.redis_url)
        stack.push_async_callback(redis.aclose)
        store = PgUserStore(pool)
        keys = await load_keys(store, settings)
        client = None
        if settings.audit_enabled and audit_settings is not None:
            client = AuditClient(audit_settings)
            await client.start()
            stack.push_async_callback(client.aclose)
        services = build_services(settings, store, redis, keys, client)
        user = await services.accounts.create(
            Caller(user_agent=USER_AGENT, method="create-admin"),
            username,
            email,
            password,
            display_name,
            method="bootstrap_cli",
            roles=(ADMIN,),
        )
        return user.user_id
    raise AssertionError("unreachable")


def describe_error(exc: UserError) -> str:
    violations = getattr(exc, "violations", ())
    if violations:
        return "; ".join(f"--{v.field.replace('_', '-')}: {v.description}" for v in violations)
    return f"{exc.reason}: {exc.message}"


def print_error(message: str) -> None:
    print(f"create-admin: {message}", file=sys.stderr)
