"""Passwords: change (signed in), reset request and reset confirmation.

A reset request answers the same whether or not the email belongs to an account. For
an account, a one-time token is made, stored only as its SHA-256, and handed to the
mailer sealed, for a few minutes, through the Redis outbox (`outbox.py`): delivery is
outside this service.
A changed or reset password ends the account's other sessions.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from user_svc.access import Guard
from user_svc.audit import FAILURE, SUCCESS, Auditor
from user_svc.errors import Unauthenticated, Unavailable
from user_svc.model import Caller
from user_svc.outbox import MailBox
from user_svc.passwords import Passwords
from user_svc.protection import Protection, Subject
from user_svc.settings import Settings
from user_svc.storage.protocols import UserStore
from user_svc.storage.redis_state import RedisState
from user_svc.throttle import LoginThrottle
from user_svc.tokens import RESET_PREFIX, digest, new_opaque
from user_svc.validation import Checks

log = logging.getLogger(__name__)

CHANGED = "password.password_changed"


class PasswordFlows:
    """Password change and reset."""

    def __init__(
        self,
        store: UserStore,
        guard: Guard,
        auditor: Auditor,
        passwords: Passwords,
        protection: Protection,
        throttle: LoginThrottle,
        state: RedisState,
        mail: MailBox,
        settings: Settings,
    ) -> None:
        self._store = store
        self._guard = guard
        self._audit = auditor
        self._passwords = passwords
        self._protection = protection
        self._throttle = throttle
        self._state = state
        self._mail = mail
        self._s = settings

    async def change(self, caller: Caller, current: str, new: str) -> None:
        """The signed-in user's new password; the current one must be right."""
        checks = Checks()
        checks.password("current_password", current)
        checks.new_password("new_password", new)
        if current and current == new:
            checks.bad("new_password", "must differ from the current password")
        checks.done()
        identity = await self._guard.identify(caller)
        who = {"user_id": identity.user_id, "username": identity.username}
        await self._protection.limit(caller, "password_change", Subject(identity.user_id, **who))
        async with self._store.connection() as db:
            account = await db.credentials_by_id(identity.user_id)
        ok = await self._passwords.verify(account.password_hash if account else None, current)
        if account is None or not ok:
            await self._audit.record(
                CHANGED,
                FAILURE,
                caller,
                **who,
                details={
                    "method": "change",
                    "reason": "wrong_current_password",
                    "session_id": identity.session_id,
                },
            )
            raise Unauthenticated("the current password is wrong", reason="INVALID_CREDENTIALS")
        new_hash = await self._passwords.hash(new)
        async with self._store.transaction() as db:
            await db.set_password(identity.user_id, new_hash)
            await db.end_reset_tokens(identity.user_id)
            ended = await db.end_sessions(
                identity.user_id, "password_changed", keep=identity.session_id
            )
            await self._audit.record(
                CHANGED,
                SUCCESS,
                caller,
                **who,
                details={
                    "method": "change",
                    "session_id": identity.session_id,
                    "sessions_ended": ended,
                },
            )

    async def request_reset(self, caller: Caller, email: str) -> None:
        """Make a reset token for the account of `email`, if there is one; the caller
        cannot tell."""
        checks = Checks()
        checks.email("email", email)
        checks.done()
        await self._protection.limit(caller, "password_reset", Subject(key=email.lower()))
        event = "password.password_reset_requested"
        async with self._store.connection() as db:
            user = await db.get_by_email(email)
        if user is None:
            await self._audit.record(event, FAILURE, caller, details={"reason": "unknown_email"})
            return
        token = new_opaque(RESET_PREFIX)
        ttl = self._s.reset_token_ttl_seconds
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        async with self._store.transaction() as db:
            await db.add_reset_token(digest(token), user.user_id, expires)
            delivered = await self._deliver(user.user_id, user.email, token, expires)
            await self._audit.record(
                event,
                SUCCESS,
                caller,
                user_id=user.user_id,
                username=user.username,
                details={"expires_in_seconds": ttl, "queued_for_delivery": delivered},
            )

    async def _deliver(self, user_id: str, email: str, token: str, expires: datetime) -> bool:
        key = self._s.reset_outbox_key
        if not key:
            return False
        message = {
            "kind": "password_reset",
            "email": email,
            "reset_token": token,
            "expire_time": expires.isoformat(),
        }
        message_id, sealed = self._mail.seal(message)
        try:
            await self._state.push_outbox(key, message_id, sealed, self._s.reset_outbox_ttl_seconds)
        except Unavailable as exc:
            log.warning("reset message for user %s not queued: %s", user_id, exc.message)
            return False
        return True

    async def confirm_reset(self, caller: Caller, reset_token: str, new: str) -> None:
        """Set a new password with a one-time reset token; every session ends."""
        checks = Checks()
        checks.token("reset_token", reset_token)
        checks.new_password("new_password", new)
        checks.done()
        await self._protection.limit(caller, "password_reset")
        new_hash = await self._passwords.hash(new)
        async with self._store.transaction() as db:
            row = await db.take_reset_token(digest(reset_token))
            if row is not None and row.usable:
                await db.set_password(row.user_id, new_hash)
                ended = await db.end_sessions(row.user_id, "password_reset")
                await self._throttle.forget(row.username.lower())
                await self._audit.record(
                    CHANGED,
                    SUCCESS,
                    caller,
                    user_id=row.user_id,
                    username=row.username,
                    details={"method": "reset", "sessions_ended": ended},
                )
                return
        who = {"user_id": row.user_id, "username": row.username} if row else {}
        reason = "used_or_expired_reset" if row else "unknown_reset"
        await self._audit.record(
            CHANGED, FAILURE, caller, **who, details={"method": "reset", "reason": reason}
        )
        raise Unauthenticated(
            "the reset token is invalid, used or expired", reason="INVALID_RESET_TOKEN"
        )
