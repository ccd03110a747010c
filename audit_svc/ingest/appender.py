"""The appender: one task per chain that group-commits whatever batches are waiting.

Callers `submit` a batch and await its results; the task takes every batch queued
(up to `max_group_events`), hashes them onto the chain while the group before is
being written, writes them in one transaction, and only then resolves each caller's
future. A full queue makes callers wait (back-pressure), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from audit_svc import metrics
from audit_svc.errors import DuplicateEventId, ShuttingDown
from audit_svc.model import Outcome, Ready, Receipt, StoredEvent, ready_event
from audit_svc.storage.protocols import EventStore, Head, Prepared

log = logging.getLogger(__name__)

Results = list[tuple[Outcome, Receipt]]
# How long groups look their ids up before writing, after a group hit a stored one.
DUPLICATE_CHECK_SECONDS = 30.0
Listener = Callable[[Sequence[StoredEvent]], Awaitable[None] | None]


@dataclass(slots=True)
class _Batch:
    events: Sequence[Ready]
    future: asyncio.Future[Results]
    enqueued: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Write:
    group: list[_Batch]
    prepared: Prepared
    task: asyncio.Task[None]


def server_stamped(events: list[Ready]) -> list[Ready]:
    """The events whose event_time the service stamped (the caller sent none): a resend
    of one gets a new time, so the unique key (event_id, event_time) of the partitioned
    table would not refuse it; they are looked up before the COPY instead."""
    return [e for e in events if e.event_time == e.receive_time]


class Appender:
    """Serialises all writes of one chain; see the module docstring."""

    def __init__(
        self,
        store: EventStore,
        chain_id: str,
        *,
        max_group_events: int = 5000,
        max_queue_events: int = 50_000,
    ) -> None:
        self.chain_id = chain_id
        self._store = store
        self._max_group = max_group_events
        self.max_queue_events = max_queue_events
        self._queue: deque[_Batch] = deque()
        self._queued_events = 0
        self._wakeup = asyncio.Event()
        self._space = asyncio.Condition()
        self._closing = False
        self._listeners: list[Listener] = []
        self.committed_events = 0
        self.commits = 0
        self.head_seq = 0  # seq of the last committed event (for metrics)
        self._check_duplicates_until = 0.0
        self._head: Head | None = None  # where the next prepared group starts

    @property
    def queue_depth(self) -> int:
        """Events accepted and not yet committed."""
        return self._queued_events

    @property
    def lag_seconds(self) -> float:
        """How long the oldest waiting batch has waited."""
        return time.monotonic() - self._queue[0].enqueued if self._queue else 0.0

    def add_listener(self, listener: Listener) -> None:
        """Called with each committed group's new events, after the commit (live tail)."""
        self._listeners.append(listener)

    async def submit(self, events: Sequence[Ready]) -> Results:
        """Queue a batch and wait until it is committed; one result per event."""
        if not events:
            return []
        async with self._space:
            await self._space.wait_for(
                lambda: (
                    self._closing
                    or self._queued_events + len(events) <= self.max_queue_events
                    or self._queued_events == 0
                )
            )
            if self._closing:
                raise ShuttingDown("the audit-service is shutting down; retry on another replica")
            batch = _Batch(events, asyncio.get_running_loop().create_future())
            self._queue.append(batch)
            self._queued_events += len(events)
        self._wakeup.set()
        return await batch.future

    async def run(self) -> None:
        """Commit groups until `close` is called and the queue is empty.

        Pipelined, two groups deep: while one group is being written (PostgreSQL's
        work), the next is prepared (the hashes, Python's work) on the head the first
        will leave. Writes stay one at a time and in order; if one fails, the next is
        prepared again from the head in the database.
        """
        writing: _Write | None = None
        while True:
            if not self._queue:
                if writing is not None:
                    await self._settle(writing)
                    writing = None
                    continue
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._head is None and writing is not None:
                await self._settle(writing)  # the head in the database must be final
                writing = None
            group = self._take_group()
            events = [e for b in group for e in b.events]
            try:
                prepared = await self._prepare(events)
            except Exception as exc:
                if writing is not None:
                    await self._settle(writing)
                    writing = None
                await self._fail(group, exc)
                continue
            if writing is not None and not await self._settle(writing):
                # It was written another way, or not at all: the head `prepared` was
                # made on is not the chain's. Put the group back; it is prepared again.
                self._queue.extendleft(reversed(group))
                writing = None
                continue
            writing = _Write(group, prepared, asyncio.create_task(self._write(prepared)))

    async def close(self) -> None:
        """Take no new batches; `run` returns once the waiting ones are committed."""
        async with self._space:
            self._closing = True
            self._space.notify_all()
        self._wakeup.set()

    def _take_group(self) -> list[_Batch]:
        group = [self._queue.popleft()]
        size = len(group[0].events)
        while self._queue and size + len(self._queue[0].events) <= self._max_group:
            batch = self._queue.popleft()
            group.append(batch)
            size += len(batch.events)
        return group

    async def _prepare(self, events: list[Ready]) -> Prepared:
        stored: dict[str, Receipt] = {}
        if self._head is None:
            self._head = await self._store.read_head(self.chain_id)
        if time.monotonic() < self._check_duplicates_until:
            stored = await self._store.stored_receipts(events)
        elif stamped := server_stamped(events):
            stored = await self._store.stored_receipts(stamped)
        prepared = self._store.prepare(self.chain_id, self._head, events, stored)
        self._head = prepared.end  # where the chain will be once it is written
        return prepared

    async def _write(self, prepared: Prepared) -> None:
        with metrics.COMMIT_SECONDS.time():
            await self._store.write(self.chain_id, prepared)

    async def _settle(self, w: _Write) -> bool:
        """Wait for a group's write and answer its batches; True if it was written as
        prepared (the next group's head holds), False if it had to be redone or failed.

        Stored duplicates are rare (a client replaying its spool after a lost ack), so
        a group is first written without looking its ids up; the unique index on
        event_id refuses the COPY if one is stored, and the group is written again
        with the lookup, which reports those events as duplicates. After a refusal the
        lookup stays on for a while, as replays come in runs.
        """
        try:
            await w.task
            results = w.prepared.results
            as_prepared = True
        except Exception as first:
            self._head = None
            if isinstance(first, DuplicateEventId):
                self._check_duplicates_until = time.monotonic() + DUPLICATE_CHECK_SECONDS
            try:
                results = await self._append_with_retry([e for b in w.group for e in b.events])
            except Exception as exc:
                await self._fail(w.group, exc)
                return False
            as_prepared = False
        self.commits += 1
        start = 0
        new: list[tuple[Ready, Receipt]] = []
        stored_outcome = Outcome.STORED
        for batch in w.group:
            mine = results[start : start + len(batch.events)]
            new += [
                (e, r) for e, (o, r) in zip(batch.events, mine, strict=True) if o is stored_outcome
            ]
            start += len(batch.events)
            if not batch.future.done():
                batch.future.set_result(mine)
        self.committed_events += len(new)
        metrics.GROUP_EVENTS.observe(start)
        metrics.STORED.inc(len(new))
        metrics.DUPLICATE.inc(start - len(new))
        if new:
            self.head_seq = max(self.head_seq, new[-1][1].seq)
        await self._release(w.group)
        await self._notify(new)
        return as_prepared

    async def _fail(self, group: list[_Batch], exc: Exception) -> None:
        log.warning("group commit of %d events failed: %s", sum(len(b.events) for b in group), exc)
        for batch in group:
            if not batch.future.done():
                batch.future.set_exception(exc)
        await self._release(group)

    async def _release(self, group: list[_Batch]) -> None:
        async with self._space:
            self._queued_events -= sum(len(b.events) for b in group)
            self._space.notify_all()

    async def _append_with_retry(self, events: list[Ready]) -> Results:
        # The one-step path: lock the head, look the ids up, write. A unique violation
        # here means another chain stored one of these ids in between; retry.
        for attempt in range(3):
            try:
                return await self._store.append(self.chain_id, events)
            except DuplicateEventId:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _notify(self, new: list[tuple[Ready, Receipt]]) -> None:
        if not new:
            return
        committed = Committed(new)
        for listener in self._listeners:
            try:
                outcome = listener(committed)
                if outcome is not None:
                    await outcome
            except Exception:
                log.exception("live-tail listener failed; it keeps its subscription")


class Committed(Sequence[StoredEvent]):
    """A committed group's new events as `StoredEvent`s, made only when a listener
    reads them (the live tail, when someone watches): ingest makes none otherwise."""

    def __init__(self, new: list[tuple[Ready, Receipt]]) -> None:
        self._new = new
        self._events: list[StoredEvent] | None = None

    def __len__(self) -> int:
        return len(self._new)

    @overload
    def __getitem__(self, index: int) -> StoredEvent: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[StoredEvent]: ...
    def __getitem__(self, index: int | slice) -> StoredEvent | Sequence[StoredEvent]:
        return self._made()[index]

    def __iter__(self) -> Iterator[StoredEvent]:
        return iter(self._made())

    def _made(self) -> list[StoredEvent]:
        if self._events is None:
            self._events = [StoredEvent(ready_event(e), r) for e, r in self._new]
        return self._events
