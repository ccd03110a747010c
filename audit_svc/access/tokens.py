"""Access tokens of the user-service, verified with its public key (EdDSA or ES256;
never a shared secret): signature, algorithm, expiry, audience and issuer."""

from __future__ import annotations

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
    """Verifies tokens against one public key (PEM file)."""

    def __init__(self, public_key_file: str, *, audience: str, issuer: str) -> None:
        key = load_pem_public_key(Path(public_key_file).read_bytes())
        algorithm = next((a for kind, a in ALGORITHMS.items() if isinstance(key, kind)), None)
        if algorithm is None:
            raise ValueError(f"{public_key_file}: the key must be Ed25519 or EC P-256")
        self._key: Any = key
        self._algorithm = algorithm
        self._audience = audience
        self._issuer = issuer

    def verify(self, token: str) -> TokenClaims:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
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
