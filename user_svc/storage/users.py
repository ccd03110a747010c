"""SQL of accounts: profile, password, lock state, MFA, roles, permissions, addresses."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from user_svc.errors import AlreadyExists
from user_svc.model import Credentials, User
from user_svc.storage.postgres import CREDENTIAL_COLUMNS, USER_COLUMNS, credentials, user

_UNIQUE_FIELDS = {"users_username_key": "username", "users_email_key": "email"}


def _taken(exc: asyncpg.UniqueViolationError) -> AlreadyExists:
    field = _UNIQUE_FIELDS.get(exc.constraint_name or "", "username")
    return AlreadyExists(f"the {field} is taken", reason=f"{field.upper()}_TAKEN")


async def insert(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    username: str,
    email: str,
    display_name: str,
    password_hash: str,
) -> User:
    """Add an account; AlreadyExists (USERNAME_TAKEN or EMAIL_TAKEN) when it clashes."""
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO users (user_id, username, email, display_name, password_hash) "
                "VALUES ($1, $2, $3, $4, $5)",
                user_id,
                username,
                email,
                display_name,
                password_hash,
            )
    except asyncpg.UniqueViolationError as exc:
        raise _taken(exc) from None
    found = await get(conn, str(user_id))
    assert found is not None
    return found


async def get(conn: asyncpg.Connection, user_id: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users u WHERE u.user_id = $1", user_id)
    return None if row is None else user(row)


async def get_by_username(conn: asyncpg.Connection, username: str) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users u WHERE lower(u.username) = lower($1)", username
    )
    return None if row is None else user(row)


async def get_by_email(conn: asyncpg.Connection, email: str) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users u WHERE lower(u.email) = lower($1)", email
    )
    return None if row is None else user(row)


async def credentials_by_username(
    conn: asyncpg.Connection, username: str, *, for_update: bool = False
) -> Credentials | None:
    lock = " FOR UPDATE OF u" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {CREDENTIAL_COLUMNS} FROM users u WHERE lower(u.username) = lower($1){lock}",
        username,
    )
    return None if row is None else credentials(row)


async def credentials_by_id(
    conn: asyncpg.Connection, user_id: str, *, for_update: bool = False
) -> Credentials | None:
    lock = " FOR UPDATE OF u" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {CREDENTIAL_COLUMNS} FROM users u WHERE u.user_id = $1{lock}", user_id
    )
    return None if row is None else credentials(row)


async def page(
    conn: asyncpg.Connection, after: tuple[datetime, str] | None, limit: int
) -> list[User]:
    """Accounts oldest first, strictly after the keyset position `after`."""
    if after is None:
        rows = await conn.fetch(
            f"SELECT {USER_COLUMNS} FROM users u ORDER BY u.create_time, u.user_id LIMIT $1",
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {USER_COLUMNS} FROM users u WHERE (u.create_time, u.user_id) > ($1, $2) "
            "ORDER BY u.create_time, u.user_id LIMIT $3",
            after[0],
            uuid.UUID(after[1]),
            limit,
        )
    return [user(row) for row in rows]


async def update_profile(
    conn: asyncpg.Connection, user_id: str, *, email: str | None, display_name: str | None
) -> User | None:
    """Change the given fields; None when there is no such account."""
    try:
        async with conn.transaction():
            done = await conn.execute(
                "UPDATE users SET email = coalesce($2, email), "
                "display_name = coalesce($3, display_name), update_time = now() "
                "WHERE user_id = $1",
                user_id,
                email,
                display_name,
            )
    except asyncpg.UniqueViolationError as exc:
        raise _taken(exc) from None
    return None if done == "UPDATE 0" else await get(conn, user_id)


async def delete(conn: asyncpg.Connection, user_id: str) -> bool:
    done: str = await conn.execute("DELETE FROM users WHERE user_id = $1", user_id)
    return done == "DELETE 1"


async def set_lock(
    conn: asyncpg.Connection, user_id: str, *, locked: bool, until: datetime | None = None
) -> User | None:
    """Lock (until `until`, or until unlocked when None) or unlock; failures reset."""
    done = await conn.execute(
        "UPDATE users SET locked = $2, locked_until = $3, failed_logins = 0, "
        "update_time = now() WHERE user_id = $1",
        user_id,
        locked,
        until if locked else None,
    )
    return None if done == "UPDATE 0" else await get(conn, user_id)


async def set_failures(
    conn: asyncpg.Connection, user_id: str, count: int, last_failure: datetime | None
) -> None:
    await conn.execute(
        "UPDATE users SET failed_logins = $2, last_failure_time = $3 WHERE user_id = $1",
        user_id,
        count,
        last_failure,
    )


async def signed_in(conn: asyncpg.Connection, user_id: str, new_hash: str | None) -> None:
    """A successful sign-in: failures cleared, an expired lock lifted, the hash refreshed."""
    await conn.execute(
        "UPDATE users SET failed_logins = 0, password_hash = coalesce($2, password_hash), "
        "locked = locked AND (locked_until IS NULL OR locked_until > now()) "
        "WHERE user_id = $1",
        user_id,
        new_hash,
    )


async def set_password(conn: asyncpg.Connection, user_id: str, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, failed_logins = 0, update_time = now() "
        "WHERE user_id = $1",
        user_id,
        password_hash,
    )


async def set_mfa(
    conn: asyncpg.Connection,
    user_id: str,
    *,
    secret: bytes | None,
    pending: bytes | None,
    last_step: int,
) -> None:
    await conn.execute(
        "UPDATE users SET mfa_secret = $2, mfa_pending_secret = $3, mfa_last_step = $4, "
        "update_time = now() WHERE user_id = $1",
        user_id,
        secret,
        pending,
        last_step,
    )


async def set_mfa_step(conn: asyncpg.Connection, user_id: str, step: int) -> None:
    await conn.execute("UPDATE users SET mfa_last_step = $2 WHERE user_id = $1", user_id, step)


async def add_role(conn: asyncpg.Connection, user_id: str, role: str) -> bool:
    """True when the account did not have the role before."""
    done = await conn.execute(
        "INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        user_id,
        role,
    )
    return bool(done == "INSERT 0 1")


async def remove_role(conn: asyncpg.Connection, user_id: str, role: str) -> bool:
    done: str = await conn.execute(
        "DELETE FROM user_roles WHERE user_id = $1 AND role = $2", user_id, role
    )
    return bool(done == "DELETE 1")


async def add_permission(conn: asyncpg.Connection, user_id: str, permission: str) -> bool:
    done = await conn.execute(
        "INSERT INTO user_permissions (user_id, permission) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        user_id,
        permission,
    )
    return bool(done == "INSERT 0 1")


async def touch(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute("UPDATE users SET update_time = now() WHERE user_id = $1", user_id)


async def active_holders(conn: asyncpg.Connection, role: str) -> int:
    """Holders of `role` whose account is not locked, counted under a transaction-scoped
    lock so that two callers cannot both take the last one away."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('role:' || $1))", role)
    count: int = await conn.fetchval(
        "SELECT count(*) FROM user_roles r JOIN users u USING (user_id) WHERE r.role = $1 "
        "AND NOT (u.locked AND (u.locked_until IS NULL OR u.locked_until > now()))",
        role,
    )
    return count


async def known_addresses(conn: asyncpg.Connection, user_id: str, ip: str) -> tuple[int, bool]:
    """How many addresses the account has signed in from, and whether `ip` is one."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(bool_or(ip_address = $2::inet), false) AS known "
        "FROM login_addresses WHERE user_id = $1",
        user_id,
        ip or None,
    )
    return int(row["n"]), bool(row["known"])


async def remember_address(conn: asyncpg.Connection, user_id: str, ip: str) -> None:
    if ip:
        await conn.execute(
            "INSERT INTO login_addresses (user_id, ip_address) VALUES ($1, $2::inet) "
            "ON CONFLICT (user_id, ip_address) DO UPDATE SET last_seen = now()",
            user_id,
            ip,
        )


async def dev_key(conn: asyncpg.Connection, name: str, candidate: bytes) -> tuple[bytes, bool]:
    """The stored development key `name`, storing `candidate` if there is none yet;
    and whether it was created now."""
    created = await conn.fetchval(
        "INSERT INTO dev_keys (name, key) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        name,
        candidate,
    )
    key: bytes = await conn.fetchval("SELECT key FROM dev_keys WHERE name = $1", name)
    return bytes(key), bool(created)
