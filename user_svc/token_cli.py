"""`python -m user_svc token --role audit.reader`: an access token for reading audit
logs at the audit-service, signed with this service's key (the same key as sign-in
tokens), for an operator or a script; and `python -m user_svc public-key`, the PEM the
audit-service verifies tokens with (AUDIT_TOKEN_PUBLIC_KEY_FILE).

A CLI token has no session here: the user-service's own API refuses it; verifiers
that check signature, expiry and audience (the audit-service) accept it until it
expires. To read as an account instead, grant it `audit:read` and sign in
(`/api/v1/auth/login`): its access token carries the permission.
"""

from __future__ import annotations

from user_svc.keys import load_keys
from user_svc.settings import Settings
from user_svc.storage.pg_store import PgUserStore
from user_svc.storage.postgres import create_pool
from user_svc.tokens import AccessClaims, AccessTokens, public_key_pem, signing_key

# Audit roles, and the account permissions that grant them at the audit-service.
ROLE_PERMISSIONS = {
    "audit.reader": ("audit:read",),
    "audit.pii_reader": ("audit:read", "audit:pii_read"),
    "audit.admin": ("audit:read", "audit:admin"),
}


async def _key(settings: Settings) -> bytes:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        return (await load_keys(PgUserStore(pool), settings)).jwt_signing
    finally:
        await pool.close()


async def mint(settings: Settings, role: str, subject: str, ttl_seconds: int) -> str:
    """A token naming `subject` with the permissions of `role`."""
    tokens = AccessTokens(signing_key(await _key(settings)), ttl_seconds)
    claims = AccessClaims(
        user_id=f"cli:{subject}",
        username=subject,
        session_id="cli",
        roles=(),
        permissions=ROLE_PERMISSIONS[role],
    )
    return tokens.issue(claims)


async def public_key(settings: Settings) -> str:
    """The PEM of the tokens' public key."""
    return public_key_pem(signing_key(await _key(settings))).decode()
