"""The ingest step of privacy: an event's personal fields sealed with its subject's data
key and given their pseudonyms, before the event is hashed, so the chain and the
Merkle leaf commit to the ciphertext. The ingest pass calls the hook of `for_batch`
per valid event (ingest.validation.admit, `Rules.seal`); the service's own events
(read records, admin actions) are sealed by `seal` before they are made ready."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any

from audit_svc.ingest.validation import MAX_LEN, SealHook
from audit_svc.integrity.chain import details_json, ip_text
from audit_svc.model import Event
from audit_svc.privacy.crypto import ERASED, Keys, aad, nonce, seal
from audit_svc.privacy.keyring import KeyRing, SubjectKey
from audit_svc.privacy.policy import PrivacyPolicy

MAX_USER_ID = MAX_LEN["user_id"]


def value_json(value: Any) -> str:
    """The JSON text a details value is sealed as (read back with json.loads)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# What sealing one event's fields gives (ingest.validation.SealHook's result).
Sealed = tuple[str, str, str, str, dict[str, Any] | None, bytes | None, bytes | None]


class Sealer:
    """Seals events' personal fields (see the module docstring)."""

    def __init__(self, policy: PrivacyPolicy, ring: KeyRing) -> None:
        self._policy = policy
        self._ring = ring
        self._keys: Keys = ring.keys
        fields = policy.fields
        self._username = "username" in fields
        self._ip = "ip_address" in fields
        self._agent = "user_agent" in fields
        self._order = asyncio.Lock()

    async def for_batch(self, user_ids: Iterable[str]) -> SealHook:
        """The hook that seals the events of a batch (ingest.validation.admit calls it
        per valid event, before its canonical bytes); the subjects' keys are made on
        first use. User ids no event could carry (NUL, too long) get none."""
        wanted = {u for u in user_ids if len(u) <= MAX_USER_ID and "\x00" not in u}
        # One batch at a time, in arrival order: a stream's batches reach the appender
        # in the order they were sent (a cached key costs no wait at all).
        async with self._order:
            ring = await self._ring.for_writing(wanted)
        subject = self._keys.subject

        def hook(event_id: str, user_id: str, username: str, ip: str, agent: str,
                 details: dict[str, Any], classification: str) -> Sealed:  # fmt: skip
            pseudonym = subject(user_id)
            return self.seal_fields(ring[pseudonym], pseudonym, event_id, username, ip, agent,
                                    details, classification)  # fmt: skip

        return hook

    async def seal(self, events: Sequence[Event]) -> None:
        """Seal built events in place (the service's own: read records, admin actions)."""
        if not events:
            return
        ring = await self._ring.for_writing({e.user_id for e in events})
        for e in events:
            ip = e.ip_address
            text = "" if ip is None else ip if isinstance(ip, str) else ip_text(ip)
            pseudonym = self._keys.subject(e.user_id)
            user_id, username, text, agent, details, utoken, itoken = self.seal_fields(
                ring[pseudonym], pseudonym, str(e.event_id), e.username, text, e.user_agent,
                e.details, e.data_classification,
            )  # fmt: skip
            e.user_id, e.username, e.user_agent = user_id, username, agent
            e.username_token, e.ip_token = utoken, itoken
            if ip is not None:
                e.ip_address = text
            if details is not None:
                e.details, e.details_json = details, details_json(details)

    def seal_fields(
        self, key: SubjectKey, subject: str, event_id: str, username: str, ip: str,
        agent: str, details: dict[str, Any], classification: str,
    ) -> Sealed:  # fmt: skip
        """One event's fields sealed with its subject's key (`subject`: its user_id's
        pseudonym, stored in its place). A subject erased before keeps no new personal
        data: those fields are stored as [erased] (and get no pseudonym)."""
        keys, cipher, nk = self._keys, key.cipher, key.nonce_key

        def sealed(value: str, field: str) -> str:
            if cipher is None:
                return ERASED
            where = aad(event_id, field)
            return seal(cipher, nonce(nk, where, value), value, where)

        utoken = itoken = None
        if username and self._username:
            if cipher is not None:
                utoken = keys.token("username", username)
            username = sealed(username, "username")
        if ip and self._ip:
            if cipher is not None:
                itoken = keys.token("ip_address", ip)
            ip = sealed(ip, "ip_address")
        if agent and self._agent:
            agent = sealed(agent, "user_agent")
        new_details = None
        if details:
            personal = self._policy.personal_details(details, classification)
            if personal:
                new_details = dict(details)
                for k in personal:
                    new_details[k] = sealed(value_json(details[k]), "details." + k)
        return subject, username, ip, agent, new_details, utoken, itoken
