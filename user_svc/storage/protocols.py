"""What the user-service's domain asks of storage, as Protocols: `UserStore` opens a
unit of work (`connection()`, or `transaction()`: committed when the block ends,
rolled back when it raises), and `UserRecords` is every statement on accounts and
sign-in state that one unit of work offers. `storage.postgres.PgUserStore` implements
them over asyncpg, with driver errors mapped to the domain's (`Unavailable`,
`AlreadyExists`); importing this module imports no driver.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from user_svc.model import Credentials, User


@dataclass(frozen=True, slots=True)
class RefreshRow:
    """A refresh token as stored, with its session and account."""

    session_id: str
    user_id: str
    username: str
    expired: bool
    used: bool
    session_ended: bool
    locked: bool


@dataclass(frozen=True, slots=True)
class SessionRow:
    """What a bearer check needs: is the session alive, and the account's roles now."""

    username: str
    roles: tuple[str, ...]
    ended: bool
    locked: bool


@dataclass(frozen=True, slots=True)
class ResetRow:
    """A reset token as stored."""

    user_id: str
    username: str
    usable: bool


class UserRecords(Protocol):
    """The statements of one unit of work (see `storage.users`, `storage.sessions`)."""

    async def insert(
        self, user_id: uuid.UUID, username: str, email: str, display_name: str, password_hash: str
    ) -> User:
        """Add an account; AlreadyExists (USERNAME_TAKEN or EMAIL_TAKEN) when it clashes."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def get_by_username(self, username: str) -> User | None: ...

    async def get_by_email(self, email: str) -> User | None: ...

    async def credentials_by_username(
        self, username: str, *, for_update: bool = False
    ) -> Credentials | None: ...

    async def credentials_by_id(
        self, user_id: str, *, for_update: bool = False
    ) -> Credentials | None: ...

    async def page(self, after: tuple[datetime, str] | None, limit: int) -> list[User]:
        """Accounts oldest first, strictly after the keyset position `after`."""
        ...

    async def update_profile(
        self, user_id: str, *, email: str | None, display_name: str | None
    ) -> User | None:
        """Change the given fields; None when there is no such account."""
        ...

    async def delete(self, user_id: str) -> bool: ...

    async def set_lock(
        self, user_id: str, *, locked: bool, until: datetime | None = None
    ) -> User | None:
        """Lock (until `until`, or until unlocked when None) or unlock; failures reset."""
        ...

    async def set_failures(
        self, user_id: str, count: int, last_failure: datetime | None
    ) -> None: ...

    async def signed_in(self, user_id: str, new_hash: str | None) -> None:
        """A successful sign-in: failures cleared, an expired lock lifted, the hash refreshed."""
        ...

    async def set_password(self, user_id: str, password_hash: str) -> None: ...

    async def set_mfa(
        self, user_id: str, *, secret: bytes | None, pending: bytes | None, last_step: int
    ) -> None: ...

    async def set_mfa_step(self, user_id: str, step: int) -> None: ...

    async def add_role(self, user_id: str, role: str) -> bool:
        """True when the account did not have the role before."""
        ...

    async def remove_role(self, user_id: str, role: str) -> bool: ...

    async def add_permission(self, user_id: str, permission: str) -> bool: ...

    async def touch(self, user_id: str) -> None: ...

    async def active_holders(self, role: str) -> int:
        """Unlocked holders of `role`, counted under a transaction-scoped lock so that two
        callers cannot both take the last one away."""
        ...

    async def known_addresses(self, user_id: str, ip: str) -> tuple[int, bool]:
        """How many addresses the account has signed in from, and whether `ip` is one."""
        ...

    async def remember_address(self, user_id: str, ip: str) -> None: ...

    async def dev_key(self, name: str, candidate: bytes) -> tuple[bytes, bool]:
        """The stored development key `name`, storing `candidate` if there is none yet;"""
        ...

    async def create_session(
        self, session_id: str, user_id: str, ip: str, user_agent: str, mfa_used: bool
    ) -> None: ...

    async def add_refresh_token(
        self, token_hash: bytes, session_id: str, expire_time: datetime
    ) -> None: ...

    async def find_refresh_token(
        self, token_hash: bytes, *, for_update: bool = False
    ) -> RefreshRow | None: ...

    async def use_refresh_token(self, token_hash: bytes) -> None: ...

    async def end_session(self, session_id: str, reason: str) -> bool:
        """True when the session was alive until now."""
        ...

    async def end_sessions(self, user_id: str, reason: str, *, keep: str = "") -> int:
        """End every live session of the account except `keep`; how many ended."""
        ...

    async def session_for_bearer(self, session_id: str, user_id: str) -> SessionRow | None: ...

    async def add_reset_token(self, token_hash: bytes, user_id: str, expire_time: datetime) -> None:
        """Store a new reset token; earlier unused ones of the account stop working."""
        ...

    async def take_reset_token(self, token_hash: bytes) -> ResetRow | None:
        """The token, locked for this transaction, and marked used if it was usable."""
        ...

    async def end_reset_tokens(self, user_id: str) -> None: ...

    async def clean_up(self, ended_before: datetime) -> int:
        """Delete expired tokens and sessions ended before `ended_before`; rows removed."""
        ...


class UserStore(Protocol):
    """Units of work on the accounts database."""

    def connection(self) -> AbstractAsyncContextManager[UserRecords]:
        """Statements on one pooled connection, each committed on its own."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[UserRecords]:
        """Statements in one transaction: committed when the block ends, rolled back
        when it raises."""
        ...

    async def ping(self) -> bool:
        """True when the database answers."""
        ...
