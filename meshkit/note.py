"""C2SP signed notes, tlog checkpoints and tlog cosignatures, with Ed25519.

signed-note (c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank line,
then one line per signature, `— <key name> <base64(key ID || signature)>`. An Ed25519
key's ID is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key), and the
signature covers the text. A verifier key is written `name+<8 hex ID>+base64(0x01 ||
public key)` (what golang.org/x/mod/sumdb/note's NewVerifier reads).

tlog-checkpoint (c2sp.org/tlog-checkpoint): the text is the origin line, the tree
size in decimal, the base64 root hash, then optional extension lines.

tlog-cosignature (c2sp.org/tlog-cosignature): a witness signs
`cosignature/v1\\ntime <unix seconds>\\n` + the checkpoint text; its signature line
holds key ID (alg 0x04) || 8-byte big-endian time || signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
DASH = "\u2014"  # the em dash that starts a signature line
MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A note, checkpoint or key that is malformed or does not verify."""


def check_name(name: str) -> str:
    """A key name: non-empty, no whitespace, no `+` (the spec's rules)."""
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")
    return name


def key_id(name: str, alg: int, public: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || alg || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def ed25519_valid(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is `public_key`'s Ed25519 signature of `message`."""
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """A named Ed25519 public key that checks note signatures (alg 0x01) or
    cosignatures (alg 0x04)."""

    name: str
    public_key: Ed25519PublicKey
    alg: int = ALG_ED25519

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, _raw(self.public_key))

    @property
    def vkey(self) -> str:
        """`name+hex ID+base64(alg || key)`: the verifier key text."""
        data = base64.b64encode(bytes([self.alg]) + _raw(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{data}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        return ed25519_valid(self.public_key, signature, message)

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """Read a verifier key `name+hex+base64`; NoteError if malformed."""
        try:
            name, hexid, data = vkey.strip().split("+", 2)
            raw = base64.b64decode(data, validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw[1:])
        except (ValueError, binascii.Error):
            raise NoteError(f"not a verifier key: {vkey.strip()[:80]!r}") from None
        verifier = cls(check_name(name), public, raw[0])
        if raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1) or verifier.key_id.hex() != hexid:
            raise NoteError(f"verifier key {name}: wrong algorithm or key ID")
        return verifier


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 private key that signs notes."""

    name: str
    private_key: Ed25519PrivateKey
    alg: int = ALG_ED25519

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(check_name(self.name), self.private_key.public_key(), self.alg)

    def sign_line(self, text: bytes) -> str:
        """The signature line of a note whose text is `text`."""
        sig = self.private_key.sign(text)
        return f"{DASH} {self.name} {base64.b64encode(self.verifier.key_id + sig).decode()}\n"

    def cosign_line(self, checkpoint_text: bytes, timestamp: int) -> str:
        """A tlog-cosignature/v1 line over a checkpoint at `timestamp` (unix seconds)."""
        sig = self.private_key.sign(cosigned_message(checkpoint_text, timestamp))
        blob = self.verifier.key_id + struct.pack(">Q", timestamp) + sig
        return f"{DASH} {self.name} {base64.b64encode(blob).decode()}\n"


def cosigned_message(checkpoint_text: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_text


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: the key name, the 4-byte key ID and the rest."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def line(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed signed note: its text (ending in a newline) and its signature lines."""

    text: bytes
    signatures: tuple[Signature, ...]

    def render(self) -> bytes:
        return self.text + b"\n" + "".join(s.line for s in self.signatures).encode()

    def signed_by(self, verifier: NoteVerifier) -> bool:
        """True if a valid signature by `verifier` (alg 0x01) is on the note."""
        return any(
            s.name == verifier.name
            and s.key_id == verifier.key_id
            and verifier.verify(self.text, s.signature)
            for s in self.signatures
        )

    def cosigned_by(self, verifier: NoteVerifier) -> int | None:
        """The timestamp of a valid cosignature/v1 by `verifier`, or None."""
        for s in self.signatures:
            if s.name != verifier.name or s.key_id != verifier.key_id or len(s.signature) != 72:
                continue
            (timestamp,) = struct.unpack(">Q", s.signature[:8])
            if verifier.verify(cosigned_message(self.text, timestamp), s.signature[8:]):
                return int(timestamp)
        return None

    def with_signatures(self, lines: str | bytes) -> Note:
        """The note with more signature lines (e.g. a witness's cosignatures) added."""
        extra = parse_signatures(lines.decode() if isinstance(lines, bytes) else lines)
        known = {s.line for s in self.signatures}
        return Note(self.text, self.signatures + tuple(s for s in extra if s.line not in known))


def sign(text: bytes, *signers: NoteSigner) -> Note:
    """A note of `text` (must end in a newline) signed by each signer."""
    _check_text(text)
    lines = "".join(s.sign_line(text) for s in signers)
    return Note(text, parse_signatures(lines))


def parse(data: bytes) -> Note:
    """Split a signed note into its text and signature lines; NoteError if malformed.
    Signatures are not checked here (see `signed_by`)."""
    try:
        whole = data.decode()
    except UnicodeDecodeError:
        raise NoteError("a note is UTF-8 text") from None
    cut = whole.rfind("\n\n")
    if cut < 0 or not whole.endswith("\n"):
        raise NoteError("a note ends with a blank line and signature lines")
    text = whole[: cut + 1].encode()
    _check_text(text)
    signatures = parse_signatures(whole[cut + 2 :])
    if not signatures:
        raise NoteError("a note carries at least one signature")
    return Note(text, signatures)


def parse_signatures(lines: str) -> tuple[Signature, ...]:
    out = []
    for line in lines.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise NoteError(f"not a signature line: {line[:80]!r}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise NoteError(f"signature of {parts[1]!r} is not base64") from None
        if len(blob) < 5:
            raise NoteError(f"signature of {parts[1]!r} is too short")
        out.append(Signature(check_name(parts[1]), blob[:4], blob[4:]))
    if len(out) > MAX_SIGNATURES:
        raise NoteError("too many signatures")
    return tuple(out)


def _check_text(text: bytes) -> None:
    if not text.endswith(b"\n") or b"\n\n" in text or b"\r" in text:
        raise NoteError("note text must end in a newline and hold no blank line")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog-checkpoint body."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> bytes:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return ("\n".join([*lines, *self.extensions]) + "\n").encode()

    @classmethod
    def parse(cls, text: bytes) -> Checkpoint:
        """Read a checkpoint body; NoteError if it is not one."""
        lines = text.decode().split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a size and a root hash line")
        origin, size, root_b64 = lines[0], lines[1], lines[2]
        if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError("checkpoint origin or size is malformed")
        try:
            root_hash = base64.b64decode(root_b64, validate=True)
        except binascii.Error:
            raise NoteError("checkpoint root hash is not base64") from None
        if len(root_hash) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size), root_hash, tuple(lines[3:-1]))


def signer_name(note: Note, public_key: Ed25519PublicKey) -> str | None:
    """The name under which `public_key` validly signed the note, or None. The key
    ID binds the name to the key, so a bare public key is enough to check."""
    raw = _raw(public_key)
    for s in note.signatures:
        if key_id(s.name, ALG_ED25519, raw) == s.key_id:
            if NoteVerifier(s.name, public_key).verify(note.text, s.signature):
                return s.name
    return None


def open_checkpoint(data: bytes, verifier: NoteVerifier) -> tuple[Note, Checkpoint]:
    """A signed checkpoint whose log signature verifies; NoteError otherwise."""
    note = parse(data)
    if not note.signed_by(verifier):
        raise NoteError(f"checkpoint is not signed by {verifier.name}+{verifier.key_id.hex()}")
    return note, Checkpoint.parse(note.text)
