"""An independent check: Go's golang.org/x/mod/sumdb/note and sumdb/tlog verify the
checkpoints and proofs auditmesh makes (pure code here; the served ones are checked
in test_proofs_rpc.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meshkit import merkle, note
from tests.audit_svc.gotlog import GoVerifier, build


@pytest.fixture(scope="session")
def go_verifier(tmp_path_factory: pytest.TempPathFactory) -> GoVerifier:
    return build(Path(tmp_path_factory.mktemp("gotlog")))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def document(leaves: list[bytes], sizes: list[int], signer: note.NoteSigner) -> dict[str, Any]:
    hashes = [merkle.leaf_hash(d) for d in leaves]
    nodes: dict[merkle.Node, bytes] = {}
    merkle.CompactRange().extend(hashes, lambda lvl, i, h: nodes.__setitem__((lvl, i), h))
    notes = [
        note.sign(note.Checkpoint("example.org/log", n, merkle.root(hashes[:n])).text(), signer)
        .render()
        .decode()
        for n in sizes
    ]
    inclusion = [
        {"index": i, "size": n, "leaf": b64(leaves[i]),
         "proof": [b64(p) for p in merkle.assemble(merkle.inclusion_plan(i, n), nodes)]}
        for n in sizes for i in range(n)
    ]  # fmt: skip
    consistency = [
        {"old": m, "new": n,
         "proof": [b64(p) for p in merkle.assemble(merkle.consistency_plan(m, n), nodes)]}
        for n in sizes for m in sizes if 0 < m <= n
    ]  # fmt: skip
    return {"vkey": signer.verifier.vkey, "notes": notes,
            "inclusion": inclusion, "consistency": consistency}  # fmt: skip


def test_go_verifies_our_notes_and_proofs(go_verifier: GoVerifier) -> None:
    signer = note.NoteSigner("example.org/log", Ed25519PrivateKey.generate())
    leaves = [b"event %d" % i for i in range(70)]
    doc = document(leaves, [1, 2, 3, 7, 8, 9, 31, 32, 33, 64, 70], signer)
    assert go_verifier.check(doc) == "ok"


def test_go_refuses_a_tampered_proof(go_verifier: GoVerifier) -> None:
    signer = note.NoteSigner("example.org/log", Ed25519PrivateKey.generate())
    doc = document([b"a", b"b", b"c", b"d", b"e"], [3, 5], signer)
    doc["inclusion"][0]["leaf"] = b64(b"changed")
    assert go_verifier.check(doc).startswith("inclusion 0")
    doc = document([b"a", b"b", b"c", b"d", b"e"], [3, 5], signer)
    doc["notes"][0] = doc["notes"][0].replace("\n3\n", "\n4\n")
    assert go_verifier.check(doc).startswith("note 0 does not verify")
