"""The hash chain: canonical bytes of an event and the hash that links it to the last.

hash(n) = SHA-256(hash(n-1) || canonical_bytes(event n)), hash(0) = 32 zero bytes.
The canonical form covers every stored field and the event's place in the chain, so
changing, reordering, inserting or deleting a row breaks the chain from there on.

The canonical form is a stored contract: it is the JSON document

    json.dumps({"v": 1, "chain_id": ..., "seq": ..., "event_id": ..., ...},
               sort_keys=True, separators=(",", ":"), ensure_ascii=False)

with every number in `details` as a float and times as RFC 3339 UTC with
microseconds. `principal` (who wrote the event) is a key only when recorded, so the
bytes of events stored before it existed are unchanged. `canonical_bytes` writes that
text field by field (it is on the ingest path for every event);
tests/audit_svc/test_chain.py holds the `json.dumps` definition above and checks that
both agree.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from datetime import UTC, datetime
from json.encoder import encode_basestring as _s  # what json.dumps uses with ensure_ascii=False
from typing import Any

from audit_svc.model import Event

GENESIS = bytes(32)
CANONICAL_VERSION = 1


def canonical_bytes(event: Event, chain_id: str, seq: int) -> bytes:
    """Deterministic JSON of the event as stored (sorted keys, no spaces, UTF-8)."""
    ip = "" if event.ip_address is None else ip_text(event.ip_address)
    text = "".join(
        (
            '{"action":', _s(event.action),
            ',"chain_id":', _s(chain_id),
            ',"compliance_tags":[', ",".join(map(_s, event.compliance_tags)),
            '],"data_classification":', _s(event.data_classification),
            ',"details":', event.details_json or details_json(event.details),
            ',"event_id":"', str(event.event_id),
            '","event_time":"', time_text(event.event_time),
            '","event_type":', _s(event.event_type),
            ',"ip_address":', _s(ip),
            # Events stored before principals were recorded have none: their bytes stay.
            (',"principal":' + _s(event.principal)) if event.principal else "",
            ',"receive_time":"', time_text(event.receive_time),
            '","result":', _s(event.result),
            ',"seq":', str(seq),
            ',"service":', _s(event.service),
            ',"user_agent":', _s(event.user_agent),
            ',"user_id":', _s(event.user_id),
            ',"username":', _s(event.username),
            ',"v":', str(CANONICAL_VERSION), "}",
        )
    )  # fmt: skip
    return text.encode()


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def details_json(details: dict[str, Any], *, flat: bool = False) -> str:
    """The canonical JSON text of `details`: sorted keys, no spaces, numbers as floats.
    PostgreSQL's jsonb accepts the text as is, so the same text is stored.

    `flat` says the caller checked that every value is a string, a finite float, a
    boolean or null: those are written here directly, the same text as the encoder's
    and several times faster for the few keys events carry."""
    if not flat:
        return _ENCODER.encode(_floats(details))
    items = [_s(k) + ":" + _SCALARS[type(v)](v) for k, v in sorted(details.items())]
    return "{" + ",".join(items) + "}"


_SCALARS: dict[type, Any] = {
    str: _s,
    float: float.__repr__,  # what json writes for a finite float
    bool: lambda v: "true" if v else "false",
    type(None): lambda v: "null",
}


def link(prev_hash: bytes, canonical: bytes) -> bytes:
    """The hash of an event given the hash before it."""
    return hashlib.sha256(prev_hash + canonical).digest()


def time_text(t: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-27T08:36:27.225502+00:00."""
    global _last_time
    last = _last_time  # a batch shares its receive time, often its event time too
    if last[0] is t:
        return last[1]
    text = (t if t.tzinfo is UTC else t.astimezone(UTC)).isoformat(timespec="microseconds")
    _last_time = (t, text)
    return text


_last_time: tuple[datetime | None, str] = (None, "")


@functools.lru_cache(maxsize=16384)
def ip_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The address in its standard text form (cached: callers' addresses repeat)."""
    return str(address)


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
