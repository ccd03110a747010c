"""Verify a range of a hash chain from the stored rows, and name the first bad event.

Each row's hash is recomputed from its stored fields and the hash before it; its seq
must follow the last one and its stored prev_hash must be that hash. Verifying up to
the head also checks that `chains` records the last row as the head, so deleting or
rewriting the newest rows is caught. What this cannot catch on its own: a rewrite that
recomputes every later hash *and* updates `chains` consistently. Given the signed
checkpoints from the object-locked bucket (`checkpoints`: seq -> hash), it catches
that too: a row whose hash differs from its checkpoint (CHECKPOINT_MISMATCH), and a
checkpoint beyond the recorded head, i.e. deleted newest rows (CHECKPOINT_BEYOND_HEAD).

Rows moved to the archive are not in the table: the check starts after the archived
ranges, from the last archived hash, so the chain must continue across the boundary
(the archive's own objects are checked by `audit_svc.sinks.archive.verify_archive`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from audit_svc.errors import InvalidArgument, NotFound
from audit_svc.integrity.chain import GENESIS, canonical_bytes, link
from audit_svc.model import FieldViolation
from audit_svc.storage.protocols import EventReader

HASH_MISMATCH = "HASH_MISMATCH"
SEQ_GAP = "SEQ_GAP"
PREV_HASH_MISMATCH = "PREV_HASH_MISMATCH"
HEAD_MISMATCH = "HEAD_MISMATCH"
CHECKPOINT_MISMATCH = "CHECKPOINT_MISMATCH"
CHECKPOINT_BEYOND_HEAD = "CHECKPOINT_BEYOND_HEAD"
CHECKPOINT_INVALID = "CHECKPOINT_INVALID"
BATCH = 5000

# Called after each batch with (events checked so far, events in the range).
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of verifying seqs from_seq..to_seq of a chain.

    `events_checked` counts the events that matched; when not ok, `first_bad_seq` is
    the first seq that does not, and `reason` says why (one of the constants above).
    """

    ok: bool
    chain_id: str
    from_seq: int
    to_seq: int
    events_checked: int
    first_bad_seq: int = 0
    reason: str = ""


async def verify_chain(
    events: EventReader,
    chain_id: str,
    from_seq: int = 0,
    to_seq: int = 0,
    *,
    checkpoints: Mapping[int, bytes] | None = None,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> VerifyResult:
    """Recompute seqs from_seq (1 when 0) to to_seq (the head when 0) of a chain, and
    compare it with `checkpoints` (seq -> hash, signatures already checked) if given.

    NotFound for an unknown chain; InvalidArgument for a range outside the chain.
    Reads `batch` rows at a time, so memory stays bounded on any length.
    """
    marks = dict(checkpoints or {})
    state = await events.chain_state(chain_id)
    if state is None:
        raise NotFound(f"chain {chain_id!r} does not exist", metadata={"chain_id": chain_id})
    head_seq, head_hash = state
    first, last = _bounds(from_seq, to_seq, head_seq)
    total = last - first + 1

    def result(checked: int, bad_seq: int = 0, reason: str = "") -> VerifyResult:
        return VerifyResult(not reason, chain_id, first, last, checked, bad_seq, reason)

    start, prev = first, GENESIS
    archived_through, archived_hash = await events.archive_boundary(chain_id)
    if first <= archived_through:  # continue from the archive's last hash
        start, prev = archived_through + 1, archived_hash
    expected, checked = start, 0
    # Closed on an early return, so the connection it holds goes back at once.
    async with contextlib.aclosing(events.chain_range(chain_id, start, last, batch)) as batches:
        async for rows in batches:
            for stored in rows:
                receipt = stored.receipt
                if receipt.seq != expected:
                    return result(checked, expected, SEQ_GAP)
                if expected == start and start == first and first > 1:
                    prev = receipt.prev_hash  # trust the range's starting point
                if receipt.prev_hash != prev:
                    return result(checked, expected, PREV_HASH_MISMATCH)
                if link(prev, canonical_bytes(stored.event, chain_id, expected)) != receipt.hash:
                    return result(checked, expected, HASH_MISMATCH)
                if marks.get(expected, receipt.hash) != receipt.hash:
                    return result(checked, expected, CHECKPOINT_MISMATCH)
                prev, expected, checked = receipt.hash, expected + 1, checked + 1
            if progress is not None:
                progress(checked, total)

    if any(seq > head_seq for seq in marks):
        return result(checked, head_seq + 1, CHECKPOINT_BEYOND_HEAD)
    if last < head_seq:
        return result(checked, expected, SEQ_GAP) if expected <= last else result(checked)
    # Up to the head: the recorded head must be the last row, and no row beyond it.
    if expected <= last:
        return result(checked, expected, HEAD_MISMATCH)
    if head_seq > 0 and prev != head_hash:
        return result(checked, head_seq, HEAD_MISMATCH)
    recorded, highest = await events.chain_tail(chain_id)
    if highest > recorded:
        return result(checked, recorded + 1, HEAD_MISMATCH)
    return result(checked)


def _bounds(from_seq: int, to_seq: int, head_seq: int) -> tuple[int, int]:
    """The range asked for, checked against the chain's head."""
    problems = []
    first = from_seq or 1
    last = to_seq or head_seq
    if from_seq < 0:
        problems.append(FieldViolation("from_seq", "must not be negative"))
    if to_seq < 0:
        problems.append(FieldViolation("to_seq", "must not be negative"))
    elif last > head_seq:
        problems.append(FieldViolation("to_seq", f"is beyond the chain head ({head_seq})"))
    if not problems and first > last and not (head_seq == 0 and from_seq == 0):
        problems.append(FieldViolation("from_seq", f"must be at most to_seq ({last})"))
    if problems:
        raise InvalidArgument(problems)
    return first, last
