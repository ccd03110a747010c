"""The filters of a `Query`, written once: `QueryFilters` is the list. The transport
fills it by field name from the request, `query.parse_query` validates it, the SQL
builder (`storage.event_reads`) turns each set field into a predicate by its `Match`,
and the page-token fingerprint covers every field. A new filter is one line here (and
its predicate in the SQL builder if its kind of match is new).
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Match(enum.Enum):
    """How a set filter selects events."""

    TYPE = "type"  # an exact dotted type, or a dotted prefix with `.*` (auth.*)
    EQUALS = "equals"  # the column of the same name equals the value
    TAG = "tag"  # one of compliance_tags
    ADDRESS = "address"  # ip_address, an IPv4 or IPv6 address
    CONTAINS = "contains"  # details contains this JSON object
    FROM = "from"  # event_time >= value
    BEFORE = "before"  # event_time < value


def _filter(match: Match, default: Any = "") -> Any:
    return field(default=default, metadata={"match": match})


@dataclass(frozen=True, slots=True)
class QueryFilters:
    """What a query selects: every set filter must match; "" or None means unset.
    As asked by a caller until `parse_query` validates it; after that times are in
    UTC and the address is in its normal form."""

    event_type: str = _filter(Match.TYPE)
    user_id: str = _filter(Match.EQUALS)
    username: str = _filter(Match.EQUALS)
    service: str = _filter(Match.EQUALS)
    action: str = _filter(Match.EQUALS)
    result: str = _filter(Match.EQUALS)
    compliance_tag: str = _filter(Match.TAG)
    data_classification: str = _filter(Match.EQUALS)
    ip_address: str = _filter(Match.ADDRESS)
    start_time: datetime | None = _filter(Match.FROM, None)
    end_time: datetime | None = _filter(Match.BEFORE, None)
    details_contains: str = _filter(Match.CONTAINS)  # a JSON object's text

    def set_filters(self) -> list[tuple[str, Match, Any]]:
        """(name, match, value) of each filter that is set, in declaration order."""
        out = []
        for name, match in FILTER_FIELDS:
            value = getattr(self, name)
            if value is not None and value != "":
                out.append((name, match, value))
        return out

    def fingerprint(self) -> bytes:
        """16 bytes that change whenever a filter changes (page tokens carry them)."""
        doc: dict[str, Any] = {}
        for name, match in FILTER_FIELDS:
            value = getattr(self, name)
            if match is Match.TYPE:
                prefix = value.endswith(".*")
                doc[name] = value[:-1] if prefix else value
                doc[f"{name}_prefix"] = prefix
            elif match in (Match.FROM, Match.BEFORE):
                doc[name] = None if value is None else micros(value)
            elif match is Match.CONTAINS:
                doc[name] = json.loads(value) if value else None
            else:
                doc[name] = value
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).digest()[:16]


# (name, match) of every filter, in declaration order.
FILTER_FIELDS: tuple[tuple[str, Match], ...] = tuple(
    (f.name, f.metadata["match"]) for f in fields(QueryFilters)
)
TIME_FILTERS = frozenset(name for name, m in FILTER_FIELDS if m in (Match.FROM, Match.BEFORE))


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the (event_time, event_id) of its last, oldest event."""

    event_time: datetime
    event_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """A validated query: its filters, the page size, `after`, the position decoded
    from the page token (None on the first page), and whether archived events are
    read too (`read.cold`; a token's position is the same in both tiers)."""

    filters: QueryFilters = QueryFilters()
    page_size: int = DEFAULT_PAGE_SIZE
    after: Position | None = None
    include_archive: bool = False
    # Personal filters as the pseudonyms they are stored as (audit_svc.privacy):
    # (filter name, pseudonym) pairs matched instead of the clear value.
    pseudonyms: tuple[tuple[str, str | bytes], ...] = ()

    def fingerprint(self) -> bytes:
        """The filters' fingerprint (not the page size or position)."""
        return self.filters.fingerprint()


def micros(t: datetime) -> int:
    """Microseconds since the epoch."""
    return (t - _EPOCH) // timedelta(microseconds=1)
