"""C2SP signed notes and checkpoints: the example key and note of
golang.org/x/mod/sumdb/note (Ed25519 signatures are deterministic, so the same bytes
must come out), round trips, and what must be refused."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meshkit import note

# From the documentation of golang.org/x/mod/sumdb/note.
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
TEXT = b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"  # noqa: E501
SIGNED = (
    TEXT + b"\n\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1"
    b"FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_signer() -> note.NoteSigner:
    seed = base64.b64decode(SKEY.split("+", 4)[4])[1:]
    return note.NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))


def test_the_go_example_is_reproduced() -> None:
    signer = go_signer()
    assert signer.verifier.vkey == VKEY
    assert note.sign(TEXT, signer).render() == SIGNED
    parsed = note.parse(SIGNED)
    assert parsed.signed_by(note.NoteVerifier.parse(VKEY))


def test_checkpoint_round_trip_and_tampering() -> None:
    signer = go_signer()
    cp = note.Checkpoint("example.com/log", 12, bytes(range(32)), ("ext one",))
    root = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    assert cp.text() == b"example.com/log\n12\n" + root + b"\next one\n"
    data = note.sign(cp.text(), signer).render()
    _, opened = note.open_checkpoint(data, signer.verifier)
    assert opened == cp
    with pytest.raises(note.NoteError):
        note.open_checkpoint(data.replace(b"\n12\n", b"\n13\n"), signer.verifier)
    other = note.NoteSigner("PeterNeumann", Ed25519PrivateKey.generate())
    with pytest.raises(note.NoteError):
        note.open_checkpoint(data, other.verifier)


def test_cosignatures() -> None:
    witness = note.NoteSigner("w.example", Ed25519PrivateKey.generate(), note.ALG_COSIGNATURE_V1)
    cp = note.sign(note.Checkpoint("o", 1, bytes(32)).text(), go_signer())
    cosigned = cp.with_signatures(witness.cosign_line(cp.text, 1_700_000_000))
    again = note.parse(cosigned.render())
    assert again.cosigned_by(witness.verifier) == 1_700_000_000
    assert not again.signed_by(witness.verifier)
    assert note.NoteVerifier.parse(witness.verifier.vkey).key_id == witness.verifier.key_id


@pytest.mark.parametrize(
    "data",
    [b"", b"unsigned\n", b"text\n\n", b"text\n\nnot a signature\n", b"a\n\n\xe2\x80\x94 k !!\n"],
)
def test_malformed_notes_are_refused(data: bytes) -> None:
    with pytest.raises(note.NoteError):
        note.parse(data)


@pytest.mark.parametrize("name", ["", "a b", "a+b"])
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(note.NoteError):
        note.check_name(name)
