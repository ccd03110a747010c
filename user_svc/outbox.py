"""The mail outbox: messages for the mailer, sealed, short-lived, in Redis.

A reset request puts one message in the outbox: only what a mail sender needs (the
address, the reset token, when it expires), sealed with AES-256-GCM under
`USER_MAIL_ENCRYPTION_KEY` and bound to its message id. Redis holds, under the outbox
key `K`:
- `K`: a list of message ids, newest last (a mailer pops from the left);
- `K:<id>`: the sealed message, which expires after `USER_RESET_OUTBOX_TTL_SECONDS`.

Someone who can read Redis sees ids and ciphertext, never a usable token; the database
keeps only the token's SHA-256. The mailer holds the same key and calls `open_message`
(README.md, "The production mailer").
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12
_CONTEXT = b"user-service mail outbox\x00"


def _aead(key: bytes) -> AESGCM:
    return AESGCM(hashlib.sha256(_CONTEXT + key).digest())


def message_key(outbox_key: str, message_id: str) -> str:
    """The Redis key of one sealed message."""
    return f"{outbox_key}:{message_id}"


class MailBox:
    """Seals outbox messages with the mail key."""

    def __init__(self, key: bytes) -> None:
        self._aead = _aead(key)

    def seal(self, message: dict[str, Any]) -> tuple[str, bytes]:
        """A new message id and the sealed message, bound to that id."""
        message_id = uuid.uuid4().hex
        nonce = os.urandom(_NONCE)
        body = json.dumps(message, separators=(",", ":")).encode()
        return message_id, nonce + self._aead.encrypt(nonce, body, message_id.encode())


def open_message(key: bytes, message_id: str, sealed: bytes) -> dict[str, Any]:
    """What the mailer sends: the message sealed under `key` for `message_id`;
    ValueError when the key, the id or the bytes are not the ones it was sealed with."""
    try:
        body = _aead(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], message_id.encode())
    except InvalidTag:
        raise ValueError("the message does not open with this key and id") from None
    opened: dict[str, Any] = json.loads(body)
    return opened
