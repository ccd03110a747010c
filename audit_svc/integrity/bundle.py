"""An audit bundle, and its offline verification (`python -m audit_svc audit`).

A bundle is a folder an auditor can check with nothing but the log's public key:

    manifest.json       chain, origin, the seq range, the head at export, the hash
                        before the range
    events.ndjson       one event per line, each line exactly the event's canonical
                        bytes: the Merkle leaf (and the hash chain's input)
    checkpoints/*.note  the signed checkpoints (C2SP notes, with cosignatures) from
                        the object-locked bucket whose size is in the range, and the
                        newest one
    proofs.json         per checkpoint, the roots of the parts of its tree outside the
                        range (merkle.cover_plan); consistency proofs from the sizes
                        the exporter was asked for (--trusted-size)

`audit` trusts none of the bundle's claims: it checks every signature, recomputes each
checkpoint's root from the leaves, the chain hashes, the seqs, consistency from the
auditor's own trusted checkpoint, and the witness quorum, and stops at the first
failure, which the report names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit_svc.integrity.chain import CANONICAL_VERSION, GENESIS
from meshkit import merkle, note

FORMAT = "auditmesh-bundle/1"
MANIFEST = "manifest.json"
EVENTS = "events.ndjson"
CHECKPOINTS = "checkpoints"
PROOFS = "proofs.json"


class AuditFailure(Exception):
    """The first check that failed: `reason` (UPPER_SNAKE) and what it concerns."""

    def __init__(self, reason: str, detail: str, **where: Any) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.where = where


@dataclass
class Report:
    """What `audit` found; `as_json()` is what the command prints."""

    chain_id: str = ""
    origin: str = ""
    from_seq: int = 0
    to_seq: int = 0
    head_seq: int = 0
    events_checked: int = 0
    checkpoints_checked: list[int] = field(default_factory=list)
    newest: dict[str, Any] = field(default_factory=dict)
    trusted: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failure

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"ok": self.ok}
        doc.update({k: v for k, v in self.__dict__.items() if v or k == "events_checked"})
        return doc


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def checkpoint_name(size: int) -> str:
    return f"{size:020d}.note"


def audit(
    folder: Path,
    log_key: Ed25519PublicKey,
    *,
    witness_keys: list[note.NoteVerifier] | None = None,
    quorum: int | None = None,
    trusted_checkpoint: bytes | None = None,
) -> Report:
    """Verify a bundle; the report's `failure` names the first check that failed."""
    report = Report()
    try:
        _audit(folder, log_key, witness_keys or [], quorum, trusted_checkpoint, report)
    except AuditFailure as exc:
        report.failure = {"reason": exc.reason, "detail": exc.detail, **exc.where}
    return report


def _audit(
    folder: Path,
    log_key: Ed25519PublicKey,
    witness_keys: list[note.NoteVerifier],
    quorum: int | None,
    trusted_checkpoint: bytes | None,
    report: Report,
) -> None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        proofs = json.loads((folder / PROOFS).read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} bundle")
        chain_id, origin = str(manifest["chain_id"]), str(manifest["origin"])
        first, last, head = (
            int(manifest["from_seq"]),
            int(manifest["to_seq"]),
            int(manifest["head_seq"]),
        )
        prev = GENESIS if first == 1 else bytes.fromhex(manifest["prev_hash"])
        lines = (folder / EVENTS).read_bytes().split(b"\n")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditFailure("BUNDLE_MALFORMED", str(exc)) from None
    report.chain_id, report.origin = chain_id, origin
    report.from_seq, report.to_seq, report.head_seq = first, last, head

    checkpoints = [
        _open(path, log_key, origin) for path in sorted((folder / CHECKPOINTS).glob("*.note"))
    ]
    if not checkpoints:
        raise AuditFailure("NO_CHECKPOINT", "the bundle holds no signed checkpoint")

    # The leaves: seqs in order, each the canonical bytes of its own chain and seq.
    leaves: list[bytes] = []
    chain_hashes: dict[int, bytes] = {first - 1: prev}
    for i, line in enumerate(lines[:-1] if lines[-1:] == [b""] else lines):
        seq = first + i
        try:
            doc = json.loads(line)
        except ValueError:
            raise AuditFailure("EVENT_MALFORMED", "not a JSON line", seq=seq) from None
        if doc.get("seq") != seq:
            raise AuditFailure("SEQ_GAP", f"expected seq {seq}, found {doc.get('seq')}", seq=seq)
        if doc.get("chain_id") != chain_id or doc.get("v") != CANONICAL_VERSION:
            raise AuditFailure("EVENT_MALFORMED", "wrong chain or canonical version", seq=seq)
        leaves.append(merkle.leaf_hash(line))
        prev = hashlib.sha256(prev + line).digest()
        chain_hashes[seq] = prev
        report.events_checked += 1
    if len(leaves) != last - first + 1:
        raise AuditFailure(
            "SEQ_GAP", f"the range ends at seq {first + len(leaves) - 1}", seq=first + len(leaves)
        )

    covers = {int(k): v for k, v in proofs.get("covers", {}).items()}
    good = first - 1
    tree = merkle.CompactRange() if first == 1 else None
    for _, cp in sorted(checkpoints, key=lambda c: c[1].size):
        size = cp.size
        if size > head:
            raise AuditFailure(
                "CHECKPOINT_BEYOND_HEAD",
                f"checkpoint {size} signs more events than the log holds (head {head}): "
                "the newest events were deleted",
                checkpoint_size=size,
            )
        if tree is not None and size <= last:
            while tree.size < size:
                tree.append(leaves[tree.size])
            root = tree.root()
        else:
            try:
                ranges = {(a, b): base64.b64decode(h) for a, b, h in covers[size]}
                root = merkle.root_from(first - 1, size, leaves[: max(0, size - first + 1)], ranges)
            except (KeyError, ValueError, binascii.Error):
                raise AuditFailure(
                    "PROOF_MISSING", f"no cover of checkpoint {size}", checkpoint_size=size
                ) from None
        if root != cp.root_hash:
            raise AuditFailure(
                "ROOT_MISMATCH",
                f"the events do not give checkpoint {size}'s root: an event in seqs "
                f"{good + 1}..{min(size, last)} was changed, removed or added",
                checkpoint_size=size, first_bad_seq_after=good,
            )  # fmt: skip
        ext = dict(line.split(" ", 1) for line in cp.extensions if " " in line)
        if (
            size in chain_hashes
            and ext.get("chain-hash", chain_hashes[size].hex()) != chain_hashes[size].hex()
        ):
            raise AuditFailure(
                "CHAIN_HASH_MISMATCH", f"at seq {size}", checkpoint_size=size, seq=size
            )
        good = max(good, min(size, last))
        report.checkpoints_checked.append(size)

    newest_note, newest = max(checkpoints, key=lambda c: c[1].size)
    report.newest = {"size": newest.size, "root_hash": b64(newest.root_hash)}
    if trusted_checkpoint is not None:
        _check_trusted(trusted_checkpoint, log_key, origin, newest, proofs, tree, leaves, report)
    if witness_keys:
        cosigners = [w.name for w in witness_keys if newest_note.cosigned_by(w) is not None]
        report.newest["cosigned_by"] = cosigners
        need = len(witness_keys) if quorum is None else quorum
        if len(cosigners) < need:
            raise AuditFailure(
                "WITNESS_QUORUM_NOT_MET",
                f"{len(cosigners)} of the {need} witness cosignatures needed",
                checkpoint_size=newest.size,
            )


