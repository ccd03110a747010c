"""The filters of a `Query`, validated, and its opaque page tokens.

A page token carries the keyset position of the last event of a page (event_time,
event_id) and a fingerprint of the filters it was made for, signed with HMAC-SHA256. So
the next page starts exactly after the last event shown, even while new events arrive,
and a token that was altered or is sent with other filters is refused
(INVALID_ARGUMENT, reason INVALID_PAGE_TOKEN) instead of silently paging something else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import struct
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from audit_svc.errors import InvalidArgument
from audit_svc.model import FieldViolation, JsonObject, StoredEvent
from audit_svc.storage import event_reads as reads

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
# An exact dotted type, or a dotted prefix followed by `.*` (`auth.*`, `auth.mfa.*`).
EVENT_TYPE_FILTER = re.compile(r"(?P<base>[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*)(?P<star>\.\*)?")

_TOKEN_VERSION = 1
# version, event_time in µs since the epoch, event_id, filter fingerprint.
_TOKEN_BODY = struct.Struct(">Bq16s16s")
_MAC_SIZE = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the (event_time, event_id) of its last, oldest event."""

    event_time: datetime
    event_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """A validated query: every set filter must match. Empty string or None means unset.

    `event_type_prefix` is true when `event_type` is a prefix (`auth.` for `auth.*`).
    `after` is the position decoded from the page token; None on the first page.
    """

    event_type: str = ""
    event_type_prefix: bool = False
    user_id: str = ""
    username: str = ""
    service: str = ""
    action: str = ""
    result: str = ""
    compliance_tag: str = ""
    data_classification: str = ""
    ip_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    details_contains: JsonObject | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    after: Position | None = None

    def fingerprint(self) -> bytes:
        """16 bytes that change whenever a filter changes (not the page size or position)."""
        doc = {
            "event_type": self.event_type,
            "event_type_prefix": self.event_type_prefix,
            "user_id": self.user_id,
            "username": self.username,
            "service": self.service,
            "action": self.action,
            "result": self.result,
            "compliance_tag": self.compliance_tag,
            "data_classification": self.data_classification,
            "ip_address": "" if self.ip_address is None else str(self.ip_address),
            "start_time": None if self.start_time is None else _micros(self.start_time),
            "end_time": None if self.end_time is None else _micros(self.end_time),
            "details_contains": self.details_contains,
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).digest()[:16]


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of results, newest first; `next_page_token` is empty on the last page."""

    events: list[StoredEvent]
    next_page_token: str


def parse_query(
    *,
    key: bytes,
    event_type: str = "",
    user_id: str = "",
    username: str = "",
    service: str = "",
    action: str = "",
    result: str = "",
    compliance_tag: str = "",
    data_classification: str = "",
    ip_address: str = "",
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    details_contains: str = "",
    page_size: int = 0,
    limit: int = 0,
    page_token: str = "",
) -> QuerySpec:
    """Validate the request's filters into a `QuerySpec`, or raise `InvalidArgument`.

    Every bad filter is named at once. A bad page token (only checked when the filters
    are valid, since its fingerprint covers them) raises with reason INVALID_PAGE_TOKEN.
    `key` is the secret that signs page tokens (`Settings.page_token_secret`).
    """
    problems: list[FieldViolation] = []

    def bad(name: str, why: str) -> None:
        problems.append(FieldViolation(name, why))

    texts = {
        "user_id": user_id,
        "username": username,
        "service": service,
        "action": action,
        "result": result,
        "compliance_tag": compliance_tag,
        "data_classification": data_classification,
    }
    for name, value in texts.items():
        if "\x00" in value:
            bad(name, "contains a NUL character")
    match = EVENT_TYPE_FILTER.fullmatch(event_type) if event_type else None
    if match and not match["star"] and "." not in event_type:
        match = None  # stored types are always dotted: an undotted exact type never matches
    if event_type and match is None:
        bad("event_type", "must be a dotted type such as auth.login_success, or a prefix: auth.*")
    prefix = bool(match and match["star"])
    type_filter = (match["base"] + "." if prefix else match["base"]) if match else ""

    size = _page_size(page_size, limit, bad)
    address = None
    if ip_address:
        try:
            address = ipaddress.ip_address(ip_address)
        except ValueError:
            bad("ip_address", "is not an IPv4 or IPv6 address")
    details = _details(details_contains, bad)
    start, end = _utc(start_time), _utc(end_time)
    if start is not None and end is not None and not start < end:
        bad("end_time", "must be after start_time")
    if problems:
        raise InvalidArgument(problems)

    spec = QuerySpec(
        event_type=type_filter,
        event_type_prefix=prefix,
        user_id=user_id,
        username=username,
        service=service,
        action=action,
        result=result,
        compliance_tag=compliance_tag,
        data_classification=data_classification,
        ip_address=address,
        start_time=start,
        end_time=end,
        details_contains=details,
        page_size=size,
    )
    if not page_token:
        return spec
    return replace(spec, after=decode_page_token(page_token, spec.fingerprint(), key))


async def run_query(db: reads.Database, spec: QuerySpec, key: bytes) -> QueryPage:
    """One page of the events matching `spec`, newest first, with the next token."""
    async with reads.acquire(db) as conn:
        events, more = await reads.query_events(conn, spec)
    return QueryPage(events, next_page_token(spec, events, more, key))


def next_page_token(spec: QuerySpec, events: list[StoredEvent], more: bool, key: bytes) -> str:
    """The token for the page after `events`; empty when there is none (`more` is false)."""
    if not more or not events:
        return ""
    last = events[-1].event
    return encode_page_token(Position(last.event_time, last.event_id), spec.fingerprint(), key)


def encode_page_token(position: Position, fingerprint: bytes, key: bytes) -> str:
    """An opaque URL-safe token for `position`, bound to the filters' fingerprint."""
    body = _TOKEN_BODY.pack(
        _TOKEN_VERSION, _micros(position.event_time), position.event_id.bytes, fingerprint
    )
    mac = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_SIZE]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


