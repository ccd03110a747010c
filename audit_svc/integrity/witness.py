"""A C2SP tlog-witness (c2sp.org/tlog-witness): cosigns a log's checkpoint only if it
is consistent with the last one it cosigned for that origin, so a log cannot show
two different histories (a fork) to two parties without one of them noticing.

`add_checkpoint` is the protocol's one call, without HTTP: the request body is

    old <size the caller believes the witness has>
    <base64 consistency proof hash>      (zero or more lines)
    <blank line>
    <the signed checkpoint note>

and the answer is an HTTP status with its body: 200 and the cosignature line
(tlog-cosignature/v1); 400 malformed; 403 not signed by a known log key; 404 unknown
origin; 409 `old` is not the witness's size (body: its size, `text/x.tlog.size`), or
same size with a different root (a fork); 422 the proof does not verify.

State: origin -> (size, root) of the last cosigned checkpoint, written to a JSON
file atomically *before* the cosignature is returned.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from meshkit import merkle, note

SIZE_CONTENT_TYPE = "text/x.tlog.size"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP status, a body and its content type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class WitnessState:
    """The last cosigned (size, root) per origin, kept in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.trees: dict[str, tuple[int, bytes]] = {}
        if path.exists():
            doc = json.loads(path.read_text())
            self.trees = {o: (int(t["size"]), base64.b64decode(t["root"])) for o, t in doc.items()}

    def save(self) -> None:
        doc = {
            o: {"size": s, "root": base64.b64encode(r).decode()} for o, (s, r) in self.trees.items()
        }
        tmp = self.path.with_suffix(".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as out:
            json.dump(doc, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


class Witness:
    """Cosigns checkpoints of the logs whose keys it is given."""

    def __init__(
        self, signer: note.NoteSigner, logs: list[note.NoteVerifier], state: WitnessState
    ) -> None:
        self.signer = signer
        self.logs = logs
        self.state = state
        self._lock = asyncio.Lock()

    async def add_checkpoint(self, body: bytes) -> Answer:
        """The tlog-witness add-checkpoint call; see the module docstring."""
        try:
            old, proof, signed = _parse_request(body)
            parsed = note.parse(signed)
            cp = note.Checkpoint.parse(parsed.text)
        except (note.NoteError, ValueError, binascii.Error) as exc:
            return Answer(400, f"malformed request: {exc}\n".encode())
        keys = [k for k in self.logs if cp.origin == k.name or cp.origin.startswith(k.name + "/")]
        if not keys:
            return Answer(404, f"unknown origin {cp.origin}\n".encode())
        if not any(parsed.signed_by(k) for k in keys):
            return Answer(403, b"checkpoint is not signed by a known log key\n")
        async with self._lock:
            size, root = self.state.trees.get(cp.origin, (0, merkle.EMPTY_ROOT))
            if old != size:
                return Answer(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE)
            if cp.size < size:
                return Answer(400, b"checkpoint is older than the witness's\n")
            if cp.size == size and size and cp.root_hash != root:
                return Answer(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE)  # a fork
            try:
                merkle.verify_consistency(size, cp.size, root, cp.root_hash, proof)
            except merkle.ProofError as exc:
                return Answer(422, f"not consistent with size {size}: {exc}\n".encode())
            self.state.trees[cp.origin] = (cp.size, cp.root_hash)
            self.state.save()
        line = self.signer.cosign_line(parsed.text, int(time.time()))
        return Answer(200, line.encode())


def _parse_request(body: bytes) -> tuple[int, list[bytes], bytes]:
    head, sep, signed = body.partition(b"\n\n")
    if not sep:
        raise ValueError("no blank line after the proof")
    lines = head.decode().split("\n")
    if not lines[0].startswith("old ") or not lines[0][4:].isdigit():
        raise ValueError("the first line must be `old <size>`")
    proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    if any(len(h) != 32 for h in proof):
        raise ValueError("proof hashes are 32 bytes")
    return int(lines[0][4:]), proof, signed


def request_body(old_size: int, proof: list[bytes], signed_note: bytes) -> bytes:
    """An add-checkpoint request body (the client's side)."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n").encode() + signed_note
