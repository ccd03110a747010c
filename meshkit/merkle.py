"""The Merkle tree of a chain, as RFC 9162 defines it (section 2.1).

Leaf `i` of a chain's tree is the event with seq `i + 1`; its leaf data is the event's
canonical bytes (`audit_svc.integrity.chain.canonical_bytes`, same version contract as
the hash chain). Hashes: leaf `SHA-256(0x00 || data)`, node `SHA-256(0x01 || l || r)`,
the empty tree `SHA-256("")`.

Node `(level, index)` is the root of the perfect subtree over leaves
`[index * 2**level, (index + 1) * 2**level)`; only such complete nodes are ever stored
or asked for. Proof generation is split in two so that storage can fetch what it needs
in one round trip: `inclusion_plan` / `consistency_plan` name the complete nodes each
proof hash is made of, and `assemble` folds the fetched hashes into the proof.

`CompactRange` is the tree's right edge (one perfect subtree per 1-bit of the size):
the appender extends it leaf by leaf without reading old leaves, and it reports each
complete node it creates, which is what gets stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Node = tuple[int, int]  # (level, index) of a complete subtree
# Each proof hash is the Merkle root of a run of complete subtrees, left to right.
Plan = list[list[Node]]
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that was asked for outside the tree, or that does not verify."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def leaf_hashes(data: Sequence[bytes]) -> list[bytes]:
    """`leaf_hash` of each, in one comprehension (the group commit's path)."""
    sha = hashlib.sha256
    return [sha(b"\x00" + d).digest() for d in data]


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(lo: int, hi: int) -> list[Node]:
    """The complete subtrees that make up leaves [lo, hi), left to right, largest
    first. In the RFC's recursion every range starts at a multiple of a power of two
    at least its length, so these are the binary digits of hi - lo from the top."""
    out = []
    pos = lo
    for level in range((hi - lo).bit_length() - 1, -1, -1):
        if (hi - lo) >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over a run of complete subtrees (largest first): right to left."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree given its 2**k bottom hashes."""
    row = list(hashes)
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (for tests, vectors and small trees)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = _split(len(leaf_hashes))
    return node_hash(root(leaf_hashes[:k]), root(leaf_hashes[k:]))


def inclusion_plan(index: int, size: int) -> Plan:
    """The nodes of the RFC 9162 inclusion proof (PATH) of leaf `index` in a tree of
    `size` leaves, bottom up."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    out: Plan = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append(range_nodes(lo + k, hi))
            hi = lo + k
        else:
            out.append(range_nodes(lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_plan(old_size: int, new_size: int) -> Plan:
    """The nodes of the RFC 9162 consistency proof (PROOF) from `old_size` to
    `new_size`; empty when old_size is 0 or equals new_size."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    out: Plan = []
    lo, hi, whole = 0, new_size, True
    while old_size - lo != hi - lo:
        k = _split(hi - lo)
        if old_size - lo <= k:
            out.append(range_nodes(lo + k, hi))
            hi = lo + k
        else:
            out.append(range_nodes(lo, lo + k))
            lo += k
            whole = False
    if not whole:
        out.append(range_nodes(lo, hi))
    out.reverse()
    return out


def plan_nodes(plan: Plan) -> set[Node]:
    """Every node a plan needs."""
    return {n for part in plan for n in part}


def assemble(plan: Plan, hashes: Mapping[Node, bytes]) -> list[bytes]:
    """The proof hashes, given the hash of every node of the plan."""
    return [fold([hashes[n] for n in part]) for part in plan]


def range_root(size: int, hashes: Mapping[Node, bytes]) -> bytes:
    """The root of a tree of `size` leaves from its `range_nodes(0, size)`."""
    return fold([hashes[n] for n in range_nodes(0, size)]) if size else EMPTY_ROOT


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """RFC 9162 2.1.3.2; ProofError unless `leaf` is leaf `index` of the tree."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root_hash:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2; ProofError unless the tree of `old_size` with `old_root` is a
    prefix of the tree of `new_size` with `new_root`."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {old_size} is not a prefix of size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("same size, different root: the log has forked")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node
        path.insert(0, old_root)
    if not path:
        raise ProofError("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")


def _bits(n: int) -> list[int]:
    """The levels of the perfect subtrees of a tree of n leaves, largest first."""
    return [lv for lv in range(n.bit_length() - 1, -1, -1) if n >> lv & 1]


@dataclass(slots=True)
class CompactRange:
    """The right edge of a tree: `size` leaves as perfect subtrees, largest first."""

    size: int = 0
    edge: list[bytes] = field(default_factory=list)

    @classmethod
    def at(cls, size: int, hashes: Mapping[Node, bytes]) -> CompactRange:
        """The edge of a tree of `size` leaves from the hashes of `range_nodes(0, size)`."""
        return cls(size, [hashes[n] for n in range_nodes(0, size)])

    def copy(self) -> CompactRange:
        return CompactRange(self.size, list(self.edge))

    def append(self, leaf: bytes, created: Callable[[int, int, bytes], None] | None = None) -> None:
        """Add one leaf hash; `created(level, index, hash)` is told of every complete
        node this makes, the leaf itself included (level 0)."""
        n = self.size
        h = leaf
        if created is not None:
            created(0, n, h)
        level = 0
        while n >> level & 1:  # merge with the equal-sized subtrees on the left
            h = node_hash(self.edge.pop(), h)
            level += 1
            if created is not None:
                created(level, n >> level, h)
        self.edge.append(h)
        self.size += 1

    def extend(
        self,
        leaves: Sequence[bytes],
        created: Callable[[int, int, bytes], None] | None = None,
        rows: Callable[[int, int, list[bytes]], None] | None = None,
    ) -> None:
        """Add many leaf hashes, a level at a time (the group commit's path: one list
        comprehension of node hashes per level instead of a call per leaf). The new
        complete nodes of each level are told to `rows(level, first index, hashes)`,
        or one by one to `created(level, index, hash)`."""
        if not leaves:
            return
        n0, n1 = self.size, self.size + len(leaves)
        old = dict(zip(_bits(n0), self.edge, strict=True))  # level -> edge node
        kept: dict[int, bytes] = {}
        row, level = list(leaves), 0
        sha = hashlib.sha256
        while row:
            first = n0 >> level
            if rows is not None:
                rows(level, first, row)
            if created is not None:
                for i, h in enumerate(row):
                    created(level, first + i, h)
            if first & 1:  # the left sibling of the first new node is the old edge's
                row.insert(0, old.pop(level))
            if len(row) & 1:
                kept[level] = row[-1]
            row = [sha(b"\x01" + row[i] + row[i + 1]).digest() for i in range(0, len(row) - 1, 2)]
            level += 1
        self.edge = [kept[lv] if lv in kept else old[lv] for lv in _bits(n1)]
        self.size = n1

    def root(self) -> bytes:
        return fold(self.edge) if self.edge else EMPTY_ROOT


Range = tuple[int, int]  # leaves [lo, hi)


def cover_plan(lo: int, hi: int, size: int) -> list[Range]:
    """The ranges outside leaves [lo, hi) whose roots, with those leaves, give the
    root of the tree of `size`: what a bundle of a slice of the log must carry to
    tie its leaves to a checkpoint (`root_from` uses them)."""
    out: list[Range] = []

    def walk(a: int, b: int) -> None:
        if b <= lo or a >= hi:
            out.append((a, b))
        elif b - a > 1:
            k = _split(b - a)
            walk(a, a + k)
            walk(a + k, b)

    if size:
        walk(0, size)
    return out


def root_from(lo: int, size: int, leaves: Sequence[bytes], ranges: Mapping[Range, bytes]) -> bytes:
    """The root of the tree of `size` from the leaf hashes of [lo, lo + len(leaves))
    and the roots of the ranges of `cover_plan`; KeyError if one is missing."""
    hi = lo + len(leaves)

    def walk(a: int, b: int) -> bytes:
        if b <= lo or a >= hi:
            return ranges[(a, b)]
        if b - a == 1:
            return leaves[a - lo]
        if a >= lo and b <= hi and b - a & (b - a - 1) == 0:
            return perfect_root(leaves[a - lo : b - lo])
        k = _split(b - a)
        return node_hash(walk(a, a + k), walk(a + k, b))

    return walk(0, size) if size else EMPTY_ROOT
