"""Live tail: committed events fanned out to `Watch` subscribers.

The appender publishes after each commit; publishing never waits and costs one
append per subscriber per group (not per event): each subscriber filters its own
events when it reads them, so idle watchers cost ingest next to nothing. A
subscriber's queue holds at most `capacity` events (its filter not applied yet); one
that falls further behind is ended with `FellBehind` (RESOURCE_EXHAUSTED,
WATCHER_FELL_BEHIND) and its queue freed, rather than slowing ingest or growing
memory; it can reconnect and `Query` the gap. Watchers are capped per caller and in
total (`TooManyWatchers`, RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

from audit_svc import metrics
from audit_svc.errors import FellBehind, TooManyWatchers
from audit_svc.model import StoredEvent


@dataclass(frozen=True, slots=True)
class WatchFilter:
    """Events to pass: every set field must match; `event_type` may end in `.*`."""

    event_type: str = ""
    user_id: str = ""
    service: str = ""
    result: str = ""

    def matches(self, stored: StoredEvent) -> bool:
        e = stored.event
        if self.event_type.endswith(".*"):
            if not e.event_type.startswith(self.event_type[:-1]):
                return False
        elif self.event_type and e.event_type != self.event_type:
            return False
        return (
            (not self.user_id or e.user_id == self.user_id)
            and (not self.service or e.service == self.service)
            and (not self.result or e.result == self.result)
        )


class _Subscriber:
    __slots__ = ("capacity", "caller", "ended", "groups", "overflowed", "pending", "ready", "where")

    def __init__(self, where: WatchFilter, caller: str, capacity: int) -> None:
        self.where = where
        self.caller = caller
        self.capacity = capacity
        self.groups: deque[Sequence[StoredEvent]] = deque()
        self.pending = 0  # events in `groups`
        self.ready = asyncio.Event()
        self.overflowed = False
        self.ended = False

    def offer(self, events: Sequence[StoredEvent]) -> None:
        if self.overflowed or self.ended:
            return
        if self.pending and self.pending + len(events) > self.capacity:
            self.overflowed = True  # fell behind: end it, and let go of what it held
            self.groups.clear()
            self.pending = 0
            metrics.WATCHERS_DROPPED.inc()
        else:
            self.groups.append(events)
            self.pending += len(events)
        self.ready.set()


class LiveTail:
    """The fan-out hub; one per process."""

    def __init__(
        self, capacity: int = 10_000, *, max_total: int = 256, max_per_caller: int = 16
    ) -> None:
        self._capacity = capacity
        self._max_total = max_total
        self._max_per_caller = max_per_caller
        self._subscribers: set[_Subscriber] = set()
        self._per_caller: Counter[str] = Counter()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Offer a committed group to every subscriber; never blocks, one append each."""
        if not events:
            return
        for subscriber in self._subscribers:
            subscriber.offer(events)

    def close(self) -> None:
        """End every subscription (shutdown) once it has read what it holds."""
        for subscriber in self._subscribers:
            subscriber.ended = True
            subscriber.ready.set()

    @contextlib.contextmanager
    def subscribe(self, where: WatchFilter, caller: str) -> Iterator[AsyncIterator[StoredEvent]]:
        """An iterator of matching events from now on, until shutdown; TooManyWatchers
        when `caller` or the service holds as many as allowed."""
        if self._per_caller[caller] >= self._max_per_caller:
            metrics.WATCHERS_REFUSED.labels("caller").inc()
            raise TooManyWatchers(
                f"{caller} has {self._max_per_caller} watchers open already; close one first",
                metadata={"limit": "caller", "max": str(self._max_per_caller)},
            )
        if len(self._subscribers) >= self._max_total:
            metrics.WATCHERS_REFUSED.labels("total").inc()
            raise TooManyWatchers(
                f"the audit-service serves {self._max_total} watchers already; retry later",
                metadata={"limit": "total", "max": str(self._max_total)},
            )
        subscriber = _Subscriber(where, caller, self._capacity)
        self._subscribers.add(subscriber)
        self._per_caller[caller] += 1
        try:
            yield self._drain(subscriber)
        finally:
            self._subscribers.discard(subscriber)
            self._per_caller[caller] -= 1
            if not self._per_caller[caller]:
                del self._per_caller[caller]

    async def _drain(self, subscriber: _Subscriber) -> AsyncIterator[StoredEvent]:
        matches = subscriber.where.matches
        while True:
            if subscriber.overflowed:
                raise FellBehind(
                    f"the watcher fell more than {self._capacity} events behind; reconnect "
                    "and Query from the last event seen"
                )
            if not subscriber.groups:
                if subscriber.ended:
                    return
                subscriber.ready.clear()
                await subscriber.ready.wait()
                continue
            group = subscriber.groups.popleft()
            subscriber.pending -= len(group)
            for stored in group:
                if matches(stored):
                    yield stored
