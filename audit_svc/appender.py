"""The appender: one task per chain that group-commits whatever batches are waiting.

Callers `submit` a batch and await its results; the task takes every batch queued
while the previous commit ran (up to `max_group_events`), writes them in one
transaction, and only then resolves each caller's future. A full queue makes
callers wait (back-pressure), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from audit_svc.errors import ShuttingDown
from audit_svc.model import Event, Outcome, Receipt, StoredEvent
from audit_svc.storage import writes
from audit_svc.storage.postgres import connection

log = logging.getLogger(__name__)

Results = list[tuple[Outcome, Receipt]]
# How long groups look their ids up before writing, after a group hit a stored one.
DUPLICATE_CHECK_SECONDS = 30.0
Listener = Callable[[Sequence[StoredEvent]], Awaitable[None] | None]


@dataclass(slots=True)
class _Batch:
    events: Sequence[Event]
    future: asyncio.Future[Results]
    enqueued: float = field(default_factory=time.monotonic)


class Appender:
    """Serialises all writes of one chain; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        chain_id: str,
        *,
        max_group_events: int = 5000,
        max_queue_events: int = 50_000,
    ) -> None:
        self.chain_id = chain_id
        self._pool = pool
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
        self._check_duplicates_until = 0.0

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

    async def submit(self, events: Sequence[Event]) -> Results:
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
        """Commit groups until `close` is called and the queue is empty."""
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            group = self._take_group()
            await self._commit(group)
            async with self._space:
                self._queued_events -= sum(len(b.events) for b in group)
                self._space.notify_all()

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

    async def _commit(self, group: list[_Batch]) -> None:
        events = [e for b in group for e in b.events]
        try:
            results = await self._append_with_retry(events)
        except Exception as exc:
            log.warning("group commit of %d events failed: %s", len(events), exc)
            for batch in group:
                if not batch.future.done():
                    batch.future.set_exception(exc)
            return
        self.commits += 1
        start = 0
        new: list[StoredEvent] = []
        for batch in group:
            mine = results[start : start + len(batch.events)]
            new += [
                StoredEvent(e, r)
                for e, (o, r) in zip(batch.events, mine, strict=True)
                if o is Outcome.STORED
            ]
            start += len(batch.events)
            if not batch.future.done():
                batch.future.set_result(mine)
        self.committed_events += len(new)
        await self._notify(new)

    async def _append_with_retry(self, events: list[Event]) -> Results:
        # Stored duplicates are rare (a client replaying its spool after a lost ack), so
        # a group is first written without looking its ids up: the unique index on
        # event_id refuses the COPY if one is already stored, and the group is written
        # again with the lookup, which reports those events as duplicates. After a
        # refusal the lookup stays on for a while, as replays come in runs. A refusal
        # with the lookup on means another chain stored the id in between; retry.
        for attempt in range(3):
            check = attempt > 0 or time.monotonic() < self._check_duplicates_until
            try:
                async with connection(self._pool) as conn:
                    return await writes.append(conn, self.chain_id, events, check)
            except asyncpg.exceptions.UniqueViolationError:
                self._check_duplicates_until = time.monotonic() + DUPLICATE_CHECK_SECONDS
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _notify(self, new: list[StoredEvent]) -> None:
        if not new:
            return
        for listener in self._listeners:
            try:
                outcome = listener(new)
                if outcome is not None:
                    await outcome
            except Exception:
                log.exception("live-tail listener failed; it keeps its subscription")
