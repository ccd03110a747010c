"""Live tail: committed events fanned out to `Watch` subscribers.

The appender publishes after each commit; publishing never waits. Each subscriber
has a bounded queue, and one that falls behind is ended with `FellBehind` rather
than slowing ingest or growing memory; it can reconnect and `Query` the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

from audit_svc.errors import FellBehind
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
    def __init__(self, where: WatchFilter, capacity: int) -> None:
        self.where = where
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(capacity)
        self.overflowed = False

    def offer(self, stored: StoredEvent) -> None:
        if self.overflowed or not self.where.matches(stored):
            return
        try:
            self.queue.put_nowait(stored)
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue.get_nowait()  # make room for the end marker
            self.queue.put_nowait(None)


class LiveTail:
    """The fan-out hub; one per process."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._subscribers: set[_Subscriber] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Offer committed events to every subscriber; never blocks."""
        for subscriber in list(self._subscribers):
            for stored in events:
                subscriber.offer(stored)

    def close(self) -> None:
        """End every subscription (shutdown)."""
        for subscriber in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)

    @contextlib.contextmanager
    def subscribe(self, where: WatchFilter) -> Iterator[AsyncIterator[StoredEvent]]:
        """An iterator of matching events from now on, until shutdown."""
        subscriber = _Subscriber(where, self._capacity)
        self._subscribers.add(subscriber)
        try:
            yield self._drain(subscriber)
        finally:
            self._subscribers.discard(subscriber)

    async def _drain(self, subscriber: _Subscriber) -> AsyncIterator[StoredEvent]:
        while (stored := await subscriber.queue.get()) is not None:
            yield stored
        if subscriber.overflowed:
            raise FellBehind(
                f"the watcher fell more than {self._capacity} events behind; reconnect "
                "and Query from the last event seen"
            )
