"""The hash chain: canonical bytes of an event and the hash that links it to the last.

hash(n) = SHA-256(hash(n-1) || canonical_bytes(event n)), hash(0) = 32 zero bytes.
The canonical form covers every stored field and the event's place in the chain, so
changing, reordering, inserting or deleting a row breaks the chain from there on.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from audit_svc.model import Event

GENESIS = bytes(32)
CANONICAL_VERSION = 1


def canonical_bytes(event: Event, chain_id: str, seq: int) -> bytes:
    """Deterministic JSON of the event as stored (sorted keys, no spaces, UTF-8)."""
    doc = {
        "v": CANONICAL_VERSION,
        "chain_id": chain_id,
        "seq": seq,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "user_id": event.user_id,
        "username": event.username,
        "ip_address": "" if event.ip_address is None else str(event.ip_address),
        "user_agent": event.user_agent,
        "service": event.service,
        "action": event.action,
        "result": event.result,
        "details": _floats(event.details),
        "compliance_tags": list(event.compliance_tags),
        "data_classification": event.data_classification,
        "event_time": _time(event.event_time),
        "receive_time": _time(event.receive_time),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def link(prev_hash: bytes, canonical: bytes) -> bytes:
    """The hash of an event given the hash before it."""
    return hashlib.sha256(prev_hash + canonical).digest()


def _time(t: datetime) -> str:
    # RFC 3339 UTC with microseconds, e.g. 2026-11-27T08:36:27.225502+00:00
    return t.astimezone(UTC).isoformat(timespec="microseconds")


def _floats(value: Any) -> Any:
    """Every JSON number as a float: what `google.protobuf.Struct` carries, and
    what survives a round trip through jsonb whatever its text form."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
