"""The Ed25519 key that signs checkpoints: from settings, or made once and kept.

Where the key comes from, in order: AUDIT_SIGNING_KEY (the base64 of the 32-byte
private seed); else the PEM file AUDIT_SIGNING_KEY_FILE; if that file does not exist,
a new key is generated, written there (mode 0600) with a loud warning, and found
there again on every restart. The private key never goes into PostgreSQL: someone who
controls the database must not be able to sign a rewritten chain. The public key is
published (GetPublicKey, and `keys/<key_id>.pem` in the checkpoint bucket).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from meshkit.note import ed25519_valid

log = logging.getLogger(__name__)


class SigningKeyError(ValueError):
    """The configured key cannot be read."""


@dataclass(frozen=True)
class Verifier:
    """Checks checkpoint signatures with a public key."""

    public_key: Ed25519PublicKey

    @property
    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    @property
    def key_id(self) -> str:
        """First 16 hex digits of the SHA-256 of the raw public key."""
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return hashlib.sha256(raw).hexdigest()[:16]

    def verify(self, signature: bytes, message: bytes) -> bool:
        return ed25519_valid(self.public_key, signature, message)

    @classmethod
    def from_pem(cls, pem: str) -> Verifier:
        key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError("not an Ed25519 public key")
        return cls(key)


@dataclass(frozen=True)
class Signer(Verifier):
    """Signs checkpoints."""

    private_key: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @classmethod
    def of(cls, private_key: Ed25519PrivateKey) -> Signer:
        return cls(private_key.public_key(), private_key)


def load_signer(key_b64: str, key_file: str) -> Signer:
    """The signing key as the module docstring says; SigningKeyError if it is unreadable."""
    if key_b64:
        try:
            seed = base64.b64decode(key_b64, validate=True)
            return Signer.of(Ed25519PrivateKey.from_private_bytes(seed))
        except (binascii.Error, ValueError) as exc:
            raise SigningKeyError(
                f"AUDIT_SIGNING_KEY is not a base64 32-byte seed: {exc}"
            ) from None
    path = Path(key_file)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{path} does not hold an Ed25519 private key")
        return Signer.of(key)
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    signer = Signer.of(key)
    log.warning(
        "NO CHECKPOINT SIGNING KEY CONFIGURED: generated Ed25519 key %s and stored it in %s. "
        "Back it up and keep it off the database host; set AUDIT_SIGNING_KEY or "
        "AUDIT_SIGNING_KEY_FILE to use your own.",
        signer.key_id,
        path.resolve(),
    )
    return signer
