"""Access tokens of the user-service, verified with its public key (EdDSA or ES256;
never a shared secret): signature, algorithm, expiry, audience and issuer.

The key file is read when it changes (a new key is picked up without a restart); in
dev mode it may appear after the audit-service starts (the user-service writes it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from audit_svc.access.authn import TokenClaims
from audit_svc.errors import Unauthenticated

# Asymmetric only: a token signed with HS256 (or `none`) is refused before its
# signature is even looked at.
ALGORITHMS = {ed25519.Ed25519PublicKey: "EdDSA", ec.EllipticCurvePublicKey: "ES256"}


class JwtVerifier:
    """Verifies tokens against the public key in one PEM file."""

    def __init__(self, public_key_file: str, *, audience: str, issuer: str) -> None:
        self._path = Path(public_key_file)
        self._audience = audience
        self._issuer = issuer
        self._stamp: tuple[int, int] | None = None
        self._key: Any = None
        self._algorithm = ""

    def _current_key(self) -> tuple[Any, str]:
        try:
            stat = os.stat(self._path)
        except OSError:
            raise Unauthenticated(
                f"no token key yet ({self._path} is missing)", reason="TOKENS_NOT_ACCEPTED"
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            key = load_pem_public_key(self._path.read_bytes())
            algorithm = next((a for kind, a in ALGORITHMS.items() if isinstance(key, kind)), "")
            if not algorithm:
                raise Unauthenticated(
                    f"{self._path} is not an Ed25519 or EC P-256 key", reason="TOKENS_NOT_ACCEPTED"
                )
            self._key, self._algorithm, self._stamp = key, algorithm, stamp
        return self._key, self._algorithm

    def verify(self, token: str) -> TokenClaims:
        key, algorithm = self._current_key()
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not valid", reason="INVALID_TOKEN") from None
        permissions = payload.get("permissions", [])
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise Unauthenticated("the bearer token is not valid", reason="INVALID_TOKEN")
        return TokenClaims(str(payload["sub"]), frozenset(permissions))
