"""The Merkle tree against RFC 6962/9162's published test vectors, and every proof of
small trees checked both ways (a proof verifies; a changed one does not)."""

from __future__ import annotations

import pytest

from meshkit import merkle

# The leaves and roots of certificate-transparency's reference tests (RFC 6962).
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def nodes_of(leaves: list[bytes]) -> dict[merkle.Node, bytes]:
    """Every complete node of a tree, from a compact range that reports them."""
    found: dict[merkle.Node, bytes] = {}
    merkle.CompactRange().extend(leaves, lambda lvl, i, h: found.__setitem__((lvl, i), h))
    return found


def test_roots_match_the_rfc_vectors() -> None:
    hashes = [merkle.leaf_hash(d) for d in LEAVES]
    assert merkle.root([]) == merkle.EMPTY_ROOT
    for n in range(1, 9):
        assert merkle.root(hashes[:n]).hex() == ROOTS[n - 1]
        tree = merkle.CompactRange()
        tree.extend(hashes[:n])
        assert tree.root().hex() == ROOTS[n - 1]


def test_rfc_inclusion_and_consistency_vectors() -> None:
    hashes = [merkle.leaf_hash(d) for d in LEAVES]
    nodes = nodes_of(hashes)
    path = merkle.assemble(merkle.inclusion_plan(0, 8), nodes)
    assert [p.hex()[:8] for p in path] == ["96a296d2", "5f083f0a", "6b47aaf2"]
    proof = merkle.assemble(merkle.consistency_plan(6, 8), nodes)
    assert [p.hex()[:8] for p in proof] == ["0ebc5d34", "ca854ea1", "d37ee418"]


@pytest.mark.parametrize("size", [*range(1, 34), 64, 100])
def test_every_proof_of_small_trees(size: int) -> None:
    hashes = [merkle.leaf_hash(b"leaf %d" % i) for i in range(size)]
    nodes = nodes_of(hashes)
    roots = [merkle.root(hashes[:n]) for n in range(size + 1)]
    for index in range(size):
        proof = merkle.assemble(merkle.inclusion_plan(index, size), nodes)
        merkle.verify_inclusion(index, size, hashes[index], proof, roots[size])
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, size, merkle.leaf_hash(b"other"), proof, roots[size])
        if proof:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(index, size, hashes[index], proof[:-1], roots[size])
    for old in range(size + 1):
        proof = merkle.assemble(merkle.consistency_plan(old, size), nodes)
        merkle.verify_consistency(old, size, roots[old], roots[size], proof)
        assert merkle.range_root(old, nodes) == roots[old]
        if 0 < old < size:
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(old, size, roots[old], roots[old], proof)
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(old, size, merkle.leaf_hash(b"x"), roots[size], proof)


def test_a_fork_is_not_consistent() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(1, 1, a, b, [])


def test_proofs_outside_the_tree_are_refused() -> None:
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_plan(5, 5)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_plan(6, 5)


def test_a_compact_range_resumes_from_stored_nodes() -> None:
    hashes = [merkle.leaf_hash(b"%d" % i) for i in range(77)]
    nodes = nodes_of(hashes[:50])
    tree = merkle.CompactRange.at(50, nodes)
    tree.extend(hashes[50:])
    assert tree.root() == merkle.root(hashes)


@pytest.mark.parametrize(
    ("lo", "hi", "size"), [(0, 10, 10), (3, 10, 17), (0, 5, 64), (7, 9, 9), (0, 0, 5), (16, 33, 33)]
)  # noqa: E501
def test_a_slice_of_leaves_and_its_cover_give_the_root(lo: int, hi: int, size: int) -> None:
    hashes = [merkle.leaf_hash(b"%d" % i) for i in range(size)]
    ranges = {(a, b): merkle.root(hashes[a:b]) for a, b in merkle.cover_plan(lo, hi, size)}
    assert all(b <= lo or a >= hi for a, b in ranges)
    assert merkle.root_from(lo, size, hashes[lo:hi], ranges) == merkle.root(hashes)
    nodes = nodes_of(hashes)
    for a, b in ranges:  # what the server sends: each range's nodes folded
        assert merkle.fold([nodes[n] for n in merkle.range_nodes(a, b)]) == ranges[(a, b)]


def test_extending_by_groups_stores_the_same_tiles_as_leaf_by_leaf() -> None:
    from audit_svc.integrity import tiles

    hashes = [merkle.leaf_hash(b"%d" % i) for i in range(70_000)]
    one, by_leaf = merkle.CompactRange(), tiles.TileAppends()
    for h in hashes:
        one.append(h, by_leaf.add)
    many, by_group = merkle.CompactRange(), tiles.TileAppends()
    start = 0
    for size in [1, 2, 3, 255, 256, 257, 5000, 1, 64_000, 10_000]:
        many.extend(hashes[start : start + size], rows=by_group.add_row)
        start += size
        assert many.root() == merkle.root(hashes[:start]) if start < 600 else True
    assert many.edge == one.edge and many.size == one.size == len(hashes)
    assert by_group.rows() == by_leaf.rows()
