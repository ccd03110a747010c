"""Integrity reads: the signed checkpoints (a page at a time) and the public key that
external verifiers check them with. Plain domain calls; no grpc here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from audit_svc.errors import InvalidArgument, NotFound
from audit_svc.model import FieldViolation
from audit_svc.sinks import Sinks
from audit_svc.storage.protocols import CheckpointRow, SinkStore

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_MAC_SIZE = 12


@dataclass(frozen=True, slots=True)
class CheckpointPage:
    """One page of checkpoints and the token of the next (empty at the end)."""

    checkpoints: list[CheckpointRow]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class PublicKey:
    """What an external verifier needs to check checkpoint objects."""

    algorithm: str
    key_id: str
    public_key_pem: str
    checkpoint_bucket: str


async def list_checkpoints(
    state: SinkStore, chain_id: str, page_size: int, page_token: str, key: bytes
) -> CheckpointPage:
    """Checkpoints by (chain, seq), of one chain or all; AIP-158 paging."""
    if page_size < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    after = _decode(page_token, chain_id, key) if page_token else ("", 0)
    rows = await state.list_checkpoints(chain_id, after, size + 1)
    token = ""
    if len(rows) > size:
        rows = rows[:size]
        token = _encode((rows[-1].chain_id, rows[-1].seq), chain_id, key)
    return CheckpointPage(rows, token)


def public_key(sinks: Sinks | None, bucket: str) -> PublicKey:
    """The checkpoint signing key's public half; NotFound when checkpoints are off."""
    if sinks is None or sinks.signer is None:
        raise NotFound(
            "checkpoints are not enabled on this replica (AUDIT_S3_ENDPOINT is empty)",
            metadata={"setting": "AUDIT_S3_ENDPOINT"},
        )
    return PublicKey("Ed25519", sinks.signer.key_id, sinks.signer.public_pem, bucket)


def _encode(position: tuple[str, int], chain_id: str, key: bytes) -> str:
    body = f"{position[1]}\0{position[0]}\0{chain_id}".encode()
    mac = hmac.new(key, b"checkpoints\0" + body, hashlib.sha256).digest()[:_MAC_SIZE]
    return base64.urlsafe_b64encode(mac + body).rstrip(b"=").decode()


def _decode(token: str, chain_id: str, key: bytes) -> tuple[str, int]:
    bad = InvalidArgument(
        [FieldViolation("page_token", "is not a page token of this listing")],
        reason="INVALID_PAGE_TOKEN",
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise bad from None
    mac, body = raw[:_MAC_SIZE], raw[_MAC_SIZE:]
    expected = hmac.new(key, b"checkpoints\0" + body, hashlib.sha256).digest()[:_MAC_SIZE]
    if not hmac.compare_digest(mac, expected):
        raise bad
    seq, chain, for_chain = body.decode().split("\0")
    if for_chain != chain_id:
        raise bad
    return chain, int(seq)
