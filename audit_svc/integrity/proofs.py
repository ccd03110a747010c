"""Inclusion and consistency proofs of a chain's Merkle tree, and its latest signed
checkpoint: what a client or an auditor asks the log for. Plain domain calls.

A proof is asked for at a tree size; the sizes that mean most are those of signed
checkpoints (the note says which root the proof must lead to), but any size up to the
committed head is answered, since the tiles hold the whole tree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from audit_svc.errors import InvalidArgument, NotFound
from audit_svc.model import FieldViolation
from audit_svc.storage.protocols import TreeStore
from meshkit import merkle

TREE_SIZE_BEYOND_HEAD = "TREE_SIZE_BEYOND_HEAD"
LEAF_NOT_IN_TREE = "LEAF_NOT_IN_TREE"
BAD_TREE_SIZES = "BAD_TREE_SIZES"


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Leaf `leaf_index` (seq - 1) is in the tree of `tree_size` with root `root_hash`."""

    chain_id: str
    leaf_index: int
    tree_size: int
    root_hash: bytes
    leaf_hash: bytes
    hashes: list[bytes]
    checkpoint: str  # the signed note of that size, when one was made


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree of `old_size` is a prefix of the tree of `new_size`."""

    chain_id: str
    old_size: int
    new_size: int
    hashes: list[bytes]


async def _head(tree: TreeStore, chain_id: str) -> int:
    head = await tree.head_seq(chain_id)
    if head is None:
        raise NotFound(f"chain {chain_id!r} does not exist", metadata={"chain_id": chain_id})
    return head


def _beyond(field: str, size: int, head: int) -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation(field, f"{size} is beyond the tree's size ({head})")],
        reason=TREE_SIZE_BEYOND_HEAD,
    )


async def inclusion_proof(
    tree: TreeStore, chain_id: str, *, event_id: str = "", seq: int = 0, tree_size: int = 0
) -> InclusionProof:
    """The proof of one event (by id, or by seq) in the tree of `tree_size` (0: the
    latest signed checkpoint's size, else the head)."""
    if bool(event_id) == bool(seq):
        raise InvalidArgument([FieldViolation("event_id", "give exactly one of event_id, seq")])
    if seq < 0 or tree_size < 0:
        field = "seq" if seq < 0 else "tree_size"
        raise InvalidArgument([FieldViolation(field, "must not be negative")])
    head = await _head(tree, chain_id)
    if event_id:
        try:
            key = uuid.UUID(event_id)
        except ValueError:
            raise InvalidArgument([FieldViolation("event_id", "must be a UUID")]) from None
        found = await tree.event_seq(chain_id, key)
        if found is None:
            raise NotFound(
                f"no event {event_id} in chain {chain_id}", metadata={"event_id": event_id}
            )
        seq = found
    if not tree_size:
        last = await tree.last_note(chain_id)
        tree_size = last.seq if last is not None and last.seq >= seq else head
    if tree_size > head:
        raise _beyond("tree_size", tree_size, head)
    if seq > tree_size:
        raise InvalidArgument(
            [FieldViolation("seq", f"leaf {seq} is not in the tree of size {tree_size}")],
            reason=LEAF_NOT_IN_TREE,
        )
    plan = merkle.inclusion_plan(seq - 1, tree_size)
    cp = await tree.checkpoint_at(chain_id, tree_size)
    wanted = merkle.plan_nodes(plan) | {(0, seq - 1)}
    if cp is None or not cp.root_hash:  # else the root is the one the checkpoint signed
        wanted |= set(merkle.range_nodes(0, tree_size))
    hashes = await tree.node_hashes(chain_id, wanted)
    root = cp.root_hash if cp is not None and cp.root_hash else merkle.range_root(tree_size, hashes)
    return InclusionProof(
        chain_id, seq - 1, tree_size, root, hashes[(0, seq - 1)],
        merkle.assemble(plan, hashes), cp.note if cp is not None else "",
    )  # fmt: skip


async def consistency_proof(
    tree: TreeStore, chain_id: str, old_size: int, new_size: int
) -> ConsistencyProof:
    """The proof that the tree of `old_size` is a prefix of the tree of `new_size`
    (0: the head)."""
    head = await _head(tree, chain_id)
    new_size = new_size or head
    if old_size < 0 or old_size > new_size:
        raise InvalidArgument(
            [FieldViolation("old_size", f"must be between 0 and new_size ({new_size})")],
            reason=BAD_TREE_SIZES,
        )
    if new_size > head:
        raise _beyond("new_size", new_size, head)
    plan = merkle.consistency_plan(old_size, new_size)
    hashes = await tree.node_hashes(chain_id, merkle.plan_nodes(plan))
    return ConsistencyProof(chain_id, old_size, new_size, merkle.assemble(plan, hashes))


async def latest_checkpoint(tree: TreeStore, chain_id: str) -> str:
    """The newest signed checkpoint note of the chain; NotFound when none was made."""
    row = await tree.last_note(chain_id)
    if row is None:
        raise NotFound(
            f"chain {chain_id!r} has no signed checkpoint yet (are checkpoints on?)",
            metadata={"chain_id": chain_id},
        )
    return row.note + row.cosignatures if row.cosignatures else row.note
