"""Domain types of the audit-service. No grpc, no SQL: plain data.

The ingest path makes no domain object per event but `Ready` (a tuple) and the
`Receipt` and `EventResult` of its answer; `Event` and `StoredEvent` are what reads,
tools and the live tail see. The dataclasses are slotted but not frozen: a frozen
dataclass's __init__ costs about three times as much. Treat them as values all the same.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from meshkit.errors import FieldViolation as FieldViolation  # one type for every service

JsonObject = dict[str, Any]


@dataclass(slots=True)
class EventInput:
    """An event as a caller sent it, before validation. Empty string means absent."""

    event_id: str = ""
    event_type: str = ""
    user_id: str = ""
    username: str = ""
    ip_address: str = ""
    user_agent: str = ""
    service: str = ""
    action: str = ""
    result: str = ""
    details: JsonObject = field(default_factory=dict)
    compliance_tags: tuple[str, ...] = ()
    data_classification: str = ""
    event_time: datetime | None = None


@dataclass(slots=True)
class Event:
    """A valid event, normalised, ready for the chain (times are UTC, microseconds)."""

    event_id: uuid.UUID
    event_type: str
    user_id: str
    username: str
    # An address; text once sealed (audit_svc.privacy) or as a reader is shown it.
    ip_address: ipaddress.IPv4Address | ipaddress.IPv6Address | str | None
    user_agent: str
    service: str
    action: str
    result: str
    details: JsonObject
    compliance_tags: tuple[str, ...]
    data_classification: str
    event_time: datetime
    receive_time: datetime
    # `details` as canonical JSON text (audit_svc.integrity.chain.details_json), when already
    # computed; validation fills it so the chain and the COPY don't encode it again.
    details_json: str = field(default="", compare=False, repr=False)
    # Who wrote it: the authenticated principal (a SPIFFE id...), set by the ingestor.
    principal: str = ""
    # Pseudonyms (keyed HMACs) of the clear username and address, set when they are
    # sealed (audit_svc.privacy.sealer): Query matches them. Not part of the hash.
    username_token: bytes | None = field(default=None, compare=False, repr=False)
    ip_token: bytes | None = field(default=None, compare=False, repr=False)


class JsonText(str):
    """JSON already encoded (canonical `details`): stored in a jsonb column as it is."""

    __slots__ = ()


# What `Ready.row` holds, in order: the audit_events columns of an event that do not
# depend on its place in the chain (those are chain_id, seq, prev_hash and hash).
ROW_FIELDS = (
    "event_id",
    "event_type",
    "user_id",
    "username",
    "ip_address",
    "user_agent",
    "service",
    "action",
    "result",
    "details",
    "compliance_tags",
    "data_classification",
    "event_time",
    "receive_time",
    "principal",
    # Privacy (audit_svc.privacy): the pseudonyms Query matches, and a sealed address
    # (the inet column is then NULL). Not part of the hash; the sealed values are.
    "username_token",
    "ip_token",
    "ip_sealed",
)


_EVENT_TIME, _RECEIVE_TIME = ROW_FIELDS.index("event_time"), ROW_FIELDS.index("receive_time")


class Ready(NamedTuple):
    """One valid event as the ingest pass (audit_svc.ingest.validation.admit) leaves it
    for its chain: the canonical bytes around its seq, so the chain's hash is
    `link(prev, before_seq + str(seq) + after_seq)`, and its row of ROW_FIELDS."""

    event_id: str  # the UUID's standard text
    before_seq: bytes
    after_seq: bytes
    row: tuple[Any, ...]

    @property
    def event_time(self) -> datetime:
        return self.row[_EVENT_TIME]  # type: ignore[no-any-return]

    @property
    def receive_time(self) -> datetime:
        return self.row[_RECEIVE_TIME]  # type: ignore[no-any-return]


def ready_event(ready: Ready) -> Event:
    """The `Event` of a ready row (the live tail and the duplicate check want one)."""
    (event_id, event_type, user_id, username, ip, user_agent, service, action, result,
     details, tags, classification, event_time, receive_time, principal, username_token,
     ip_token, ip_sealed) = ready.row  # fmt: skip
    return Event(
        event_id=uuid.UUID(event_id),
        event_type=event_type,
        user_id=user_id,
        username=username,
        ip_address=ip_sealed or ip,
        user_agent=user_agent,
        service=service,
        action=action,
        result=result,
        details=json.loads(details),
        compliance_tags=tuple(tags),
        data_classification=classification,
        event_time=event_time,
        receive_time=receive_time,
        details_json=str(details),
        principal=principal,
        username_token=username_token,
        ip_token=ip_token,
    )


@dataclass(slots=True)
class Receipt:
    """Where an event sits in its hash chain and its Merkle tree (leaf seq - 1)."""

    chain_id: str
    seq: int
    hash: bytes
    prev_hash: bytes
    # A tree size that includes the event: the tree's size when its group was
    # committed (0 when not known, e.g. read back: then `seq` is the smallest such).
    tree_size: int = 0


@dataclass(slots=True)
class StoredEvent:
    """An event as read back from storage, with its receipt."""

    event: Event
    receipt: Receipt


class Outcome(enum.Enum):
    """What happened to one event of an ingest request."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(slots=True)
class EventResult:
    """The result for one event of a request, in request order."""

    index: int
    event_id: str
    outcome: Outcome
    receipt: Receipt | None = None
    reason: str = ""
    violations: tuple[FieldViolation, ...] = ()
    # Rejected by the access policy (PERMISSION_DENIED), not for being invalid.
    denied: bool = False
    # Its event_id is already stored for another writer or content (ALREADY_EXISTS).
    conflict: bool = False
