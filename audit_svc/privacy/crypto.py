"""The keys and ciphers of privacy: the master key file, the data keys it wraps, sealed
values and pseudonyms.

- The master key (32 random bytes, base64, in `AUDIT_PRIVACY_KEY_FILE`) is never used
  directly: HKDF-SHA256 derives from it the key that wraps data keys and one
  pseudonym key per field.
- A data key (AES-256-GCM, 32 random bytes) per subject, stored wrapped (AES-GCM under
  the wrapping key, the subject as associated data).
- A sealed value is `pii1.` + base64url(nonce || ciphertext || tag), the event id and
  field name as associated data, so a value cannot be moved to another event or field;
  the nonce is derived from the same (`nonce`), so a resend seals to the same bytes.
- A pseudonym is HMAC-SHA256 of the clear value under its field's key, 16 bytes; the
  user_id's is text (`uid:` + base64url), stored in place of the id.

A file `make up` generates carries the development marker (meshkit.secrets) and is
refused outside dev mode.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from meshkit.secrets import DEV_MARKER

SEALED = "pii1."
SUBJECT_PREFIX = "uid:"
ERASED = "[erased]"
NONCE = 12
TOKEN_BYTES = 16
PSEUDONYM_FIELDS = ("user_id", "username", "ip_address")


class MasterKeyError(ValueError):
    """The master key file is missing, unreadable or not a key."""


class Unreadable(Exception):
    """A sealed value did not open with its key (altered, or another key's)."""


def generate_key_file(path: Path, *, dev: bool) -> None:
    """Write a new random master key to `path` (0600); `dev` marks it a dev value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = base64.b64encode(os.urandom(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{DEV_MARKER}:{text}\n" if dev else text + "\n")


def read_key_file(path: Path | str) -> tuple[bytes, bool]:
    """(the 32-byte master key, whether it is a development key)."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise MasterKeyError(f"cannot read the privacy master key {path}: {exc}") from None
    dev = text.startswith(DEV_MARKER + ":")
    try:
        key = base64.b64decode(text.removeprefix(DEV_MARKER + ":"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise MasterKeyError(f"{path} is not a privacy master key (32 bytes, base64)")
    return key, dev


def _derive(master: bytes, info: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=info.encode()).derive(master)


@dataclass(frozen=True, slots=True)
class Keys:
    """What the master key derives: the wrapping cipher and the pseudonym keys."""

    wrap: AESGCM
    pseudonym: dict[str, bytes]

    @classmethod
    def from_master(cls, master: bytes) -> Keys:
        return cls(
            AESGCM(_derive(master, "auditmesh privacy v1 wrap")),
            {f: _derive(master, f"auditmesh privacy v1 pseudonym {f}") for f in PSEUDONYM_FIELDS},
        )

    def new_data_key(self, subject: str) -> tuple[bytes, bytes]:
        """(a new data key, the same key wrapped for storage)."""
        key = AESGCM.generate_key(256)
        nonce = os.urandom(NONCE)
        return key, nonce + self.wrap.encrypt(nonce, key, subject.encode())

    def unwrap(self, subject: str, wrapped: bytes) -> bytes:
        try:
            return self.wrap.decrypt(wrapped[:NONCE], wrapped[NONCE:], subject.encode())
        except InvalidTag:
            raise Unreadable(f"the data key of {subject} does not open") from None

    def token(self, field: str, value: str) -> bytes:
        """The pseudonym of a clear value of `field` (cached: values repeat)."""
        return _token(self.pseudonym[field], value)

    def subject(self, user_id: str) -> str:
        """The pseudonym a user_id is stored as; '' for no user."""
        return _subject(self.pseudonym["user_id"], user_id) if user_id else ""


@functools.lru_cache(maxsize=65536)
def _token(key: bytes, value: str) -> bytes:
    return hmac.digest(key, value.encode(), "sha256")[:TOKEN_BYTES]


@functools.lru_cache(maxsize=65536)
def _subject(key: bytes, user_id: str) -> str:
    digest = hmac.digest(key, user_id.encode(), "sha256")[:TOKEN_BYTES]
    return SUBJECT_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_subject(value: str) -> bool:
    return value.startswith(SUBJECT_PREFIX)


def nonce_key(data_key: bytes) -> bytes:
    """The key a data key's nonces are derived with (never the data key itself)."""
    return hashlib.sha256(b"auditmesh privacy v1 nonce" + data_key).digest()


def nonce(key: bytes, aad: bytes, plaintext: str) -> bytes:
    """The nonce of a sealed value: HMAC of its event id and field (its `aad`) and of
    the value itself (a synthetic IV, as in AES-GCM-SIV). A resend of the same event
    seals to the same bytes, so it is recognised as the same content; an event id
    reused for other content gets another nonce, so no nonce ever seals two
    plaintexts under one key, even where the id is stored twice (partitions)."""
    return hmac.digest(key, aad + b"\0" + plaintext.encode(), "sha256")[:NONCE]


def seal(cipher: AESGCM, nonce: bytes, plaintext: str, aad: bytes) -> str:
    """A sealed value (see the module docstring)."""
    body = nonce + cipher.encrypt(nonce, plaintext.encode(), aad)
    return SEALED + base64.urlsafe_b64encode(body).rstrip(b"=").decode()


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED)


def open_sealed(cipher: AESGCM, value: str, aad: bytes) -> str:
    """The clear text of a sealed value; Unreadable if it does not open."""
    text = value[len(SEALED) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return cipher.decrypt(raw[:NONCE], raw[NONCE:], aad).decode()
    except (InvalidTag, binascii.Error, ValueError, UnicodeDecodeError):
        raise Unreadable("a sealed value does not open") from None


def aad(event_id: str, field: str) -> bytes:
    """The associated data of a field of an event (its id's standard text, the field)."""
    return f"{event_id}/{field}".encode()
