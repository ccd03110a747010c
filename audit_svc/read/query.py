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
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from audit_svc.errors import InvalidArgument
from audit_svc.model import FieldViolation, StoredEvent
from audit_svc.read.cold import ColdTier
from audit_svc.read.cold import page as cold_page
from audit_svc.read.filters import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Match,
    Position,
    QueryFilters,
    QuerySpec,
    micros,
)
from audit_svc.storage.protocols import EventReader

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Position",
    "QueryFilters",
    "QueryPage",
    "QuerySpec",
    "parse_query",
    "run_query",
]

INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
# An exact dotted type, or a dotted prefix followed by `.*` (`auth.*`, `auth.mfa.*`).
EVENT_TYPE_FILTER = re.compile(r"(?P<base>[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*)(?P<star>\.\*)?")

_TOKEN_VERSION = 1
# version, event_time in µs since the epoch, event_id, filter fingerprint.
_TOKEN_BODY = struct.Struct(">Bq16s16s")
_MAC_SIZE = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of results, newest first; `next_page_token` is empty on the last page."""

    events: list[StoredEvent]
    next_page_token: str


def parse_query(
    filters: QueryFilters,
    *,
    key: bytes,
    page_size: int = 0,
    limit: int = 0,
    page_token: str = "",
) -> QuerySpec:
    """Validate a request's filters and paging into a `QuerySpec`, or raise
    `InvalidArgument`.

    Every bad filter is named at once. A bad page token (only checked when the filters
    are valid, since its fingerprint covers them) raises with reason INVALID_PAGE_TOKEN.
    `key` is the secret that signs page tokens (`Settings.page_token_secret`).
    """
    problems: list[FieldViolation] = []

    def bad(name: str, why: str) -> None:
        problems.append(FieldViolation(name, why))

    size = _page_size(page_size, limit, bad)
    normal: dict[str, Any] = {}
    for name, match, value in filters.set_filters():
        check = _CHECKS.get(match, _text)
        normal[name] = check(name, value, bad)
    start, end = normal.get("start_time"), normal.get("end_time")
    if start is not None and end is not None and not start < end:
        bad("end_time", "must be after start_time")
    if problems:
        raise InvalidArgument(problems)

    spec = QuerySpec(replace(filters, **normal), size)
    if not page_token:
        return spec
    return replace(spec, after=decode_page_token(page_token, spec.fingerprint(), key))


Bad = Callable[[str, str], None]  # records one violation


def _text(name: str, value: str, bad: Bad) -> str:
    if "\x00" in value:
        bad(name, "contains a NUL character")
    return value


def _event_type(name: str, value: str, bad: Bad) -> str:
    match = EVENT_TYPE_FILTER.fullmatch(value)
    if match and not match["star"] and "." not in value:
        match = None  # stored types are always dotted: an undotted exact type never matches
    if match is None:
        bad(name, "must be a dotted type such as auth.login_success, or a prefix: auth.*")
    return value


def _address(name: str, value: str, bad: Bad) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        bad(name, "is not an IPv4 or IPv6 address")
        return value


def _details(name: str, text: str, bad: Bad) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        bad(name, "is not valid JSON")
        return text
    if not isinstance(value, dict):
        bad(name, 'must be a JSON object, such as {"mfa_used": true}')
    elif _has_nul(value):
        bad(name, "contains a NUL character")
    return text


def _time(name: str, t: datetime, bad: Bad) -> datetime:
    """In UTC; a naive time is taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


# How each kind of filter is checked and normalised; EQUALS and TAG are plain text.
_CHECKS: dict[Match, Callable[[str, Any, Bad], Any]] = {
    Match.TYPE: _event_type,
    Match.ADDRESS: _address,
    Match.CONTAINS: _details,
    Match.FROM: _time,
    Match.BEFORE: _time,
}


async def run_query(
    events: EventReader, spec: QuerySpec, key: bytes, cold: ColdTier | None = None
) -> QueryPage:
    """One page of the events matching `spec`, newest first, with the next token;
    archived events too when `spec.include_archive` (and a cold tier is given)."""
    found, more = await cold_page(events, cold, spec)
    return QueryPage(found, next_page_token(spec, found, more, key))


def next_page_token(spec: QuerySpec, events: list[StoredEvent], more: bool, key: bytes) -> str:
    """The token for the page after `events`; empty when there is none (`more` is false)."""
    if not more or not events:
        return ""
    last = events[-1].event
    return encode_page_token(Position(last.event_time, last.event_id), spec.fingerprint(), key)


def encode_page_token(position: Position, fingerprint: bytes, key: bytes) -> str:
    """An opaque URL-safe token for `position`, bound to the filters' fingerprint."""
    body = _TOKEN_BODY.pack(
        _TOKEN_VERSION, micros(position.event_time), position.event_id.bytes, fingerprint
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
    version, at, event_id, token_fingerprint = _TOKEN_BODY.unpack(body)
    if version != _TOKEN_VERSION:
        raise _bad_token("was made by another version of this service")
    if not hmac.compare_digest(token_fingerprint, fingerprint):
        raise _bad_token("was made for other filters; send the same filters as the first page")
    return Position(_EPOCH + timedelta(microseconds=at), uuid.UUID(bytes=event_id))


def _page_size(page_size: int, limit: int, bad: Bad) -> int:
    if page_size < 0:
        bad("page_size", "must not be negative")
    if limit < 0:
        bad("limit", "must not be negative")
    size = page_size or limit
    if size <= 0:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def _has_nul(value: Any) -> bool:
    """True when a JSON value holds a NUL character, which jsonb cannot store."""
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return isinstance(value, str) and "\x00" in value


def _bad_token(why: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation("page_token", why)], reason=INVALID_PAGE_TOKEN)
