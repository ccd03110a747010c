"""The one ingest pass every entry point goes through (gRPC unary, batch, stream, REST,
RabbitMQ): for each event of a batch, straight from the transport's message, its checks,
its canonical bytes around the seq the chain will give it, and its COPY row, in one
loop with no domain object in between (`Ready` is a tuple).

The checks are written for the common case of a valid event: each field is tested as
cheaply as it can be (values seen valid before are remembered), and any event that
fails a test is checked again by `_violations`, which lists every problem in the order
and words the service has always used. The steps other concerns add (the time window,
the writer's grant) are small functions the pass calls per event.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring as _s  # what the chain escapes with
from typing import Any, Protocol, cast

from audit_svc.access.policy import WriterGrant
from audit_svc.ingest import time_window
from audit_svc.integrity.chain import (
    canonical_halves,
    details_json,
    flat_details_json,
    principal_key,
    time_text,
)
from audit_svc.model import EventInput, EventResult, FieldViolation, JsonText, Outcome, Ready
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
    **{name: n for name, (n, _) in limits.EVENT_TEXT.items()},
    "service": int(limits.NAME.max_length or 0),
    "action": int(limits.NAME.max_length or 0),
    "compliance_tags": int(limits.COMPLIANCE_TAG.max_length or 0),
}
EVENT_TYPE = re.compile(limits.EVENT_TYPE.pattern or "")
NAME = re.compile(limits.NAME.pattern or "")
# The standard text of a UUID, as str(uuid.UUID(...)) writes it.
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REASON = "INVALID_EVENT"
# Control characters (C0, DEL, C1, the Unicode line and paragraph separators): refused in
# the fields that name someone or something (user_id, username, compliance tags), which
# land in filters, exports and log lines; free text (user_agent, details) may carry them
# (an attack's payload is evidence), JSON output escapes them. NUL is refused everywhere.
_CONTROL = re.compile(f"[{limits.CONTROLS}]").search
_NAMING = frozenset({"user_id", "username"})


class RawEvent(Protocol):
    """An event as a transport received it: its text fields by name (an `AuditEvent`
    message, or an `EventInput`); `details` and `event_time` are read through `Wire`."""

    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def ip_address(self) -> str: ...
    @property
    def user_agent(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def result(self) -> str: ...
    @property
    def compliance_tags(self) -> Sequence[str]: ...
    @property
    def data_classification(self) -> str: ...


class Wire(Protocol):
    """How the pass reads the two fields whose form is the transport's."""

    def details(self, raw: Any) -> dict[str, Any]:
        """The details as Python values (numbers as floats; NaN kept, to be refused)."""
        ...

    def event_time(self, raw: Any) -> datetime | None:
        """The event time, aware and in UTC; None when not sent; ValueError (or
        OverflowError) when it is not a valid timestamp."""
        ...


class _Inputs:
    """`Wire` for `EventInput`s (tests and tools that build them)."""

    def details(self, raw: EventInput) -> dict[str, Any]:
        return raw.details

    def event_time(self, raw: EventInput) -> datetime | None:
        return None if raw.event_time is None else raw.event_time.astimezone(UTC)


INPUTS: Wire = _Inputs()


# Seals one valid event's personal fields (audit_svc.privacy.sealer.Sealer.for_batch):
# (event_id text, user_id, username, address text, user_agent, details, classification)
# -> (user_id's pseudonym, username, address text, user_agent, details (None:
# unchanged), username pseudonym, address pseudonym).
SealHook = Callable[
    [str, str, str, str, str, dict[str, Any], str],
    tuple[str, str, str, str, dict[str, Any] | None, bytes | None, bytes | None],
]


@dataclass(frozen=True, slots=True)
class Rules:
    """What one batch is checked against, and what its events are stamped with."""

    now: datetime  # the receive time (UTC)
    max_skew: timedelta  # how far in the future an event time may be
    max_age: timedelta | None  # how far in the past; None: the writer may backfill
    grant: WriterGrant  # the services and event types the writer may write
    chain_id: str
    principal: str  # who wrote the batch, recorded with each event
    # Seals each valid event's personal fields before its bytes are made (privacy's
    # Sealer.for_batch); None: stored as sent.
    seal: SealHook | None = None


@dataclass(slots=True)
class Admitted:
    """A batch after the pass: its valid events, ready for the chain, with the index
    of each in the batch, and a result for each rejected one, by index."""

    ready: list[Ready] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    rejected: dict[int, EventResult] = field(default_factory=dict)


