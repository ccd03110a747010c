"""Statistics against a real PostgreSQL, compared with a brute-force count of the events."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from audit_svc.errors import InvalidArgument
from audit_svc.model import Event
from audit_svc.read.statistics import (
    Bucket,
    Count,
    Statistics,
    TimeRange,
    bucket_width,
    get_statistics,
    parse_time_range,
)
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.event_writes import append, ensure_chain
from audit_svc.storage.user_counts import UserCountCache

DAY0 = datetime(2026, 5, 10, tzinfo=UTC)
TYPES = ["auth.login_success", "auth.login_failed", "user.user_created", "mfa.mfa_verified"]


async def store_in_batches(pool: asyncpg.Pool, events: list[Event]) -> None:
    """Several commits on two chains, so the hourly rollups are added to, not just set."""
    async with pool.acquire() as conn:
        for chain_id in ("chain-1", "chain-2"):
            await ensure_chain(conn, chain_id)
        for i in range(0, len(events), 37):
            await append(conn, f"chain-{i // 37 % 2 + 1}", events[i : i + 37])


async def statistics(
    pool: asyncpg.Pool, cache: UserCountCache | None, span: TimeRange, now: datetime | None = None
) -> Statistics:
    return await get_statistics(PgEventReader(pool, cache), span, now)


def spread_events(make_event: Callable[..., Event], edges: list[datetime]) -> list[Event]:
    """Events over four days at random instants, plus one exactly at each of `edges`."""
    rng = random.Random(11)
    times = [DAY0 + timedelta(seconds=rng.randrange(4 * 86400), microseconds=7) for _ in range(500)]
    times += edges
    return [
        make_event(
            when,
            event_type=rng.choice(TYPES),
            result=rng.choice(["success", "failure", "denied", "error"]),
            service=rng.choice(["user-service", "billing", "gateway"]),
            user_id=rng.choice([f"user{n:02d}" for n in range(14)] + [""]),
        )
        for when in times
    ]


def brute_force(events: list[Event], span: TimeRange) -> Statistics:
    """What the statistics must say, counted one event at a time."""
    inside = [e for e in events if span.start <= e.event_time < span.end]
    width = bucket_width(span)

    def ranked(counter: Counter[str]) -> tuple[Count, ...]:
        return tuple(
            Count(k, n) for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        )

    def floor(t: datetime) -> datetime:
        t = t.replace(minute=0, second=0, microsecond=0)
        return t.replace(hour=0) if width == timedelta(days=1) else t

    per_bucket = Counter(floor(e.event_time) for e in inside)
    buckets, start = [], floor(span.start)
    while start < span.end:
        buckets.append(Bucket(start, per_bucket[start]))
        start += width
    users = Counter(e.user_id for e in inside if e.user_id)
    by_type = Counter(e.event_type for e in inside)
    return Statistics(
        start=span.start,
        end=span.end,
        total=len(inside),
        by_event_type=ranked(by_type),
        by_result=ranked(Counter(e.result for e in inside)),
        by_service=ranked(Counter(e.service for e in inside)),
        failed_logins=by_type["auth.login_failed"],
        top_users=ranked(users)[:10],
        unique_users=len(users),
        bucket_width=width,
        buckets=tuple(buckets),
    )


SPANS = {
    "days, not hour-aligned": TimeRange(
        DAY0 + timedelta(hours=10, minutes=17, seconds=23, microseconds=500_007),
        DAY0 + timedelta(days=3, hours=7, minutes=42, seconds=10),
    ),
    "hours, not hour-aligned": TimeRange(
        DAY0 + timedelta(days=1, hours=3, minutes=59, seconds=59),
        DAY0 + timedelta(days=2, hours=20, minutes=0, seconds=1),
    ),
    "inside one hour": TimeRange(
        DAY0 + timedelta(hours=30, minutes=5), DAY0 + timedelta(hours=30, minutes=50)
    ),
    "across one hour boundary": TimeRange(
        DAY0 + timedelta(hours=30, minutes=50), DAY0 + timedelta(hours=31, minutes=10)
    ),
    "hour-aligned": TimeRange(DAY0 + timedelta(hours=5), DAY0 + timedelta(hours=29)),
    "everything": TimeRange(DAY0 - timedelta(days=1), DAY0 + timedelta(days=6)),
    "nothing": TimeRange(DAY0 + timedelta(days=9), DAY0 + timedelta(days=10)),
}


@pytest.mark.parametrize("name", list(SPANS))
async def test_statistics_equal_a_brute_force_count(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event], name: str
) -> None:
    span = SPANS[name]
    # Events exactly on the bounds: the start is counted, the end is not.
    events = spread_events(make_event, [span.start, span.end, span.end - timedelta(microseconds=1)])
    await store_in_batches(audit_pool, events)
    stats = await statistics(audit_pool, None, span)
    assert stats == brute_force(events, span)


@pytest.mark.parametrize("name", ["days, not hour-aligned", "hours, not hour-aligned",
                                  "inside one hour", "everything"])  # fmt: skip
@pytest.mark.parametrize("now_at", [0.0, 0.5, 1.0])
async def test_statistics_stay_exact_whatever_the_time_now(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event], name: str, now_at: float
) -> None:
    """`now` changes how the rollups and rows are combined (whole buckets minus what
    lies after now, or before the start), never the counts, even with events after now."""
    span = SPANS[name]
    events = spread_events(make_event, [span.start, span.end - timedelta(microseconds=1)])
    await store_in_batches(audit_pool, events)
    now = span.start + (span.end - span.start) * now_at
    expected = brute_force(events, span)
    assert await statistics(audit_pool, None, span, now) == expected
    cache = UserCountCache()
    assert await statistics(audit_pool, cache, span, now) == expected
    assert await statistics(audit_pool, cache, span, now) == expected  # remembered


async def test_remembered_user_counts_take_in_late_events(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event]
) -> None:
    """Events that arrive late, for hours already over, are counted at once."""
    span = SPANS["days, not hour-aligned"]
    events = spread_events(make_event, [])
    await store_in_batches(audit_pool, events)
    cache = UserCountCache()
    assert await statistics(audit_pool, cache, span, span.end) == brute_force(events, span)
    late = [
        make_event(span.start + timedelta(hours=20, seconds=n), user_id="late") for n in range(60)
    ]
    await store_in_batches(audit_pool, late)
    stats = await statistics(audit_pool, cache, span, span.end)
    assert stats == brute_force(events + late, span)
    assert stats.top_users[0] == Count("late", 60)


async def test_buckets_are_hourly_up_to_48_hours_then_daily_with_empty_ones(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event]
) -> None:
    await store_in_batches(audit_pool, [make_event(DAY0 + timedelta(hours=1, minutes=30))])
    two_days = await statistics(audit_pool, None, TimeRange(DAY0, DAY0 + timedelta(hours=48)))
    longer = await statistics(audit_pool, None, TimeRange(DAY0, DAY0 + timedelta(hours=49)))
    assert two_days.bucket_width == timedelta(hours=1)
    assert [b.count for b in two_days.buckets] == [0, 1] + [0] * 46
    assert longer.bucket_width == timedelta(days=1)
    assert [(b.start, b.count) for b in longer.buckets] == [
        (DAY0, 1),
        (DAY0 + timedelta(days=1), 0),
        (DAY0 + timedelta(days=2), 0),
    ]


NOW = datetime(2026, 5, 12, 9, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("time_range", "length"),
    [("1h", timedelta(hours=1)), ("24h", timedelta(days=1)), ("", timedelta(days=1)),
     ("7d", timedelta(days=7)), ("30d", timedelta(days=30))],
)  # fmt: skip
def test_named_ranges_end_now(time_range: str, length: timedelta) -> None:
    assert parse_time_range(time_range, None, None, NOW) == TimeRange(NOW - length, NOW)


def test_explicit_bounds_override_the_named_range() -> None:
    start = NOW - timedelta(hours=3)
    assert parse_time_range("7d", start, None, NOW) == TimeRange(start, NOW)
    assert parse_time_range("", start, NOW - timedelta(hours=1), NOW) == TimeRange(
        start, NOW - timedelta(hours=1)
    )


@pytest.mark.parametrize(
    ("time_range", "start", "end", "field"),
    [
        ("2h", None, None, "time_range"),
        ("24", None, None, "time_range"),
        ("", NOW, NOW, "end_time"),
        ("", NOW - timedelta(days=400), None, "start_time"),
    ],
)
def test_bad_ranges_name_the_field(
    time_range: str, start: datetime | None, end: datetime | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_time_range(time_range, start, end, NOW)
    assert caught.value.reason == "INVALID_ARGUMENT"
    assert [v.field for v in caught.value.violations] == [field]
