"""The cold tier: `Query` over archived ranges, merged with the hot rows.

Hot rows and archived events share one keyset, `(event_time, event_id)` descending,
a total order over every chain and both tiers; a page token carries a position in it,
not a tier, so a token continues from hot rows into archived ones and back (their
times interleave: the archive cuts by receive time). A page is the newest `page_size`
of the union: the hot tier's page, and the cold tier's newest matches, deduplicated by
event id (an event restored into PostgreSQL is in both).

The cold tier's newest matches are a top-n over objects: the archived ranges that may
match, newest `max_event_time` first, are scanned 1, 2, 4, then 8 at a time, and the
walk stops once it holds n events newer than anything the next range can hold.

It is asked for with `include_archive`, or on its own when the query starts before
the hot window (`AUDIT_HOT_RETENTION_DAYS`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from audit_svc.model import StoredEvent
from audit_svc.read.filters import QuerySpec
from audit_svc.storage.protocols import ArchiveObjects, EventReader, SinkStore

MAX_RANGES_PER_SCAN = 8  # objects read (and downloaded) together: 1, 2, 4, 8, 8...


def newest(events: Iterable[StoredEvent], limit: int) -> list[StoredEvent]:
    """The newest `limit` distinct events, newest first by (event_time, event_id)."""
    ordered = sorted(events, key=_key, reverse=True)
    out: list[StoredEvent] = []
    seen: set[object] = set()
    for s in ordered:
        if s.event.event_id not in seen:
            seen.add(s.event.event_id)
            out.append(s)
            if len(out) == limit:
                break
    return out


def _key(s: StoredEvent) -> tuple[datetime, bytes]:
    return s.event.event_time, s.event.event_id.bytes


class ColdTier:
    """Archived events for `Query`; see the module docstring."""

    def __init__(
        self,
        ranges: SinkStore,
        objects: ArchiveObjects,
        *,
        hot_window: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ranges = ranges
        self._objects = objects
        self._hot_window = hot_window
        self._clock = clock

    def reaches(self, spec: QuerySpec) -> bool:
        """Whether a query's time range starts before the hot window (0: never)."""
        start = spec.filters.start_time
        if start is None or self._hot_window <= timedelta(0):
            return False
        return start < self._clock() - self._hot_window

    async def newest(self, spec: QuerySpec, limit: int) -> list[StoredEvent]:
        """The newest `limit` archived events matching `spec`, newest first."""
        f = spec.filters
        before = spec.after.event_time if spec.after is not None else None
        ranges = await self._ranges.archived_in(f.start_time, f.end_time, before)
        found: list[StoredEvent] = []
        i, size = 0, 1
        while i < len(ranges):
            batch = ranges[i : i + size]
            i, size = i + len(batch), min(2 * size, MAX_RANGES_PER_SCAN)
            found = newest(found + await self._objects.scan(batch, spec, limit), limit)
            if len(found) == limit and i < len(ranges):
                upto = ranges[i].max_event_time
                if upto is not None and upto < found[-1].event.event_time:
                    break  # nothing further can be newer than what is held
        return found


async def page(
    events: EventReader, cold: ColdTier | None, spec: QuerySpec
) -> tuple[list[StoredEvent], bool]:
    """One page of `spec` and whether more follow: the hot rows, merged with the
    archived ones when the spec asks for them. The hot rows are read first, so an
    event that the archiver moves meanwhile is still found (in one tier or both)."""
    hot, more = await events.query_events(spec)
    if cold is None or not spec.include_archive:
        return hot, more
    archived = await cold.newest(spec, spec.page_size + 1)
    merged = newest(hot + archived, spec.page_size + 1)
    return merged[: spec.page_size], more or len(merged) > spec.page_size
