"""MFA with TOTP: enrol, verify (the first good code turns MFA on), disable.

Secrets are sealed (AES-256-GCM) before they reach the database, are shown to the
account once, and never appear in a log line or an audit event. Each code is accepted
once (the last accepted time step is kept).
"""

from __future__ import annotations

from user_svc import totp
from user_svc.access import Guard
from user_svc.audit import FAILURE, SUCCESS, Auditor
from user_svc.errors import FailedPrecondition, NotFound, Unauthenticated
from user_svc.model import Caller, Credentials, Identity, MfaCheck, MfaEnrolment
from user_svc.protection import Protection, Subject
from user_svc.storage.protocols import UserStore
from user_svc.totp import SecretBox
from user_svc.validation import Checks


class Mfa:
    """TOTP enrolment and checks, for the signed-in account only."""

    def __init__(
        self,
        store: UserStore,
        guard: Guard,
        auditor: Auditor,
        box: SecretBox,
        protection: Protection,
        window_steps: int,
    ) -> None:
        self._store = store
        self._guard = guard
        self._audit = auditor
        self._box = box
        self._protection = protection
        self._window = window_steps

    async def enable(self, caller: Caller, user_id: str) -> MfaEnrolment:
        """A new secret, pending until VerifyMfa accepts a code made from it."""
        _check(user_id)
        await self._guard.owner(caller, None, user_id)
        account = await self._account(user_id)
        if account.user.mfa_enabled:
            raise FailedPrecondition("MFA is already on", reason="MFA_ALREADY_ENABLED")
        secret = totp.new_secret()
        async with self._store.transaction() as db:
            await db.set_mfa(
                user_id,
                secret=None,
                pending=self._box.seal(secret, user_id),
                last_step=0,
            )
        uri = totp.provisioning_uri(secret, account.user.username)
        return MfaEnrolment(secret=secret, provisioning_uri=uri)

    async def verify(self, caller: Caller, user_id: str, code: str) -> MfaCheck:
        """Check a code (`mfa.mfa_verified`); the first good one turns MFA on
        (`mfa.mfa_enabled`). A wrong code is an answer, not an error."""
        _check(user_id, code)
        identity = await self._guard.owner(caller, "mfa.mfa_verified", user_id)
        await self._protection.limit(caller, "mfa", _subject(identity))
        account = await self._account(user_id)
        sealed = account.mfa_secret or account.mfa_pending_secret
        if sealed is None:
            raise FailedPrecondition("start with EnableMfa", reason="MFA_NOT_ENABLED")
        enabling = account.mfa_secret is None
        secret = self._box.open(sealed, user_id)
        step = totp.matching_step(secret, code, account.mfa_last_step, self._window)
        details = {"session_id": identity.session_id, "enrolment": enabling}
        if step is None:
            await self._audit.record(
                "mfa.mfa_verified",
                FAILURE,
                caller,
                **_who(identity),
                details={**details, "reason": "invalid_mfa_code"},
            )
            return MfaCheck(verified=False, mfa_enabled=not enabling)
        async with self._store.transaction() as db:
            if enabling:
                await db.set_mfa(user_id, secret=sealed, pending=None, last_step=step)
            else:
                await db.set_mfa_step(user_id, step)
            await self._audit.record(
                "mfa.mfa_verified", SUCCESS, caller, **_who(identity), details=details
            )
            if enabling:
                await self._audit.record(
                    "mfa.mfa_enabled",
                    SUCCESS,
                    caller,
                    **_who(identity),
                    details={"session_id": identity.session_id, "method": "totp"},
                )
        return MfaCheck(verified=True, mfa_enabled=True)

    async def disable(self, caller: Caller, user_id: str, code: str) -> None:
        """Turn MFA off after checking a current code (`mfa.mfa_disabled`)."""
        _check(user_id, code)
        event = "mfa.mfa_disabled"
        identity = await self._guard.owner(caller, event, user_id)
        await self._protection.limit(caller, "mfa", _subject(identity))
        account = await self._account(user_id)
        if account.mfa_secret is None:
            raise FailedPrecondition("MFA is not on", reason="MFA_NOT_ENABLED")
        secret = self._box.open(account.mfa_secret, user_id)
        step = totp.matching_step(secret, code, account.mfa_last_step, self._window)
        details = {"session_id": identity.session_id, "method": "totp"}
        if step is None:
            await self._audit.record(
                event,
                FAILURE,
                caller,
                **_who(identity),
                details={**details, "reason": "invalid_mfa_code"},
            )
            raise Unauthenticated("the TOTP code is not valid", reason="INVALID_MFA_CODE")
        async with self._store.transaction() as db:
            await db.set_mfa(user_id, secret=None, pending=None, last_step=step)
            await self._audit.record(event, SUCCESS, caller, **_who(identity), details=details)

    async def _account(self, user_id: str) -> Credentials:
        async with self._store.connection() as db:
            account = await db.credentials_by_id(user_id)
        if account is None:
            raise NotFound("no such account", reason="USER_NOT_FOUND")
        return account


def _check(user_id: str, code: str | None = None) -> None:
    checks = Checks()
    checks.user_id("user_id", user_id)
    if code is not None:
        checks.totp_code("totp_code", code)
    checks.done()


def _who(identity: Identity) -> dict[str, str]:
    return {"user_id": identity.user_id, "username": identity.username}


def _subject(identity: Identity) -> Subject:
    return Subject(key=identity.user_id, **_who(identity))