def _open(path: Path, key: Ed25519PublicKey, origin: str) -> tuple[note.Note, note.Checkpoint]:
    try:
        signed = note.parse(path.read_bytes())
        cp = note.Checkpoint.parse(signed.text)
    except note.NoteError as exc:
        raise AuditFailure("CHECKPOINT_MALFORMED", str(exc), file=path.name) from None
    if note.signer_name(signed, key) is None:
        raise AuditFailure(
            "CHECKPOINT_SIGNATURE_INVALID", "not signed by the log's key", file=path.name
        )
    if cp.origin != origin:
        raise AuditFailure("ORIGIN_MISMATCH", f"{cp.origin} is not {origin}", file=path.name)
    return signed, cp


def _check_trusted(
    data: bytes,
    key: Ed25519PublicKey,
    origin: str,
    newest: note.Checkpoint,
    proofs: dict[str, Any],
    tree: merkle.CompactRange | None,
    leaves: list[bytes],
    report: Report,
) -> None:
    """The auditor's own earlier checkpoint must be a prefix of the newest one."""
    try:
        signed = note.parse(data)
        trusted = note.Checkpoint.parse(signed.text)
    except note.NoteError as exc:
        raise AuditFailure("TRUSTED_CHECKPOINT_MALFORMED", str(exc)) from None
    if note.signer_name(signed, key) is None or trusted.origin != origin:
        raise AuditFailure("TRUSTED_CHECKPOINT_INVALID", "not this log's signed checkpoint")
    report.trusted = {"size": trusted.size, "root_hash": b64(trusted.root_hash)}
    if trusted.size > newest.size:
        raise AuditFailure(
            "TRUSTED_CHECKPOINT_AHEAD",
            f"the log's newest checkpoint ({newest.size}) is older than yours ({trusted.size})",
            checkpoint_size=trusted.size,
        )
    for p in proofs.get("consistency", []):
        if (int(p["old"]), int(p["new"])) == (trusted.size, newest.size):
            try:
                merkle.verify_consistency(
                    trusted.size, newest.size, trusted.root_hash, newest.root_hash,
                    [base64.b64decode(h) for h in p["hashes"]],
                )  # fmt: skip
            except merkle.ProofError as exc:
                raise AuditFailure(
                    "TRUSTED_CHECKPOINT_INCONSISTENT", str(exc), checkpoint_size=trusted.size
                ) from None
            return
    if tree is not None and trusted.size <= len(leaves):
        prefix = merkle.CompactRange()
        prefix.extend(leaves[: trusted.size])
        if prefix.root() != trusted.root_hash:
            raise AuditFailure(
                "TRUSTED_CHECKPOINT_INCONSISTENT",
                "the events do not give your checkpoint's root: the log was rewritten",
                checkpoint_size=trusted.size,
            )
        return
    raise AuditFailure(
        "PROOF_MISSING",
        f"no consistency proof from your size {trusted.size}; export with --trusted-size",
        checkpoint_size=trusted.size,
    )
