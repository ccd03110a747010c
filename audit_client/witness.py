"""A client-side witness: the client keeps the newest checkpoint of the audit log it
has checked and, on the next one, demands a consistency proof (RFC 9162) that the old
tree is a prefix of the new one, so a log that rewrites or drops events the client
already saw committed is caught by the client itself, not only by an auditor.

A checkpoint must be signed (C2SP signed-note) by the log's pinned Ed25519 key
(`log_public_key_file`, the PEM that GetPublicKey and the bucket's `keys/` publish).
What it trusts is kept per origin (`<log origin>/<chain id>`) in a small JSON state
file, written atomically, so the check carries across restarts. A failure raises
`LogInconsistent` with a reason: BAD_SIGNATURE, FORKED (same size, another root),
SHRUNK (a smaller tree than one already seen), INCONSISTENT (the proof does not tie
the trees).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from audit_client.errors import AuditClientError, SettingsError
from meshkit import merkle, note

log = logging.getLogger(__name__)


class LogInconsistent(AuditClientError):
    """The audit log's newest checkpoint does not extend what this client trusted."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class CheckpointSource(Protocol):
    """Where checkpoints and consistency proofs come from (the gRPC transport)."""

    async def checkpoint(self) -> bytes: ...

    async def consistency_proof(
        self, chain_id: str, old_size: int, new_size: int
    ) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class Trusted:
    """A checkpoint this client checked: its origin, tree size and root."""

    origin: str
    size: int
    root_hash: bytes


def load_public_key(path: str) -> Ed25519PublicKey:
    """The log's pinned checkpoint key from a PEM file; SettingsError if it is not one."""
    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SettingsError([f"cannot read the log's public key from {path}: {exc}"]) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SettingsError([f"{path} is not an Ed25519 public key"])
    return key


class LogWitness:
    """Checks each new checkpoint against the last one trusted (module docstring)."""

    def __init__(
        self, source: CheckpointSource, public_key: Ed25519PublicKey, state_file: Path | None
    ) -> None:
        self._source = source
        self._key = public_key
        self._state_file = state_file
        self._trusted: dict[str, Trusted] = self._load()

    def trusted(self, origin: str) -> Trusted | None:
        """What this witness trusts for `origin`, if anything."""
        return self._trusted.get(origin)

    async def check(self) -> Trusted:
        """Fetch the newest checkpoint, prove it extends the trusted one, trust it."""
        data = await self._source.checkpoint()
        try:
            signed = note.parse(data)
            if note.signer_name(signed, self._key) is None:
                raise note.NoteError("not signed by the pinned log key")
            cp = note.Checkpoint.parse(signed.text)
        except note.NoteError as exc:
            raise LogInconsistent("BAD_SIGNATURE", f"checkpoint refused: {exc}") from None
        new = Trusted(cp.origin, cp.size, cp.root_hash)
        old = self._trusted.get(cp.origin)
        if old is not None:
            await self._prove(old, new)
        self._trusted[cp.origin] = new
        self._save()
        return new

    async def _prove(self, old: Trusted, new: Trusted) -> None:
        where = f"{new.origin}: trusted size {old.size}, served size {new.size}"
        if new.size < old.size:
            raise LogInconsistent("SHRUNK", f"{where}; the log lost events it had signed")
        if new.size == old.size:
            if new.root_hash != old.root_hash:
                raise LogInconsistent("FORKED", f"{where}; same size, another root")
            return
        chain_id = new.origin.rpartition("/")[2]
        proof = await self._source.consistency_proof(chain_id, old.size, new.size)
        try:
            merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        except merkle.ProofError as exc:
            raise LogInconsistent("INCONSISTENT", f"{where}; {exc}") from None

    def _load(self) -> dict[str, Trusted]:
        if self._state_file is None or not self._state_file.exists():
            return {}
        raw = json.loads(self._state_file.read_text())
        return {
            origin: Trusted(origin, int(v["size"]), base64.b64decode(v["root_hash"]))
            for origin, v in raw.items()
        }

    def _save(self) -> None:
        if self._state_file is None:
            return
        body = {
            t.origin: {"size": t.size, "root_hash": base64.b64encode(t.root_hash).decode()}
            for t in self._trusted.values()
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self._state_file)
