"""SQL of sign-in state: sessions, refresh tokens and password-reset tokens (both kept
only as SHA-256 hashes), and the periodic clean-up."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from user_svc.storage.protocols import RefreshRow, ResetRow, SessionRow

__all__ = ["RefreshRow", "ResetRow", "SessionRow"]


async def create_session(
    conn: asyncpg.Connection,
    session_id: str,
    user_id: str,
    ip: str,
    user_agent: str,
    mfa_used: bool,
) -> None:
    await conn.execute(
        "INSERT INTO sessions (session_id, user_id, ip_address, user_agent, mfa_used) "
        "VALUES ($1, $2, $3::inet, $4, $5)",
        session_id,
        user_id,
        ip or None,
        user_agent,
        mfa_used,
    )


async def add_refresh_token(
    conn: asyncpg.Connection, token_hash: bytes, session_id: str, expire_time: datetime
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, expire_time) VALUES ($1, $2, $3)",
        token_hash,
        session_id,
        expire_time,
    )


async def find_refresh_token(
    conn: asyncpg.Connection, token_hash: bytes, *, for_update: bool = False
) -> RefreshRow | None:
    lock = " FOR UPDATE OF t" if for_update else ""
    row = await conn.fetchrow(
        "SELECT s.session_id, s.user_id, u.username, t.expire_time <= now() AS expired, "
        "t.use_time IS NOT NULL AS used, s.end_time IS NOT NULL AS session_ended, "
        "(u.locked AND (u.locked_until IS NULL OR u.locked_until > now())) AS locked "
        "FROM refresh_tokens t JOIN sessions s USING (session_id) "
        f"JOIN users u ON u.user_id = s.user_id WHERE t.token_hash = $1{lock}",
        token_hash,
    )
    if row is None:
        return None
    return RefreshRow(
        session_id=row["session_id"],
        user_id=str(row["user_id"]),
        username=row["username"],
        expired=row["expired"],
        used=row["used"],
        session_ended=row["session_ended"],
        locked=row["locked"],
    )


async def use_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET use_time = now() WHERE token_hash = $1", token_hash
    )


async def end_session(conn: asyncpg.Connection, session_id: str, reason: str) -> bool:
    """True when the session was alive until now."""
    done = await conn.execute(
        "UPDATE sessions SET end_time = now(), end_reason = $2 "
        "WHERE session_id = $1 AND end_time IS NULL",
        session_id,
        reason,
    )
    return bool(done == "UPDATE 1")


async def end_sessions(
    conn: asyncpg.Connection, user_id: str, reason: str, *, keep: str = ""
) -> int:
    """End every live session of the account except `keep`; how many ended."""
    done: str = await conn.execute(
        "UPDATE sessions SET end_time = now(), end_reason = $2 "
        "WHERE user_id = $1 AND end_time IS NULL AND session_id <> $3",
        user_id,
        reason,
        keep,
    )
    return int(done.split()[-1])


async def session_for_bearer(
    conn: asyncpg.Connection, session_id: str, user_id: str
) -> SessionRow | None:
    row = await conn.fetchrow(
        "SELECT u.username, s.end_time IS NOT NULL AS ended, "
        "(u.locked AND (u.locked_until IS NULL OR u.locked_until > now())) AS locked, "
        "ARRAY(SELECT r.role FROM user_roles r WHERE r.user_id = u.user_id ORDER BY r.role) "
        "AS roles FROM sessions s JOIN users u ON u.user_id = s.user_id "
        "WHERE s.session_id = $1 AND s.user_id = $2",
        session_id,
        user_id,
    )
    if row is None:
        return None
    return SessionRow(
        username=row["username"],
        roles=tuple(row["roles"]),
        ended=row["ended"],
        locked=row["locked"],
    )


async def add_reset_token(
    conn: asyncpg.Connection, token_hash: bytes, user_id: str, expire_time: datetime
) -> None:
    """Store a new reset token; earlier unused ones of the account stop working."""
    await conn.execute(
        "UPDATE password_resets SET use_time = now() WHERE user_id = $1 AND use_time IS NULL",
        user_id,
    )
    await conn.execute(
        "INSERT INTO password_resets (token_hash, user_id, expire_time) VALUES ($1, $2, $3)",
        token_hash,
        user_id,
        expire_time,
    )


async def take_reset_token(conn: asyncpg.Connection, token_hash: bytes) -> ResetRow | None:
    """The token, locked for this transaction, and marked used if it was usable."""
    row = await conn.fetchrow(
        "SELECT r.user_id, u.username, r.use_time IS NULL AND r.expire_time > now() AS usable "
        "FROM password_resets r JOIN users u USING (user_id) WHERE r.token_hash = $1 "
        "FOR UPDATE OF r",
        token_hash,
    )
    if row is None:
        return None
    if row["usable"]:
        await conn.execute(
            "UPDATE password_resets SET use_time = now() WHERE token_hash = $1", token_hash
        )
    return ResetRow(user_id=str(row["user_id"]), username=row["username"], usable=row["usable"])


async def end_reset_tokens(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute(
        "UPDATE password_resets SET use_time = now() WHERE user_id = $1 AND use_time IS NULL",
        user_id,
    )


async def clean_up(conn: asyncpg.Connection, ended_before: datetime) -> int:
    """Delete expired tokens and sessions ended before `ended_before`; rows removed."""
    removed = 0
    for sql in (
        "DELETE FROM refresh_tokens WHERE expire_time < now()",
        "DELETE FROM password_resets WHERE expire_time < now()",
        "DELETE FROM sessions WHERE end_time < $1",
    ):
        args = (ended_before,) if "$1" in sql else ()
        done: str = await conn.execute(sql, *args)
        removed += int(done.split()[-1])
    return removed
