"""Who is calling, and may they: bearer access tokens and role checks.

The access token (a signed JWT) names the account and the session; each check also
reads the session and the account's roles from the database, so a sign-out, a lock or
a removed role takes effect at once rather than when the token expires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from user_svc.audit import DENIED, Auditor
from user_svc.errors import PermissionDenied, Unauthenticated
from user_svc.model import ADMIN, Caller, Identity
from user_svc.storage.protocols import UserStore
from user_svc.tokens import AccessTokens, TokenError


class Guard:
    """Checks bearer tokens and roles; a refused check by a signed-in caller is audited
    as the attempted action with result `denied`."""

    def __init__(self, store: UserStore, tokens: AccessTokens, auditor: Auditor) -> None:
        self._store = store
        self._tokens = tokens
        self._audit = auditor

    async def identify(self, caller: Caller) -> Identity:
        """The signed-in user; Unauthenticated (MISSING_TOKEN, INVALID_TOKEN,
        SESSION_ENDED or ACCOUNT_LOCKED) otherwise."""
        if not caller.bearer_token:
            raise Unauthenticated(
                "sign in and send `authorization: Bearer <access token>`", reason="MISSING_TOKEN"
            )
        try:
            claims = self._tokens.verify(caller.bearer_token)
        except TokenError:
            raise Unauthenticated(
                "the access token is invalid or expired", reason="INVALID_TOKEN"
            ) from None
        async with self._store.connection() as db:
            row = await db.session_for_bearer(claims.session_id, claims.user_id)
        if row is None or row.ended:
            raise Unauthenticated("the session has ended; sign in again", reason="SESSION_ENDED")
        if row.locked:
            raise Unauthenticated("the account is locked", reason="ACCOUNT_LOCKED")
        return Identity(
            user_id=claims.user_id,
            username=row.username,
            session_id=claims.session_id,
            roles=row.roles,
        )

    async def admin(
        self,
        caller: Caller,
        event_type: str | None,
        *,
        user_id: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> Identity:
        """The signed-in caller if it has the `admin` role; PermissionDenied otherwise
        (audited as `event_type` denied, when the call has an event type)."""
        identity = await self.identify(caller)
        if not identity.is_admin:
            await self._deny(caller, identity, event_type, user_id, details, "role_required")
            raise PermissionDenied(
                "this call needs the admin role", reason="ROLE_REQUIRED", metadata={"role": ADMIN}
            )
        return identity

    async def owner_or_admin(
        self,
        caller: Caller,
        event_type: str | None,
        user_id: str,
        details: Mapping[str, Any] | None = None,
    ) -> Identity:
        """The caller if it is the account `user_id` itself or an admin."""
        identity = await self.identify(caller)
        if identity.user_id != user_id and not identity.is_admin:
            await self._deny(caller, identity, event_type, user_id, details, "not_account_owner")
            raise PermissionDenied(
                "only the account itself or an admin may do this", reason="NOT_ACCOUNT_OWNER"
            )
        return identity

    async def owner(self, caller: Caller, event_type: str | None, user_id: str) -> Identity:
        """The caller if it is the account `user_id` itself (MFA is personal)."""
        identity = await self.identify(caller)
        if identity.user_id != user_id:
            await self._deny(caller, identity, event_type, user_id, None, "not_account_owner")
            raise PermissionDenied(
                "only the account itself may do this", reason="NOT_ACCOUNT_OWNER"
            )
        return identity

    async def _deny(
        self,
        caller: Caller,
        identity: Identity,
        event_type: str | None,
        user_id: str,
        details: Mapping[str, Any] | None,
        reason: str,
    ) -> None:
        if event_type is None:
            return
        await self._audit.record(
            event_type,
            DENIED,
            caller,
            user_id=user_id,
            details={
                **(details or {}),
                "reason": reason,
                "actor_user_id": identity.user_id,
                "actor_username": identity.username,
                "session_id": identity.session_id,
            },
        )


def actor(identity: Identity) -> dict[str, str]:
    """Audit details naming who performed an action on an account."""
    return {
        "actor_user_id": identity.user_id,
        "actor_username": identity.username,
        "session_id": identity.session_id,
    }
