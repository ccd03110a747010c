"""Event statistics over a time range: totals, breakdowns, failed logins, top users and
a time series. Counts are exact: they come from PostgreSQL's daily and hourly rollups,
kept in the same transaction as the events, plus the rows of the minutes no rollup
bucket covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from audit_svc.errors import InvalidArgument
from audit_svc.model import FieldViolation
from audit_svc.storage.protocols import EventReader

DEFAULT_RANGE = "24h"
# The named ranges a caller may ask for, each ending now.
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
# Longest explicit range; keeps the bucket list (one per day beyond 48 h) small.
MAX_RANGE = timedelta(days=366)
HOURLY_UP_TO = timedelta(hours=48)
TOP_USERS = 10
FAILED_LOGIN = "auth.login_failed"


class TimeRange(NamedTuple):
    """A half-open range of event times, start <= event_time < end, in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Count:
    """How many events have this value of a dimension."""

    key: str
    count: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """How many events fall in [start, start + bucket width)."""

    start: datetime
    count: int


@dataclass(frozen=True, slots=True)
class Statistics:
    """Counts over one time range. Breakdowns are most frequent first (ties by key);
    buckets are oldest first and include the empty ones."""

    start: datetime
    end: datetime
    total: int
    by_event_type: tuple[Count, ...]
    by_result: tuple[Count, ...]
    by_service: tuple[Count, ...]
    failed_logins: int
    top_users: tuple[Count, ...]
    unique_users: int
    bucket_width: timedelta
    buckets: tuple[Bucket, ...]

    def count_of(self, event_type: str) -> int:
        """Events of one exact type in the range."""
        return next((c.count for c in self.by_event_type if c.key == event_type), 0)


def parse_time_range(
    time_range: str,
    start_time: datetime | None,
    end_time: datetime | None,
    now: datetime,
) -> TimeRange:
    """The range asked for, or InvalidArgument naming the bad field.

    `time_range` is 1h, 24h (when empty), 7d or 30d, ending at `end_time` or now; an
    explicit `start_time` overrides it, and then `end_time` defaults to now.
    """
    end = _utc(end_time) if end_time is not None else _utc(now)
    if start_time is not None:
        start = _utc(start_time)
        if not start < end:
            raise InvalidArgument([FieldViolation("end_time", "must be after start_time")])
        if end - start > MAX_RANGE:
            raise InvalidArgument(
                [FieldViolation("start_time", f"range longer than {MAX_RANGE.days} days")]
            )
        return TimeRange(start, end)
    width = RANGES.get(time_range or DEFAULT_RANGE)
    if width is None:
        raise InvalidArgument([FieldViolation("time_range", f"must be one of {', '.join(RANGES)}")])
    return TimeRange(end - width, end)


def bucket_width(span: TimeRange) -> timedelta:
    """One hour for ranges up to 48 hours, otherwise one day."""
    return timedelta(hours=1) if span.end - span.start <= HOURLY_UP_TO else timedelta(days=1)


async def get_statistics(
    events: EventReader, span: TimeRange, now: datetime | None = None
) -> Statistics:
    """Exact statistics of the events with span.start <= event_time < span.end.

    `now` (the current time when None) only helps choose how to read the counts."""
    width = bucket_width(span)
    now = datetime.now(UTC) if now is None else now
    read = await events.count(span.start, span.end, width, TOP_USERS, now)
    counts, top, unique = read.events, read.top_users, read.unique_users
    by_type = _ranked(counts.by_event_type)
    return Statistics(
        start=span.start,
        end=span.end,
        total=sum(counts.by_event_type.values()),
        by_event_type=by_type,
        by_result=_ranked(counts.by_result),
        by_service=_ranked(counts.by_service),
        failed_logins=counts.by_event_type.get(FAILED_LOGIN, 0),
        top_users=tuple(Count(user, n) for user, n in top),
        unique_users=unique,
        bucket_width=width,
        buckets=_series(span, width, counts.buckets),
    )


def _ranked(counts: Mapping[str, int]) -> tuple[Count, ...]:
    return tuple(Count(k, n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _series(
    span: TimeRange, width: timedelta, counts: Mapping[datetime, int]
) -> tuple[Bucket, ...]:
    """Every bucket overlapping the span, oldest first, zero where nothing happened."""
    found = {t.astimezone(UTC): n for t, n in counts.items()}
    start = _floor(span.start, width)
    series = []
    while start < span.end:
        series.append(Bucket(start, found.get(start, 0)))
        start += width
    return tuple(series)


def _floor(t: datetime, width: timedelta) -> datetime:
    """The UTC-aligned bucket start at or before t (hours, or midnights for days)."""
    t = t.astimezone(UTC)
    if width >= timedelta(days=1):
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    return t.replace(minute=0, second=0, microsecond=0)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