def decode_page_token(token: str, fingerprint: bytes, key: bytes) -> Position:
    """The position a token carries; InvalidArgument(INVALID_PAGE_TOKEN) if it was
    altered, made with another key, or made for other filters."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise _bad_token("is not a page token from this service") from None
    body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
    if len(body) != _TOKEN_BODY.size:
        raise _bad_token("is not a page token from this service")
    expected = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_SIZE]
    if not hmac.compare_digest(mac, expected):
        raise _bad_token("is not a page token from this service, or has expired")
    version, micros, event_id, token_fingerprint = _TOKEN_BODY.unpack(body)
    if version != _TOKEN_VERSION:
        raise _bad_token("was made by another version of this service")
    if not hmac.compare_digest(token_fingerprint, fingerprint):
        raise _bad_token("was made for other filters; send the same filters as the first page")
    return Position(_EPOCH + timedelta(microseconds=micros), uuid.UUID(bytes=event_id))


def _page_size(page_size: int, limit: int, bad: Any) -> int:
    if page_size < 0:
        bad("page_size", "must not be negative")
    if limit < 0:
        bad("limit", "must not be negative")
    size = page_size or limit
    if size <= 0:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def _details(text: str, bad: Any) -> JsonObject | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        bad("details_contains", "is not valid JSON")
        return None
    if not isinstance(value, dict):
        bad("details_contains", 'must be a JSON object, such as {"mfa_used": true}')
        return None
    if _has_nul(value):
        bad("details_contains", "contains a NUL character")
        return None
    return value


def _has_nul(value: Any) -> bool:
    """True when a JSON value holds a NUL character, which jsonb cannot store."""
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return isinstance(value, str) and "\x00" in value


def _bad_token(why: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation("page_token", why)], reason=INVALID_PAGE_TOKEN)


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)