def admit(events: Sequence[RawEvent], wire: Wire, rules: Rules) -> Admitted:
    """Check every event of a batch; make each valid one `Ready` for `rules.chain_id`.

    A rejected event gets INVALID_EVENT with every problem found (field and why),
    EVENT_TIME_TOO_OLD (time_window), or the grant's SERVICE_MISMATCH /
    EVENT_TYPE_MISMATCH, checked in that order.
    """
    out = Admitted()
    now, max_age, grant = rules.now, rules.max_age, rules.grant
    newest = now + rules.max_skew
    oldest = now if max_age is None else now - max_age
    receive_text = time_text(now)
    chain_json = _s(rules.chain_id)
    principal, principal_json = rules.principal, principal_key(rules.principal)
    seal = rules.seal
    types, names, tags_seen = _TYPES, _NAMES, _TAGS
    verdicts: dict[tuple[str, str], tuple[str, FieldViolation] | None] = {}  # the grant's
    id_max, name_max, agent_max = MAX_LEN["user_id"], MAX_LEN["username"], MAX_LEN["user_agent"]
    for index, raw in enumerate(events):
        try:
            event_time = wire.event_time(raw)
        except (ValueError, OverflowError):
            event_time = _BAD_TIME
        event_type, service, action = raw.event_type, raw.service, raw.action
        result, classification = raw.result, raw.data_classification
        user_id, username, user_agent = raw.user_id, raw.username, raw.user_agent
        event_id = _event_id(raw.event_id)
        ip = _ip(raw.ip_address) if raw.ip_address else _NO_IP
        tags = raw.compliance_tags[:]  # a list from a message (cheaper than list())
        details = wire.details(raw)
        text = _details_text(details)
        if event_time is None:
            event_time = now
        if not (
            event_time is not _BAD_TIME
            and event_id
            and type(ip) is tuple
            and text
            and (event_type in types or _type_ok(event_type))
            and (service in names or _name_ok(service))
            and (action in names or _name_ok(action))
            and result in RESULTS
            and classification in CLASSIFICATIONS
            and len(user_id) <= id_max
            and len(username) <= name_max
            and len(user_agent) <= agent_max
            and not _CONTROL(user_id)
            and not _CONTROL(username)
            and "\x00" not in user_agent
            and (tags_seen.issuperset(tags) or _tags_ok(tags))
            and event_time <= newest
        ):
            problems = _violations(raw, wire, now, rules.max_skew)
            if problems:
                out.rejected[index] = EventResult(
                    index, raw.event_id, Outcome.REJECTED, None, REASON, tuple(problems)
                )
                continue
        if max_age is not None and event_time < oldest:
            old = time_window.too_old(event_time, now, max_age)
            if old is not None:
                out.rejected[index] = EventResult(
                    index, raw.event_id, Outcome.REJECTED, None, time_window.REASON, (old,)
                )
                continue
        if (denied := verdicts.get((service, event_type), _UNSEEN)) is _UNSEEN:
            denied = verdicts[service, event_type] = grant.violation(service, event_type)
        if denied:
            reason, violation = denied
            out.rejected[index] = EventResult(
                index, raw.event_id, Outcome.REJECTED, None, reason, (violation,), denied=True
            )
            continue
        address, ip_text = cast(_Address, ip)  # checked above
        username_token = ip_token = None
        ip_sealed = ""
        if seal is not None:
            user_id, username, ip_text, user_agent, sealed_details, username_token, ip_token = seal(
                event_id, user_id, username, ip_text, user_agent, details, classification
            )
            if sealed_details is not None:
                text = details_json(sealed_details)
            if ip_text:
                address, ip_sealed = None, ip_text
        before, after = canonical_halves(
            action, chain_json, tags, classification, text, event_id, time_text(event_time),
            event_type, ip_text, principal_json, receive_text, result, service, user_agent,
            user_id, username,
        )  # fmt: skip
        row = (
            event_id, event_type, user_id, username, address, user_agent, service, action,
            result, JsonText(text), tags, classification, event_time, now, principal,
            username_token, ip_token, ip_sealed,
        )  # fmt: skip
        out.ready.append(Ready(event_id, before, after, row))
        out.indexes.append(index)
    return out


def validate_batch_size(count: int) -> list[FieldViolation]:
    """Problems with the size of a batch as a whole (not of its events)."""
    if count > MAX_BATCH:
        return [FieldViolation("events", f"{count} events; at most {MAX_BATCH} per batch")]
    return []


_Address = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, str]
_BAD_TIME = datetime.min.replace(tzinfo=UTC)  # a sentinel: the timestamp did not decode
_NO_IP: _Address = (None, "")
_UNSEEN: Any = object()
# Values seen valid (bounded): most batches repeat a few types, services and tags.
_TYPES: set[str] = set()
_NAMES: set[str] = set()
_TAGS: set[str] = set()
_REMEMBERED = 4096
_NAME_MAX = min(MAX_LEN["service"], MAX_LEN["action"])  # the same limit today


