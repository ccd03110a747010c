"""Domain values of the user-service: accounts, callers, sessions. No transport here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from meshkit.errors import FieldViolation as FieldViolation  # one type for every service

ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class User:
    """An account as callers may see it; secrets live only in `Credentials`."""

    user_id: str
    username: str
    email: str
    display_name: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    mfa_enabled: bool
    locked: bool
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """What sign-in needs: the account and its secrets (never leave the service)."""

    user: User
    password_hash: str
    mfa_secret: bytes | None  # encrypted
    mfa_pending_secret: bytes | None  # encrypted, before the first verified code
    mfa_last_step: int
    failed_logins: int
    last_failure_time: datetime | None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as the transport saw it: address, user agent, bearer token."""

    ip_address: str = ""
    user_agent: str = ""
    bearer_token: str = field(default="", repr=False)
    method: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """The signed-in user behind a valid access token, with its current roles."""

    user_id: str
    username: str
    session_id: str
    roles: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a sign-in or a refresh hands out."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in_seconds: int
    session_id: str


@dataclass(frozen=True, slots=True)
class SignIn:
    """A successful sign-in."""

    tokens: TokenPair
    user: User


@dataclass(frozen=True, slots=True)
class UserPage:
    """One page of accounts and the token of the next (empty at the end)."""

    users: list[User]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class MfaEnrolment:
    """A new TOTP secret, shown once."""

    secret: str = field(repr=False)
    provisioning_uri: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class MfaCheck:
    """The outcome of VerifyMfa."""

    verified: bool
    mfa_enabled: bool
