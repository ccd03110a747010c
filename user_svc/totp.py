"""TOTP (RFC 6238) codes and the encryption of TOTP secrets at rest (AES-256-GCM)."""

from __future__ import annotations

import hashlib
import os
import time

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ISSUER = "auditmesh"
STEP_SECONDS = 30
_NONCE = 12


class SecretBox:
    """Seals TOTP secrets with AES-256-GCM, bound to the account id (associated data),
    so a sealed secret copied to another account does not open."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"user-service totp secrets\x00" + key).digest())

    def seal(self, secret: str, user_id: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret.encode(), user_id.encode())

    def open(self, sealed: bytes, user_id: str) -> str:
        """The secret; ValueError if it was sealed with another key or for another account."""
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], user_id.encode()).decode()
        except InvalidTag:
            raise ValueError("TOTP secret does not open with the current key") from None


def new_secret() -> str:
    """A random base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=ISSUER
    )


def matching_step(secret: str, code: str, after_step: int, window: int) -> int | None:
    """The time step whose code is `code`, at most `window` steps from now (clock
    drift) and later than `after_step` (a code is good once: RFC 6238 section 5.2);
    None if there is none."""
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int(time.time() // STEP_SECONDS)
    for step in range(current - window, current + window + 1):
        if step > after_step and pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None
