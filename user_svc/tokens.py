"""Signed JWT access tokens, opaque one-time tokens (stored only as hashes), and
signed page tokens.

Access tokens are EdDSA (Ed25519): other services (the audit-service) verify them with
the public key alone, and no secret is shared between services. The key pair is
derived from the service's signing secret (USER_JWT_SIGNING_KEY, or the development
key), so configuring it stays one setting."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "user-service"
AUDIENCE = "auditmesh"
ALGORITHM = "EdDSA"
REFRESH_PREFIX = "rt_"
RESET_PREFIX = "pr_"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says."""

    user_id: str
    username: str
    session_id: str
    roles: tuple[str, ...]
    # The account's permissions at issue time (`audit:read` lets it read audit logs).
    permissions: tuple[str, ...] = ()


def signing_key(secret: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key of access tokens, derived from the signing secret."""
    seed = hashlib.sha256(b"user-service access tokens\x00" + secret).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    """What verifiers are given (AUDIT_TOKEN_PUBLIC_KEY_FILE)."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class TokenError(Exception):
    """The token is malformed, forged or expired (never says which to callers)."""


class AccessTokens:
    """EdDSA JWTs: `sub` user id, `sid` session, `roles` and `permissions` at issue time."""

    def __init__(self, key: Ed25519PrivateKey, ttl_seconds: int) -> None:
        self._key = key
        self._public = key.public_key()
        self.ttl_seconds = ttl_seconds

    @property
    def public_key_pem(self) -> bytes:
        return public_key_pem(self._key)

    def issue(self, claims: AccessClaims) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": claims.user_id,
            "sid": claims.session_id,
            "preferred_username": claims.username,
            "roles": list(claims.roles),
            "permissions": list(claims.permissions),
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(type(exc).__name__) from None
        roles = payload.get("roles", [])
        permissions = payload.get("permissions", [])
        for claim in (roles, permissions):
            if not isinstance(claim, list) or not all(isinstance(r, str) for r in claim):
                raise TokenError("bad roles or permissions claim")
        return AccessClaims(
            user_id=str(payload["sub"]),
            username=str(payload.get("preferred_username", "")),
            session_id=str(payload["sid"]),
            roles=tuple(roles),
            permissions=tuple(permissions),
        )


def new_opaque(prefix: str) -> str:
    """A fresh 256-bit token, URL-safe, with a prefix that says what it is."""
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """What the database keeps of a token: its SHA-256 (the token has 256 bits of
    entropy, so a fast hash is enough)."""
    return hashlib.sha256(token.encode()).digest()


class PageTokens:
    """Opaque, tamper-proof keyset positions: (create_time, user_id) signed with HMAC."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"user-service page tokens\x00" + key).digest()

    def encode(self, create_time: datetime, user_id: str) -> str:
        body = json.dumps([create_time.isoformat(), user_id], separators=(",", ":")).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def decode(self, token: str) -> tuple[datetime, str]:
        """The position, or ValueError when the token is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise ValueError("not a page token") from None
        mac, body = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()[:16]):
            raise ValueError("not a page token")
        when, user_id = json.loads(body)
        return datetime.fromisoformat(when), str(user_id)
