"""Data keys by subject, unwrapped and cached for a short while (`ttl`): the write
side creates a subject's key on first use; the read side finds out that a key was
erased within `ttl` on other replicas, at once on the one that erased it (`forget`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit_svc.privacy.crypto import NONCE, Keys, Unreadable, nonce_key, open_sealed, seal
from audit_svc.storage.protocols import PrivacyStore, SubjectKeyRow

MAX_CACHED = 100_000


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """A subject's cipher and clear user id; `cipher` is None once the key is erased.
    `nonce_key` derives each sealed value's nonce from its event id and field
    (audit_svc.privacy.crypto.nonce)."""

    cipher: AESGCM | None
    user_id: str = ""
    nonce_key: bytes = b""

    @property
    def erased(self) -> bool:
        return self.cipher is None


ERASED_KEY = SubjectKey(None)


def _subject_aad(subject: str) -> bytes:
    return b"subject:" + subject.encode()


class KeyRing:
    """See the module docstring."""

    def __init__(
        self,
        keys: Keys,
        store: PrivacyStore,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, SubjectKey]] = {}

    async def for_writing(self, user_ids: Iterable[str]) -> dict[str, SubjectKey]:
        """The key of each user id's subject (by subject), made when it has none."""
        wanted = {self.keys.subject(u): u for u in user_ids}
        found = await self.for_reading(wanted)
        missing = [s for s in wanted if s not in found]
        if missing:
            await self._store.add_subject_keys([self._new_row(s, wanted[s]) for s in missing])
            found |= await self._fetch(missing)
            if any(s not in found for s in missing):  # cannot happen: rows are never deleted
                raise LookupError("a subject key was not stored")
        return found

    async def for_reading(self, subjects: Iterable[str]) -> dict[str, SubjectKey]:
        """The stored key of each subject that has one (erased ones as ERASED_KEY)."""
        now = self._clock()
        found: dict[str, SubjectKey] = {}
        stale = []
        for subject in set(subjects):
            cached = self._cache.get(subject)
            if cached is not None and now - cached[0] < self._ttl:
                found[subject] = cached[1]
            else:
                stale.append(subject)
        if stale:
            found |= await self._fetch(stale)
        return found

    def forget(self, subject: str) -> None:
        """Drop a cached key (it was just erased here)."""
        self._cache.pop(subject, None)

    async def _fetch(self, subjects: list[str]) -> dict[str, SubjectKey]:
        rows = await self._store.subject_keys(subjects)
        now = self._clock()
        if len(self._cache) + len(rows) > MAX_CACHED:
            self._cache.clear()
        out = {}
        for subject, row in rows.items():
            key = self._open(row)
            self._cache[subject] = (now, key)
            out[subject] = key
        return out

    def _open(self, row: SubjectKeyRow) -> SubjectKey:
        if row.wrapped_key is None:
            return ERASED_KEY
        data_key = self.keys.unwrap(row.subject, row.wrapped_key)
        cipher = AESGCM(data_key)
        user_id = ""
        if row.sealed_subject:
            try:
                user_id = open_sealed(cipher, row.sealed_subject, _subject_aad(row.subject))
            except Unreadable:
                user_id = ""
        return SubjectKey(cipher, user_id, nonce_key(data_key))

    def _new_row(self, subject: str, user_id: str) -> SubjectKeyRow:
        key, wrapped = self.keys.new_data_key(subject)
        sealed = (
            seal(AESGCM(key), os.urandom(NONCE), user_id, _subject_aad(subject))
            if user_id
            else None
        )
        return SubjectKeyRow(subject, wrapped, sealed)
