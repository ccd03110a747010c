"""Sign-in, sign-out and token refresh.

A wrong password and an unknown account look the same to the caller (UNAUTHENTICATED,
INVALID_CREDENTIALS) and cost the same (an unknown account hashes a dummy password);
only the audit trail says which it was. Failed sign-ins delay further tries
(`throttle.py`) rather than lock the account, so the owner is never locked out by
someone else's guesses. Refresh tokens are single
use: each refresh hands out a new one, and presenting a used one again ends the session
(`security.suspicious_activity`, rule `refresh_token_reuse`).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from user_svc import ids, metrics, totp
from user_svc.audit import DENIED, FAILURE, SUCCESS, Auditor
from user_svc.errors import Unauthenticated
from user_svc.model import Caller, Credentials, SignIn, TokenPair, User
from user_svc.passwords import Passwords
from user_svc.protection import Protection
from user_svc.settings import Settings
from user_svc.storage.protocols import RefreshRow, UserRecords, UserStore
from user_svc.throttle import PER_ACCOUNT, PER_SOURCE, LoginThrottle, throttled
from user_svc.tokens import REFRESH_PREFIX, AccessClaims, AccessTokens, digest, new_opaque
from user_svc.totp import SecretBox
from user_svc.validation import MAX_LOGIN_NAME, Checks


def _invalid_credentials() -> Unauthenticated:
    return Unauthenticated("wrong user name or password", reason="INVALID_CREDENTIALS")


def _invalid_refresh() -> Unauthenticated:
    return Unauthenticated(
        "the refresh token is invalid, used or expired; sign in again",
        reason="INVALID_REFRESH_TOKEN",
    )


class Auth:
    """Sessions: sign in, refresh, sign out."""

    def __init__(
        self,
        store: UserStore,
        auditor: Auditor,
        passwords: Passwords,
        access_tokens: AccessTokens,
        box: SecretBox,
        protection: Protection,
        throttle: LoginThrottle,
        settings: Settings,
    ) -> None:
        self._throttle = throttle
        self._store = store
        self._audit = auditor
        self._passwords = passwords
        self._tokens = access_tokens
        self._box = box
        self._protection = protection
        self._s = settings

    async def login(self, caller: Caller, username: str, password: str, totp_code: str) -> SignIn:
        checks = Checks()
        checks.text("username", username, MAX_LOGIN_NAME, required=True)
        checks.password("password", password)
        checks.totp_code("totp_code", totp_code, required=False)
        checks.done()
        # Per address only: the per-account brake is the throttle, which the owner passes.
        await self._protection.limit(caller, "login")
        key = username.lower()
        waits = await self._throttle.waits(key, caller.ip_address)
        if waits.source:
            raise throttled(PER_SOURCE, waits.source)
        async with self._store.connection() as db:
            account = await db.credentials_by_username(username)
            known = False
            if waits.account and account is not None:
                known = (await db.known_addresses(account.user.user_id, caller.ip_address))[1]
        # During an account-wide delay, an unknown address passes only with the right
        # password and a valid TOTP code; any other answer is the delay.
        gated = bool(waits.account) and not known
        if gated and not (account is not None and account.user.mfa_enabled and totp_code):
            if totp_code:  # as long as the checks it skips: the delay says nothing of MFA
                await self._passwords.verify(None, password)
            raise throttled(PER_ACCOUNT, waits.account)
        try:
            return await self._check(caller, username, account, password, totp_code)
        except Unauthenticated:
            if gated:
                raise throttled(PER_ACCOUNT, waits.account) from None
            raise

    async def _check(
        self,
        caller: Caller,
        username: str,
        account: Credentials | None,
        password: str,
        totp_code: str,
    ) -> SignIn:
        """Password, lock and TOTP code, in that order; sign in when all are good."""
        key = username.lower()
        ok = await self._passwords.verify(account.password_hash if account else None, password)
        if account is None:
            await self._failed_event(caller, "", username, "unknown_user", mfa_used=False)
            await self._throttle.failed(caller, key)
            raise _invalid_credentials()
        if not ok:
            await self._failure(caller, key, account, "wrong_password", mfa_used=False)
            raise _invalid_credentials()
        if account.user.locked:
            await self._failed_event(
                caller, account.user.user_id, account.user.username, "account_locked", False
            )
            raise Unauthenticated("the account is locked", reason="ACCOUNT_LOCKED")
        step = None
        if account.user.mfa_enabled:
            assert account.mfa_secret is not None
            if not totp_code:
                await self._failed_event(
                    caller, account.user.user_id, account.user.username, "mfa_required", False
                )
                raise Unauthenticated("this account needs a TOTP code", reason="MFA_REQUIRED")
            secret = self._box.open(account.mfa_secret, account.user.user_id)
            step = totp.matching_step(
                secret, totp_code, account.mfa_last_step, self._s.totp_window_steps
            )
            if step is None:
                await self._failure(caller, key, account, "invalid_mfa_code", mfa_used=True)
                raise Unauthenticated("the TOTP code is not valid", reason="INVALID_MFA_CODE")
        signed_in = await self._sign_in(caller, account, password, mfa_step=step)
        await self._throttle.succeeded(key, caller.ip_address)
        return signed_in

    async def _sign_in(
        self, caller: Caller, account: Credentials, password: str, mfa_step: int | None
    ) -> SignIn:
        user = account.user
        now = datetime.now(UTC)
        rehash = None
        if self._passwords.needs_rehash(account.password_hash):
            rehash = await self._passwords.hash(password)
        mfa_used = mfa_step is not None
        async with self._store.transaction() as db:
            count, known = await db.known_addresses(user.user_id, caller.ip_address)
            suspicious = self._protection.new_ip_after_failures(account, count, known, now)
            await db.signed_in(user.user_id, rehash)
            if mfa_step is not None:
                await db.set_mfa_step(user.user_id, mfa_step)
            await db.remember_address(user.user_id, caller.ip_address)
            session_id = ids.session_id()
            await db.create_session(
                session_id, user.user_id, caller.ip_address, caller.user_agent, mfa_used
            )
            tokens = await self._issue(db, user, session_id)
            await self._audit.record(
                "auth.login_success",
                SUCCESS,
                caller,
                user_id=user.user_id,
                username=user.username,
                details={"mfa_used": mfa_used, "session_id": session_id},
            )
            if suspicious:
                await self._audit.record(
                    "security.suspicious_activity",
                    SUCCESS,
                    caller,
                    user_id=user.user_id,
                    username=user.username,
                    details={
                        "rule": "success_from_new_ip_after_failures",
                        "failed_logins": account.failed_logins,
                        "session_id": session_id,
                    },
                )
        metrics.LOGINS.labels("success").inc()
        return SignIn(tokens=tokens, user=dataclasses.replace(user, locked=False))

    async def _issue(self, db: UserRecords, user: User, session_id: str) -> TokenPair:
        refresh = new_opaque(REFRESH_PREFIX)
        expires = datetime.now(UTC) + timedelta(seconds=self._s.refresh_token_ttl_seconds)
        await db.add_refresh_token(digest(refresh), session_id, expires)
        claims = AccessClaims(user.user_id, user.username, session_id, user.roles, user.permissions)
        access = self._tokens.issue(claims)
        return TokenPair(access, refresh, self._tokens.ttl_seconds, session_id)

    async def _failure(
        self, caller: Caller, key: str, account: Credentials, reason: str, *, mfa_used: bool
    ) -> None:
        """A failed sign-in of a real account: audited, counted, delaying the next."""
        user = account.user
        await self._failed_event(caller, user.user_id, user.username, reason, mfa_used)
        await self._protection.sign_in_failed(caller, account)
        await self._throttle.failed(caller, key, user_id=user.user_id, username=user.username)
        async with self._store.transaction() as db:
            fresh = await db.credentials_by_id(user.user_id, for_update=True)
            if fresh is not None:
                await db.set_failures(user.user_id, fresh.failed_logins + 1, datetime.now(UTC))

    async def _failed_event(
        self, caller: Caller, user_id: str, username: str, reason: str, mfa_used: bool
    ) -> None:
        metrics.LOGINS.labels(reason).inc()
        await self._audit.record(
            "auth.login_failed",
            FAILURE,
            caller,
            user_id=user_id,
            username=username,
            details={"mfa_used": mfa_used, "reason": reason},
        )

    async def refresh(self, caller: Caller, refresh_token: str) -> TokenPair:
        """Trade a refresh token for new tokens; the old one stops working."""
        checks = Checks()
        checks.token("refresh_token", refresh_token)
        checks.done()
        event = "auth.token_refresh"
        async with self._store.transaction() as db:
            row = await db.find_refresh_token(digest(refresh_token), for_update=True)
            reason = _refusal(row)
            account = await db.get(row.user_id) if row is not None else None
            if row is not None and reason is None and account is None:
                reason = "account_deleted"
            if row is not None and reason is None and account is not None:
                await db.use_refresh_token(digest(refresh_token))
                tokens = await self._issue(db, account, row.session_id)
                await self._audit.record(
                    event,
                    SUCCESS,
                    caller,
                    user_id=row.user_id,
                    username=row.username,
                    details={"session_id": row.session_id},
                )
                return tokens
            if row is not None and reason == "token_reused":
                await db.end_session(row.session_id, "refresh_token_reuse")
        who = {"user_id": row.user_id, "username": row.username} if row else {}
        session = {"session_id": row.session_id} if row else {}
        details = {**session, "reason": reason}
        await self._audit.record(event, FAILURE, caller, **who, details=details)
        if row is not None and reason == "token_reused":
            await self._audit.record(
                "security.suspicious_activity",
                DENIED,
                caller,
                **who,
                details={**session, "rule": "refresh_token_reuse", "session_ended": True},
            )
        raise _invalid_refresh()

    async def logout(self, caller: Caller, refresh_token: str) -> None:
        """End the session the refresh token belongs to."""
        checks = Checks()
        checks.token("refresh_token", refresh_token)
        checks.done()
        async with self._store.transaction() as db:
            row = await db.find_refresh_token(digest(refresh_token))
            ended = row is not None and await db.end_session(row.session_id, "logout")
        if row is None:
            await self._audit.record(
                "auth.logout", FAILURE, caller, details={"reason": "unknown_token"}
            )
            raise _invalid_refresh()
        await self._audit.record(
            "auth.logout",
            SUCCESS,
            caller,
            user_id=row.user_id,
            username=row.username,
            details={"session_id": row.session_id, "already_ended": not ended},
        )


def _refusal(row: RefreshRow | None) -> str | None:
    """Why a refresh token cannot be traded in, or None when it can."""
    if row is None:
        return "unknown_token"
    if row.session_ended:
        return "session_ended"
    if row.used:
        return "token_reused"
    if row.expired:
        return "token_expired"
    if row.locked:
        return "account_locked"
    return None
