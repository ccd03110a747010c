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
from collections.abc import Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring as _s  # what json.dumps uses with ensure_ascii=False
from typing import Any

from audit_svc.model import Event, JsonText, Ready

GENESIS = bytes(32)
CANONICAL_VERSION = 1


def canonical_bytes(event: Event, chain_id: str, seq: int) -> bytes:
    """Deterministic JSON of the event as stored (sorted keys, no spaces, UTF-8)."""
    before, after = _halves(event, chain_id)
    return before + str(seq).encode() + after


def ready(event: Event, chain_id: str) -> Ready:
    """A valid `Event` made ready for `chain_id` (tools and tests that write events they
    built; the ingest path makes its `Ready` records straight from the wire)."""
    before, after = _halves(event, chain_id)
    row = (
        str(event.event_id), event.event_type, event.user_id, event.username,
        event.ip_address, event.user_agent, event.service, event.action, event.result,
        JsonText(event.details_json or details_json(event.details)),
        list(event.compliance_tags), event.data_classification, event.event_time,
        event.receive_time, event.principal, event.username_token, event.ip_token, "",
    )  # fmt: skip
    if isinstance(event.ip_address, str):  # sealed (audit_svc.privacy): not an inet
        row = (*row[:4], None, *row[5:-1], event.ip_address)
    return Ready(row[0], before, after, row)


def _halves(event: Event, chain_id: str) -> tuple[bytes, bytes]:
    address = event.ip_address  # text once sealed (audit_svc.privacy)
    ip = "" if address is None else address if isinstance(address, str) else ip_text(address)
    return canonical_halves(
        event.action, _s(chain_id), event.compliance_tags, event.data_classification,
        event.details_json or details_json(event.details), str(event.event_id),
        time_text(event.event_time), event.event_type, ip,
        principal_key(event.principal), time_text(event.receive_time), event.result,
        event.service, event.user_agent, event.user_id, event.username,
    )  # fmt: skip


def canonical_halves(
    action: str,
    chain_json: str,
    tags: Sequence[str],
    classification: str,
    details: str,
    event_id: str,
    event_time: str,
    event_type: str,
    ip: str,
    principal: str,
    receive_time: str,
    result: str,
    service: str,
    user_agent: str,
    user_id: str,
    username: str,
) -> tuple[bytes, bytes]:
    """The canonical bytes before and after the seq's digits, from each field's text
    (keys in order): `chain_json` is `_s(chain_id)` and `principal` is
    `principal_key(...)`, made once per batch; `details` the canonical JSON text, the
    times `time_text`'s, `ip` the address's standard text or empty. The one place the
    layout is written: `canonical_bytes` and the ingest pass both come here."""
    before = "".join(
        (
            '{"action":', _s(action),
            ',"chain_id":', chain_json,
            ',"compliance_tags":[', ",".join(map(_s, tags)),
            '],"data_classification":', _s(classification),
            ',"details":', details,
            ',"event_id":"', event_id,
            '","event_time":"', event_time,
            '","event_type":', _s(event_type),
            ',"ip_address":', _s(ip),
            principal,
            ',"receive_time":"', receive_time,
            '","result":', _s(result),
            ',"seq":',
        )
    )  # fmt: skip
    after = "".join(
        (
            ',"service":', _s(service),
            ',"user_agent":', _s(user_agent),
            ',"user_id":', _s(user_id),
            ',"username":', _s(username),
            ',"v":', str(CANONICAL_VERSION), "}",
        )
    )  # fmt: skip
    return before.encode(), after.encode()


def principal_key(principal: str) -> str:
    """The principal's part of the canonical text: none for events stored before
    principals were recorded, so their bytes stay."""
    return (',"principal":' + _s(principal)) if principal else ""


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def details_json(details: dict[str, Any]) -> str:
    """The canonical JSON text of `details`: sorted keys, no spaces, numbers as floats.
    PostgreSQL's jsonb accepts the text as is, so the same text is stored."""
    return flat_details_json(details) or _ENCODER.encode(_floats(details))


def flat_details_json(details: dict[str, Any]) -> str | None:
    """`details_json` for the common case, one level of strings, finite floats,
    booleans and nulls without NUL (what jsonb can hold), written here directly: the
    encoder's text, several times faster for the few keys events carry. None for
    anything else (the caller takes the full path)."""
    items = []
    for key in sorted(details):
        value = details[key]
        kind = type(value)
        if "\x00" in key:
            return None
        if kind is str:
            if "\x00" in value:
                return None
            items.append(_s(key) + ":" + _s(value))
        elif kind is float:
            if value - value != 0.0:  # NaN or an infinity
                return None
            items.append(_s(key) + ":" + float.__repr__(value))  # what json writes
        elif kind is bool:
            items.append(_s(key) + (":true" if value else ":false"))
        elif value is None:
            items.append(_s(key) + ":null")
        else:
            return None
    return "{" + ",".join(items) + "}"


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
