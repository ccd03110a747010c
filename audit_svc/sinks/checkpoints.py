"""Signed checkpoints: every N events or T seconds of activity, the chain's Merkle tree
(size, root) and head hash signed with Ed25519, written as an object to the
object-locked checkpoint bucket, then recorded in PostgreSQL.

The bucket copy is the one that counts: someone who controls the database can rewrite
rows, hashes, the head and the `checkpoints` table, but cannot change or delete a
locked object version, nor sign a new one. Verification reads the bucket.

Object `checkpoints/<chain>/<seq, 20 digits>.note`: a C2SP tlog-checkpoint signed as a
C2SP signed-note (meshkit.note), which Go's sumdb/note verifies:

    <origin, e.g. auditmesh.local/chain-1>
    <tree size = seq>
    <base64 Merkle root>
    chain-hash <hex hash of the event at seq>
    time <checkpoint time, RFC 3339>

    — <key name> <base64(key ID || signature)>

The extension lines tie the note to the hash chain (so every check made with the older
form still works). Older objects, `<seq>.json`, hold the hash chain head only:
    {"checkpoint": {"v":1,"chain_id":..,"seq":..,"hash":<hex>,"checkpoint_time":<RFC 3339>},
     "key_id": <16 hex>, "signature": <base64 of Ed25519 over canonical(checkpoint)>}
canonical(x) = JSON with sorted keys, no spaces, UTF-8. Those are still read; with the
Merkle tree off (AUDIT_MERKLE_TREE=false) they are still written.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit_svc.integrity.signer import Signer, Verifier
from audit_svc.sinks.objects import ObjectStore
from audit_svc.storage.protocols import CheckpointRow, SinkStore, TreeStore
from meshkit import note as notes

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
    # The C2SP form: the Merkle root at size `seq` and the signed note; empty for
    # the older JSON objects.
    root_hash: bytes = b""
    note: bytes = b""


def object_key(chain_id: str, seq: int, suffix: str = ".note") -> str:
    return f"{PREFIX}{chain_id}/{seq:020d}{suffix}"


def origin_of(key_name: str, chain_id: str) -> str:
    """A chain's log origin: the key name (AUDIT_LOG_ORIGIN) and the chain id."""
    return f"{key_name}/{chain_id}"


def checkpoint_body(
    origin: str, size: int, root_hash: bytes, head_hash: bytes, at: datetime
) -> notes.Checkpoint:
    """The tlog-checkpoint of a chain's tree, with its hash-chain extension lines."""
    stamp = at.astimezone(UTC).isoformat(timespec="microseconds")
    return notes.Checkpoint(
        origin, size, root_hash, (f"chain-hash {head_hash.hex()}", f"time {stamp}")
    )


def read_note(key: str, data: bytes, verifier: Verifier) -> Checkpoint:
    """A C2SP checkpoint object; BadCheckpoint unless the log key signed it."""
    try:
        note = notes.parse(data)
        body = notes.Checkpoint.parse(note.text)
        ext = dict(line.split(" ", 1) for line in body.extensions)
        cp = Checkpoint(
            body.origin.rsplit("/", 1)[-1], body.size, bytes.fromhex(ext["chain-hash"]),
            datetime.fromisoformat(ext["time"]), body.root_hash, data,
        )  # fmt: skip
    except (notes.NoteError, ValueError, KeyError) as exc:
        raise BadCheckpoint(key, f"malformed: {exc}") from None
    if notes.signer_name(note, verifier.public_key) is None:
        raise BadCheckpoint(key, "signature does not verify with the published key")
    return cp


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


AfterCheckpoint = Callable[[CheckpointRow], Awaitable[None]]


class BadCheckpoint(ValueError):
    """An object in the checkpoint bucket that is not a validly signed checkpoint."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key


def decode(key: str, data: bytes, verifier: Verifier) -> Checkpoint:
    """The checkpoint in an object; BadCheckpoint if malformed or the signature fails."""
    if key.endswith(".note"):
        return read_note(key, data, verifier)
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
        if key.endswith((".note", ".json")):  # not the `.cosigned` copies
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
        key_name: str = "auditmesh.local",
        tree: TreeStore | None = None,
    ) -> None:
        self._state = state
        self._tree = tree  # None: the Merkle tree is off, checkpoints are the JSON form
        self.origin = origin_of(key_name, chain_id)
        self._note_signer = notes.NoteSigner(key_name, signer.private_key)
        self.after_checkpoint: list[AfterCheckpoint] = []
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

    async def seal(self, seq: int, digest: bytes) -> None:
        """A signed checkpoint covering seq: made at (seq, digest) unless the last
        checkpoint is at or beyond it (before the archive drops a partition)."""
        last = await self._state.last_checkpoint(self.chain_id)
        if last is None or last.seq < seq:
            await self.checkpoint(seq, digest)

    async def checkpoint(self, seq: int, digest: bytes) -> CheckpointRow:
        """Sign the tree at size `seq` (head hash `digest`), write it to the bucket,
        record it in PostgreSQL, then hand it to `after_checkpoint` (the witnesses)."""
        at = datetime.now(UTC)
        if self._tree is not None:
            root_hash = await self._tree.root_at(self.chain_id, seq)
            body = checkpoint_body(self.origin, seq, root_hash, digest, at)
            note = notes.sign(body.text(), self._note_signer)
            row = CheckpointRow(
                self.chain_id, seq, digest, at, self._signer.key_id,
                note.signatures[0].signature, object_key(self.chain_id, seq), root_hash,
                note.render().decode(),
            )  # fmt: skip
            await self._store.put(row.object_key, row.note.encode(), "text/plain; charset=utf-8")
        else:
            row = CheckpointRow(
                self.chain_id, seq, digest, at, self._signer.key_id,
                self._signer.sign(signed_bytes(self.chain_id, seq, digest, at)),
                object_key(self.chain_id, seq, ".json"),
            )  # fmt: skip
            await self._store.put(row.object_key, encode(row), "application/json")
        await self._state.add_checkpoint(row)
        self._last_time = time.monotonic()
        log.info("checkpoint %s seq %d written to %s", self.chain_id, seq, row.object_key)
        for hook in self.after_checkpoint:
            try:
                await hook(row)
            except Exception:
                log.exception("after-checkpoint step failed for %s seq %d", self.chain_id, seq)
        return row
