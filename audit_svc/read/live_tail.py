"""Live tail: committed events fanned out to `Watch` subscribers.

The appender publishes after each commit; publishing never waits. Its cost does not
grow with idle watchers: each distinct filter is matched once per event (filters on
a user are found by the event's user, one lookup), and each watcher whose filter
matched gets one append per group. A subscriber's queue holds at most `capacity`
matching events; one that falls further behind is ended with `FellBehind`
(RESOURCE_EXHAUSTED, WATCHER_FELL_BEHIND) and its queue freed, rather than slowing
ingest or growing memory; it can reconnect and `Query` the gap. Watchers are capped
per caller and in total (`TooManyWatchers`, RESOURCE_EXHAUSTED).
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
        self.groups: deque[Sequence[StoredEvent]] = deque()  # matching events
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
        # Subscribers by filter; the filters naming a user by that user, the others.
        self._by_filter: dict[WatchFilter, set[_Subscriber]] = {}
        self._by_user: dict[str, set[WatchFilter]] = {}
        self._others: set[WatchFilter] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Offer a committed group to every subscriber whose filter matches some of
        it; never blocks."""
        if not events or not self._by_filter:
            return
        hits: dict[WatchFilter, list[StoredEvent]] = {}
        by_user, others = self._by_user, self._others
        for stored in events:
            named = by_user.get(stored.event.user_id)
            for where in (*named, *others) if named else others:
                if where.matches(stored):
                    hits.setdefault(where, []).append(stored)
        for where, matched in hits.items():
            for subscriber in self._by_filter[where]:
                subscriber.offer(matched)

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
        self._add(subscriber)
        try:
            yield self._drain(subscriber)
        finally:
            self._remove(subscriber)

    def _add(self, subscriber: _Subscriber) -> None:
        where = subscriber.where
        self._subscribers.add(subscriber)
        self._per_caller[subscriber.caller] += 1
        if where not in self._by_filter:
            self._by_filter[where] = set()
            if where.user_id:
                self._by_user.setdefault(where.user_id, set()).add(where)
            else:
                self._others.add(where)
        self._by_filter[where].add(subscriber)

    def _remove(self, subscriber: _Subscriber) -> None:
        where, caller = subscriber.where, subscriber.caller
        self._subscribers.discard(subscriber)
        self._per_caller[caller] -= 1
        if not self._per_caller[caller]:
            del self._per_caller[caller]
        same = self._by_filter[where]
        same.discard(subscriber)
        if same:
            return
        del self._by_filter[where]
        if where.user_id:
            named = self._by_user[where.user_id]
            named.discard(where)
            if not named:
                del self._by_user[where.user_id]
        else:
            self._others.discard(where)

    async def _drain(self, subscriber: _Subscriber) -> AsyncIterator[StoredEvent]:
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
                yield stored
