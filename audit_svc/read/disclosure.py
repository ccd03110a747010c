"""The one place that turns stored events into what a given reader may see.

Every read path hands its events here: Query, GetEvent, v1 SearchLogs, Watch (live
tail), statistics' top users, and any export or cold-tier read built on the Reader.
Stored events carry sealed personal fields (audit_svc.privacy); here they are opened
with their subject's key and shown

- in clear text to a reader with `audit.pii_reader` (`Access.CLEAR`),
- masked to one with only `audit.reader` (`Access.MASKED`): the policy's masks, or
  [redacted] for a classification that says so; user_id as its pseudonym,
- as [erased] to everyone once the subject's key is erased.

Events stored in clear (before encryption, or with it off) are masked the same way.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from audit_svc.access import PII_READER, READER, Kind, Principal
from audit_svc.model import Event, StoredEvent
from audit_svc.privacy.crypto import (
    ERASED,
    Keys,
    Unreadable,
    aad,
    is_sealed,
    is_subject,
    open_sealed,
)
from audit_svc.privacy.keyring import KeyRing, SubjectKey
from audit_svc.privacy.masks import REDACTED, mask
from audit_svc.privacy.policy import Mask, PrivacyPolicy
from audit_svc.read.filters import QuerySpec
from audit_svc.read.live_tail import WatchFilter

UNREADABLE = "[unreadable]"


class Access(enum.Enum):
    """What a reader may see of personal fields."""

    CLEAR = "clear"
    MASKED = "masked"


# Who a read without a caller (a tool's) is shown as: a plain reader.
MASKED_VIEWER = Principal(Kind.SERVICE, "masked-view", frozenset({READER}))
CLEAR_VIEWER = Principal(Kind.SERVICE, "clear-view", frozenset({PII_READER}))


def access_of(principal: Principal) -> Access:
    """CLEAR for a holder of audit.pii_reader, else MASKED."""
    return Access.CLEAR if principal.has(PII_READER) else Access.MASKED


class Disclosure:
    """See the module docstring. Without a key ring (encryption off) events are in
    clear text and only masked."""

    def __init__(self, policy: PrivacyPolicy, keys: Keys, ring: KeyRing | None) -> None:
        self._policy = policy
        self._keys = keys  # pseudonyms: what plain readers see of a user id
        self._ring = ring  # None: encryption off, stored events are in clear text

    def pseudonymize(self, spec: QuerySpec) -> QuerySpec:
        """A query whose personal filters match the pseudonyms they are stored as."""
        if self._ring is None:
            return spec
        f, keys, fields = spec.filters, self._keys, self._policy.fields
        pairs: list[tuple[str, str | bytes]] = []
        if f.user_id:
            pairs.append(("user_id", keys.subject(f.user_id)))
        if f.username and "username" in fields:
            pairs.append(("username", keys.token("username", f.username)))
        if f.ip_address and "ip_address" in fields:
            pairs.append(("ip_address", keys.token("ip_address", f.ip_address)))
        return replace(spec, pseudonyms=tuple(pairs))

    def scrub_filters(self, filters: Mapping[str, object]) -> dict[str, object]:
        """A read's filters as its audit.read record keeps them: personal ones as
        their pseudonyms (the same a stored event has), details filters redacted."""
        if self._ring is None:
            return dict(filters)
        out = dict(filters)
        for name, value in filters.items():
            if not isinstance(value, str) or not value:
                continue
            if name == "user_id":
                out[name] = self._keys.subject(value)
            elif name in ("username", "ip_address"):
                token = self._keys.token(name, value)
                out[name] = "psn:" + base64.urlsafe_b64encode(token).rstrip(b"=").decode()
            elif name == "details_contains":
                out[name] = REDACTED
        return out

    def watch_filter(self, where: WatchFilter) -> WatchFilter:
        """A live-tail filter that matches stored (sealed) events."""
        if self._ring is None or not where.user_id:
            return where
        return replace(where, user_id=self._keys.subject(where.user_id))

    async def reveal(self, events: Sequence[StoredEvent], viewer: Principal) -> list[StoredEvent]:
        """The events as `viewer` may see them (new objects; the stored ones unchanged)."""
        access = access_of(viewer)
        keys = await self._subject_keys(events)
        return [
            StoredEvent(self._view(s.event, keys.get(_subject(s.event)), access), s.receipt)
            for s in events
        ]

    def presenter(
        self, viewer: Principal
    ) -> Callable[[Sequence[StoredEvent]], Awaitable[Sequence[StoredEvent]]]:
        """`reveal` for one viewer: what exports and forwarders show of each batch."""

        async def present(events: Sequence[StoredEvent]) -> Sequence[StoredEvent]:
            return await self.reveal(events, viewer)

        return present

    async def reveal_users(self, user_ids: Sequence[str], viewer: Principal) -> list[str]:
        """Stored user ids (pseudonyms) as `viewer` may see them (statistics' top users)."""
        if self._ring is None:
            return [self._pseudonym(u) if access_of(viewer) is Access.MASKED else u
                    for u in user_ids]  # fmt: skip
        keys = await self._ring.for_reading(u for u in user_ids if is_subject(u))
        out = []
        for u in user_ids:
            key = keys.get(u)
            if key is not None and key.erased:
                out.append(ERASED)
            elif access_of(viewer) is Access.MASKED or not is_subject(u):
                out.append(self._pseudonym(u))
            else:
                out.append(key.user_id if key is not None else UNREADABLE)
        return out

    async def _subject_keys(self, events: Sequence[StoredEvent]) -> dict[str, SubjectKey]:
        if self._ring is None:
            return {}
        subjects = {_subject(s.event) for s in events if _sealed(s.event)}
        return await self._ring.for_reading(subjects) if subjects else {}

    def _pseudonym(self, user_id: str) -> str:
        """A stored user id as a plain reader sees it: its pseudonym."""
        if not user_id or is_subject(user_id) or user_id in (ERASED, UNREADABLE):
            return user_id
        return self._keys.subject(user_id)

    def _view(self, e: Event, key: SubjectKey | None, access: Access) -> Event:
        sealed = _sealed(e)
        if sealed and key is not None and key.erased:
            return _erased(e)
        clear = self._open(e, key) if sealed else e
        if access is Access.CLEAR:
            return clear
        return self._masked(clear, stored_user_id=e.user_id)

    def _open(self, e: Event, key: SubjectKey | None) -> Event:
        """The event with its sealed fields opened (UNREADABLE where they do not)."""
        eid = str(e.event_id)

        def opened(value: str, field: str) -> str:
            if not is_sealed(value):
                return value
            if key is None or key.cipher is None:
                return UNREADABLE
            try:
                return open_sealed(key.cipher, value, aad(eid, field))
            except Unreadable:
                return UNREADABLE

        ip: Any = e.ip_address
        if isinstance(ip, str) and is_sealed(ip):
            text = opened(ip, "ip_address")
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                ip = text
        details = e.details
        if any(is_sealed(v) for v in details.values()):
            details = {}
            for k, v in e.details.items():
                details[k] = _json_value(opened(v, "details." + k)) if is_sealed(v) else v
        user_id = e.user_id
        if is_subject(user_id):
            user_id = key.user_id if key is not None and key.user_id else UNREADABLE
        return replace(
            e,
            user_id=user_id,
            username=opened(e.username, "username"),
            ip_address=ip,
            user_agent=opened(e.user_agent, "user_agent"),
            details=details,
            details_json="",
        )

    def _masked(self, e: Event, *, stored_user_id: str) -> Event:
        """A clear event as a plain reader sees it."""
        policy = self._policy
        treatment = policy.treatment(e.data_classification)

        def shown(kind: Mask | None, value: Any) -> Any:
            if kind is None or value is None or value == "" or value in (ERASED, UNREADABLE):
                return value
            return mask(kind, value) if treatment.masked else REDACTED

        fields = policy.fields
        personal = policy.personal_details(e.details, e.data_classification)
        details = e.details
        if personal:
            details = dict(e.details)
            for k in personal:
                details[k] = shown(policy.detail_mask(k), details[k])
        ip = shown(fields.get("ip_address"), e.ip_address)
        return replace(
            e,
            user_id=self._pseudonym(stored_user_id),
            username=shown(fields.get("username"), e.username),
            ip_address=ip,
            user_agent=shown(fields.get("user_agent"), e.user_agent),
            details=details,
            details_json="",
        )


def _subject(e: Event) -> str:
    """The subject whose key sealed the event: its user id's pseudonym, or ''."""
    return e.user_id if is_subject(e.user_id) else ""


def _sealed(e: Event) -> bool:
    return (
        is_subject(e.user_id)
        or is_sealed(e.username)
        or is_sealed(e.ip_address)
        or is_sealed(e.user_agent)
        or any(is_sealed(v) for v in e.details.values())
    )


def _erased(e: Event) -> Event:
    """Every personal field [erased]: the subject's key is gone."""
    details = e.details
    if any(is_sealed(v) for v in details.values()):
        details = {k: ERASED if is_sealed(v) else v for k, v in details.items()}
    return replace(
        e,
        user_id=ERASED if e.user_id else "",
        username=ERASED if e.username else "",
        ip_address=None if e.ip_address is None else ERASED,
        user_agent=ERASED if e.user_agent else "",
        details=details,
        details_json="",
    )


def _json_value(text: str) -> Any:
    if text == UNREADABLE:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return UNREADABLE
