"""Exports: every event matching a Query's filters, in a SIEM format, as a stream of
byte chunks (no page limit). The events come oldest first from one database
snapshot, through the same row -> event conversion as every other read, then
`present` (what the caller may see), then the format.

The HTTP face (`GET /api/v2/events:export`) and `python -m audit_svc export-events`
both write these chunks as they come; memory stays at about one chunk and one batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from audit_svc.errors import InvalidArgument
from audit_svc.formats import Format, by_name, names
from audit_svc.model import FieldViolation, StoredEvent
from audit_svc.read.query import QueryFilters, QuerySpec, parse_query
from audit_svc.storage.protocols import EventReader

CHUNK_BYTES = 64 * 1024
BATCH_ROWS = 2000
# What the caller may see of a batch of stored events (audit_svc.read.disclosure).
Present = Callable[[Sequence[StoredEvent]], Awaitable[Sequence[StoredEvent]]]


async def as_is(stored: Sequence[StoredEvent]) -> Sequence[StoredEvent]:
    return stored


def _bad_format() -> FieldViolation:
    return FieldViolation("format", f"must be one of {', '.join(names())}")


@dataclass
class Export:
    """One export, validated: `chunks()` streams it, `count` says how many events
    it has written so far (for the read's audit record)."""

    events: EventReader
    spec: QuerySpec
    format: Format
    present: Present = as_is
    count: int = field(default=0, init=False)

    @property
    def content_type(self) -> str:
        return self.format.content_type

    async def chunks(self) -> AsyncIterator[bytes]:
        """The export's bytes, about CHUNK_BYTES at a time (far below gRPC's 4 MB
        message limit, whatever the format); at least one chunk (which may be empty),
        so a transport always learns the content type."""
        line, present = self.format.line, self.present
        parts: list[bytes] = [self.format.header.encode()] if self.format.header else []
        size, sent = 0, False
        async for rows in self.events.export_events(self.spec, BATCH_ROWS):
            for stored in await present(rows):
                data = line(stored)
                parts.append(data)
                size += len(data)
                self.count += 1
                if size >= CHUNK_BYTES:
                    parts.append(b"")  # the newline after the last line
                    yield b"\n".join(parts)
                    parts, size, sent = [], 0, True
        if parts or not sent:
            yield b"\n".join([*parts, b""]) if parts else b""


def new_export(
    events: EventReader, filters: QueryFilters, format_name: str, key: bytes,
    present: Present = as_is, pseudonymize: Callable[[QuerySpec], QuerySpec] | None = None,
) -> Export:  # fmt: skip
    """Validate the filters (as Query does) and the format; INVALID_ARGUMENT names
    every bad field. `pseudonymize`: personal filters as stored (Disclosure's)."""
    fmt = by_name((format_name or "ndjson").lower())
    problems = [] if fmt is not None else [_bad_format()]
    try:
        spec = parse_query(filters, key=key)
    except InvalidArgument as exc:
        raise InvalidArgument([*problems, *exc.violations]) from None
    if fmt is None:
        raise InvalidArgument(problems)
    return Export(events, pseudonymize(spec) if pseudonymize else spec, fmt, present)


__all__ = ["Export", "as_is", "new_export"]
