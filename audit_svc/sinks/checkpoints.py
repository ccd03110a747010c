"""Signed checkpoints: every N events or T seconds, the chain's head (chain, seq, hash,
time) signed with Ed25519, written as an object to the object-locked checkpoint bucket,
then recorded in PostgreSQL.

The bucket copy is the one that counts: someone who controls the database can rewrite
rows, hashes, the head and the `checkpoints` table, but cannot change or delete a
locked object version, nor sign a new one. Verification reads the bucket.

Object `checkpoints/<chain>/<seq, 20 digits>.json`:
    {"checkpoint": {"v":1,"chain_id":..,"seq":..,"hash":<hex>,"checkpoint_time":<RFC 3339>},
     "key_id": <16 hex>, "signature": <base64 of Ed25519 over canonical(checkpoint)>}
canonical(x) = JSON with sorted keys, no spaces, UTF-8.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit_svc.integrity.signer import Signer, Verifier
from audit_svc.sinks.objects import ObjectStore
from audit_svc.storage.protocols import CheckpointRow, SinkStore

log = logging.getLogger(__name__)

PREFIX = "checkpoints/"
KEYS_PREFIX = "keys/"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint whose signature has been checked."""

    chain_id: str
    seq: int
    hash: bytes
    checkpoint_time: datetime


def object_key(chain_id: str, seq: int) -> str:
    return f"{PREFIX}{chain_id}/{seq:020d}.json"


def signed_bytes(chain_id: str, seq: int, digest: bytes, at: datetime) -> bytes:
    """What the signature covers."""
    body = {
        "v": 1,
        "chain_id": chain_id,
        "seq": seq,
        "hash": digest.hex(),
        "checkpoint_time": at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def encode(row: CheckpointRow) -> bytes:
    """The object body of a checkpoint."""
    doc = {
        "checkpoint": json.loads(
            signed_bytes(row.chain_id, row.seq, row.hash, row.checkpoint_time)
        ),
        "key_id": row.key_id,
        "signature": base64.b64encode(row.signature).decode(),
    }
    return json.dumps(doc, sort_keys=True, indent=1).encode()


class BadCheckpoint(ValueError):
    """An object in the checkpoint bucket that is not a validly signed checkpoint."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key


def decode(key: str, data: bytes, verifier: Verifier) -> Checkpoint:
    """The checkpoint in an object; BadCheckpoint if malformed or the signature fails."""
    try:
        doc: dict[str, Any] = json.loads(data)
        body = doc["checkpoint"]
        cp = Checkpoint(
            str(body["chain_id"]),
            int(body["seq"]),
            bytes.fromhex(body["hash"]),
            datetime.fromisoformat(body["checkpoint_time"]),
        )
        signature = base64.b64decode(doc["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadCheckpoint(key, f"malformed: {exc}") from None
    message = signed_bytes(cp.chain_id, cp.seq, cp.hash, cp.checkpoint_time)
    if not verifier.verify(signature, message):
        raise BadCheckpoint(key, "signature does not verify with the published key")
    return cp


async def load_checkpoints(
    store: ObjectStore, chain_id: str, verifier: Verifier, from_seq: int = 0
) -> list[Checkpoint]:
    """The chain's checkpoints in the bucket with seq >= from_seq, signatures checked,
    in seq order."""
    after = object_key(chain_id, from_seq - 1) if from_seq > 1 else ""
    found = []
    for key in await store.keys(f"{PREFIX}{chain_id}/", start_after=after):
        found.append(decode(key, await store.get(key), verifier))
    return sorted(found, key=lambda c: c.seq)


class Checkpointer:
    """The checkpoint sink of one chain; `step` writes one when one is due."""

    NAME = "checkpoints"

    def __init__(
        self,
        state: SinkStore,
        chain_id: str,
        store: ObjectStore,
        signer: Signer,
        *,
        every_events: int,
        interval_seconds: float,
    ) -> None:
        self._state = state
        self.chain_id = chain_id
        self._store = store
        self._signer = signer
        self._every = every_events
        self._interval = interval_seconds
        self._last_time = time.monotonic()
        self._key_published = False

    async def step(self) -> bool:
        """Checkpoint the head if N events or T seconds have passed since the last one."""
        if not self._key_published:
            pem = self._signer.public_pem.encode()
            await self._store.put(f"{KEYS_PREFIX}{self._signer.key_id}.pem", pem, "text/plain")
            self._key_published = True
        head_seq, head_hash = await self._state.chain_state(self.chain_id) or (0, b"")
        last = await self._state.last_checkpoint(self.chain_id)
        last_seq = last.seq if last else 0
        waited = time.monotonic() - self._last_time
        if head_seq <= last_seq or (head_seq - last_seq < self._every and waited < self._interval):
            return False
        await self.checkpoint(head_seq, head_hash)
        return False

    async def checkpoint(self, seq: int, digest: bytes) -> CheckpointRow:
        """Sign (seq, hash), write it to the bucket, then record it in PostgreSQL."""
        at = datetime.now(UTC)
        row = CheckpointRow(
            self.chain_id,
            seq,
            digest,
            at,
            self._signer.key_id,
            self._signer.sign(signed_bytes(self.chain_id, seq, digest, at)),
            object_key(self.chain_id, seq),
        )
        await self._store.put(row.object_key, encode(row), "application/json")
        await self._state.add_checkpoint(row)
        self._last_time = time.monotonic()
        log.info("checkpoint %s seq %d written to %s", self.chain_id, seq, row.object_key)
        return row
