"""The one validation every ingest path goes through (gRPC unary, batch, stream, REST)."""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from audit_svc.integrity.chain import details_json
from audit_svc.model import Event, EventInput, FieldViolation
from meshkit import limits
from meshkit.ids import uuid7

# Bounds and patterns from meshkit.limits, which the OpenAPI documents print.
RESULTS = frozenset(limits.RESULT.choices)
CLASSIFICATIONS = frozenset(limits.CLASSIFICATION.choices)
MAX_BATCH = int(limits.BATCH.max_items or 0)
MAX_DETAILS_BYTES = 16 * 1024
MAX_TAGS = int(limits.COMPLIANCE_TAG.max_items or 0)
MAX_DEPTH = 32
# Longest accepted value of each string field, in characters.
MAX_LEN = {
    "event_type": int(limits.EVENT_TYPE.max_length or 0),
    **limits.EVENT_TEXT,
    "service": int(limits.NAME.max_length or 0),
    "action": int(limits.NAME.max_length or 0),
    "compliance_tags": int(limits.COMPLIANCE_TAG.max_length or 0),
}
EVENT_TYPE = re.compile(limits.EVENT_TYPE.pattern or "")
NAME = re.compile(limits.NAME.pattern or "")


class Invalid(Exception):
    """An event failed validation; ``violations`` says where and why."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


def validate(raw: EventInput, now: datetime, max_skew: timedelta) -> Event:
    """Return the normalised event, or raise `Invalid` listing every problem found.

    This runs for every event ingested; the checks are written for the common case
    of a valid event (see bench/ and BENCHMARKS.md), with the same messages either way.
    """
    problems: list[FieldViolation] = list(raw.problems)

    def bad(name: str, why: str) -> None:
        problems.append(FieldViolation(name, why))

    for name, limit in _STRING_FIELDS:
        value: str = getattr(raw, name)
        if len(value) > limit:
            bad(name, f"longer than {limit} characters")
        if "\x00" in value:
            bad(name, "contains a NUL character")

    if not raw.event_type:
        bad("event_type", "is required")
    elif not EVENT_TYPE.fullmatch(raw.event_type):
        bad("event_type", "must be dotted lower-case words, such as auth.login_success")
    for name, value in (("service", raw.service), ("action", raw.action)):
        if not value:
            bad(name, "is required")
        elif not NAME.fullmatch(value):
            bad(name, "must be lower-case letters, digits, '.', '_' or '-'")
    if raw.result not in RESULTS:
        bad("result", _one_of(raw.result, RESULTS))
    if raw.data_classification not in CLASSIFICATIONS:
        bad("data_classification", _one_of(raw.data_classification, CLASSIFICATIONS))

    event_id = _event_id(raw.event_id, bad)
    ip = _ip(raw.ip_address, bad)
    tags = _tags(raw.compliance_tags, bad)
    details, text = _details(raw.details, bad)

    event_time = now if raw.event_time is None else raw.event_time.astimezone(UTC)
    if event_time - now > max_skew:
        bad("event_time", f"is more than {int(max_skew.total_seconds())} s in the future")

    if problems:
        raise Invalid(problems)
    return Event(
        event_id=event_id,
        event_type=raw.event_type,
        user_id=raw.user_id,
        username=raw.username,
        ip_address=ip,
        user_agent=raw.user_agent,
        service=raw.service,
        action=raw.action,
        result=raw.result,
        details=details,
        compliance_tags=tags,
        data_classification=raw.data_classification,
        event_time=event_time,
        receive_time=now,
        details_json=text,
    )


_STRING_FIELDS = tuple((name, n) for name, n in MAX_LEN.items() if name != "compliance_tags")


def _one_of(value: str, allowed: frozenset[str]) -> str:
    choices = ", ".join(sorted(allowed))
    return f"is required; one of {choices}" if not value else f"must be one of {choices}"


def _event_id(value: str, bad: Any) -> uuid.UUID:
    if not value:
        return uuid7()
    try:
        return uuid.UUID(value)
    except ValueError:
        bad("event_id", "must be a UUID (the client library sends UUIDv7)")
        return uuid.UUID(int=0)


def _ip(value: str, bad: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    address = _parse_ip(value)
    if isinstance(address, str):
        bad("ip_address", address)
        return None
    return address


@functools.lru_cache(maxsize=16384)
def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    """The address, or why it is not one (cached: callers' addresses repeat)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return "is not an IPv4 or IPv6 address"
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return "must not carry a zone index (%...)"
    return address


def _tags(tags: tuple[str, ...], bad: Any) -> tuple[str, ...]:
    if len(tags) > MAX_TAGS:
        bad("compliance_tags", f"more than {MAX_TAGS} tags")
    for i, tag in enumerate(tags):
        if not tag or len(tag) > MAX_LEN["compliance_tags"] or "\x00" in tag:
            bad(f"compliance_tags[{i}]", "must be 1 to 64 characters, without NUL")
    return tags


def _details(details: dict[str, Any], bad: Any) -> tuple[dict[str, Any], str]:
    """The details and their canonical JSON text (as the chain hashes and jsonb stores)."""
    if not details:
        return details, "{}"
    flat = _flat_and_clean(details)
    if not flat:
        for path, why in _json_problems(details, "details", 0):
            bad(path, why)
            return {}, "{}"
    text = details_json(details, flat=flat)
    size = len(text.encode())
    if size > MAX_DETAILS_BYTES:
        bad("details", f"is {size} bytes as JSON; at most {MAX_DETAILS_BYTES}")
    return details, text


def _flat_and_clean(details: dict[str, Any]) -> bool:
    """True for the common case, one level of strings, finite floats, booleans and
    nulls without NUL; anything else takes the full walk of `_json_problems`."""
    for key, value in details.items():
        kind = type(value)
        if "\x00" in key:
            return False
        if kind is str:
            if "\x00" in value:
                return False
        elif kind is float:
            if value - value != 0.0:  # NaN or an infinity
                return False
        elif kind is not bool and value is not None:
            return False
    return True


def _json_problems(value: Any, path: str, depth: int) -> Iterator[tuple[str, str]]:
    """Values PostgreSQL's jsonb cannot hold, or nesting deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        yield path, f"nested deeper than {MAX_DEPTH} levels"
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield path, "has a key with a NUL character"
            yield from _json_problems(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_problems(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, str) and "\x00" in value:
        yield path, "contains a NUL character"
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, "is not a finite number"


def validate_batch_size(count: int) -> list[FieldViolation]:
    """Problems with the size of a batch as a whole (not of its events)."""
    if count > MAX_BATCH:
        return [FieldViolation("events", f"{count} events; at most {MAX_BATCH} per batch")]
    return []
