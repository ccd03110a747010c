"""Domain types of the audit-service. No grpc, no SQL: plain data.

The types made once per event (EventInput, Event, Receipt, StoredEvent, EventResult)
are slotted but not frozen: a frozen dataclass's __init__ costs about three times as
much, and ingest makes several per event. Treat them as values all the same.
"""

from __future__ import annotations

import enum
import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    # Problems the transport found while decoding (e.g. a timestamp out of range).
    problems: tuple[FieldViolation, ...] = ()


@dataclass(slots=True)
class Event:
    """A valid event, normalised, ready for the chain (times are UTC, microseconds)."""

    event_id: uuid.UUID
    event_type: str
    user_id: str
    username: str
    ip_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
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