def _remember(seen: set[str], value: str) -> None:
    if len(seen) >= _REMEMBERED:
        seen.clear()
    seen.add(value)


def _type_ok(value: str) -> bool:
    if len(value) <= MAX_LEN["event_type"] and EVENT_TYPE.fullmatch(value):
        _remember(_TYPES, value)
        return True
    return False


def _name_ok(value: str) -> bool:
    if len(value) <= _NAME_MAX and NAME.fullmatch(value):
        _remember(_NAMES, value)
        return True
    return False


def _tags_ok(tags: Sequence[str]) -> bool:
    if len(tags) > MAX_TAGS:
        return False
    for tag in tags:
        if not tag or len(tag) > MAX_LEN["compliance_tags"] or _CONTROL(tag):
            return False
    for tag in tags:
        _remember(_TAGS, tag)
    return True


def _event_id(value: str) -> str:
    """The id's standard text (a new UUIDv7 when none was sent); empty when invalid."""
    if _UUID_TEXT.fullmatch(value):
        return value
    if not value:
        return str(uuid7())
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return ""


@functools.lru_cache(maxsize=16384)
def _ip(value: str) -> _Address | str:
    """The address and its standard text, or why it is not one (cached: callers'
    addresses repeat)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return "is not an IPv4 or IPv6 address"
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return "must not carry a zone index (%...)"
    return address, str(address)


def _details_text(details: dict[str, Any]) -> str:
    """The canonical text of valid details; empty when they are not (or too large)."""
    if not details:
        return "{}"
    text = flat_details_json(details)
    if text is None:
        if next(_json_problems(details, "details", 0), None) is not None:
            return ""
        text = details_json(details)
    if len(text) * 4 > MAX_DETAILS_BYTES and len(text.encode()) > MAX_DETAILS_BYTES:
        return ""
    return text


def _violations(
    raw: RawEvent, wire: Wire, now: datetime, max_skew: timedelta
) -> list[FieldViolation]:
    """Every problem of an event the fast checks did not pass, in the service's order
    and words (clients and tests match them by field)."""
    problems: list[FieldViolation] = []

    def bad(name: str, why: str) -> None:
        problems.append(FieldViolation(name, why))

    try:
        event_time = wire.event_time(raw)
    except (ValueError, OverflowError):
        bad("event_time", "is not a valid timestamp")
        event_time = None
    for name, limit in _STRING_FIELDS:
        value: str = getattr(raw, name)
        if len(value) > limit:
            bad(name, f"longer than {limit} characters")
        if "\x00" in value:
            bad(name, "contains a NUL character")
        elif name in _NAMING and _CONTROL(value):
            bad(name, "contains a control character")

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

    if raw.event_id and not _event_id(raw.event_id):
        bad("event_id", "must be a UUID (the client library sends UUIDv7)")
    if raw.ip_address and isinstance(why := _ip(raw.ip_address), str):
        bad("ip_address", why)
    tags = raw.compliance_tags
    if len(tags) > MAX_TAGS:
        bad("compliance_tags", f"more than {MAX_TAGS} tags")
    for i, tag in enumerate(tags):
        if not tag or len(tag) > MAX_LEN["compliance_tags"] or _CONTROL(tag):
            bad(f"compliance_tags[{i}]", "must be 1 to 64 characters, without control characters")
    _details_problems(wire.details(raw), bad)

    if event_time is not None and event_time - now > max_skew:
        bad("event_time", f"is more than {int(max_skew.total_seconds())} s in the future")
    return problems


_STRING_FIELDS = tuple((name, n) for name, n in MAX_LEN.items() if name != "compliance_tags")


def _one_of(value: str, allowed: frozenset[str]) -> str:
    choices = ", ".join(sorted(allowed))
    return f"is required; one of {choices}" if not value else f"must be one of {choices}"


def _details_problems(details: dict[str, Any], bad: Any) -> None:
    if not details:
        return
    text = flat_details_json(details)
    if text is None:
        for path, why in _json_problems(details, "details", 0):
            bad(path, why)
            return  # the first one found: the rest often follow from it
        text = details_json(details)
    size = len(text.encode())
    if size > MAX_DETAILS_BYTES:
        bad("details", f"is {size} bytes as JSON; at most {MAX_DETAILS_BYTES}")


def _json_problems(value: Any, path: str, depth: int) -> Iterator[tuple[str, str]]:
    """Values PostgreSQL's jsonb cannot hold, or nesting deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        yield path, f"nested deeper than {MAX_DEPTH} levels"
    elif isinstance(value, dict):
        for key in sorted(value):  # the order of the canonical text, whatever the map's
            if "\x00" in key:
                yield path, "has a key with a NUL character"
            yield from _json_problems(value[key], f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_problems(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, str) and "\x00" in value:
        yield path, "contains a NUL character"
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, "is not a finite number"
