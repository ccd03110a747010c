"""What the client's tasks share: the sealed batches waiting in memory, oldest first, the
spool and stream flags, and the bookkeeping that lets flush() wait for a batch to settle
(acknowledged, spooled or dropped)."""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable, Iterable

from audit_client.batcher import Batch


async def wait_until(changed: asyncio.Event, predicate: Callable[[], bool]) -> None:
    """Wait until `predicate()` holds, re-checking whenever `changed` is set."""
    while not predicate():
        changed.clear()
        await changed.wait()


class Outbox:
    """Sealed batches not yet sent nor spooled, plus the state the tasks coordinate on.

    Order invariant, per client: own batches in the spool < batches in flight on the
    stream < batches here < the open batch. So a batch may be sent directly only while
    none of ours may be in the spool (`spill_mode` off), and spilled only while none of
    ours is in flight; a failed stream puts its in-flight batches back at the front.
    """

    def __init__(self) -> None:
        self._batches: deque[Batch] = deque()
        self.events = 0
        # Set whenever anything below changes; each task waits on it with wait_until.
        self.changed = asyncio.Event()
        # Own batches may be in the spool: send nothing directly until it is seen empty.
        self.spill_mode = False
        # Redis answered the last command (a failed command clears it, a poll sets it).
        self.spool_available = True
        # Batches in the Redis list when last seen.
        self.spool_depth = 0
        # This process holds the replay lease.
        self.replaying = False
        # A stream to the audit-service is open.
        self.stream_live = False
        # Direct batches (from here) in flight, and their events.
        self.direct_in_flight = 0
        self.direct_in_flight_events = 0
        # Batches taken out to be written to Redis, and their events.
        self.spilling_events = 0
        self._unsettled: list[int] = []
        self._settled: set[int] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def buffered_events(self) -> int:
        """Events of sealed batches held in memory: here, being spilled, or in flight."""
        return self.events + self.spilling_events + self.direct_in_flight_events

    def put(self, batch: Batch) -> None:
        """A newly sealed batch, the newest of all."""
        self._batches.append(batch)
        self.events += batch.size
        heapq.heappush(self._unsettled, batch.seq)
        self.changed.set()

    def take(self, limit: int = 1) -> list[Batch]:
        """Remove up to `limit` batches from the front (oldest first)."""
        taken = [self._batches.popleft() for _ in range(min(limit, len(self._batches)))]
        self.events -= sum(b.size for b in taken)
        return taken

    def put_back(self, batches: Iterable[Batch]) -> None:
        """Return batches (oldest first) to the front: they are older than what is here."""
        for batch in reversed(list(batches)):
            self._batches.appendleft(batch)
            self.events += batch.size
        self.changed.set()

    def settle(self, batches: Iterable[Batch]) -> None:
        """These batches are acknowledged, spooled or dropped: wake flush() waiters."""
        for batch in batches:
            self._settled.add(batch.seq)
        while self._unsettled and self._unsettled[0] in self._settled:
            self._settled.discard(heapq.heappop(self._unsettled))
        low = self._unsettled[0] if self._unsettled else float("inf")
        keep = []
        for seq, future in self._waiters:
            if seq < low:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((seq, future))
        self._waiters = keep
        self.changed.set()

    async def wait_settled(self, seq: int) -> None:
        """Return once every batch up to `seq` (inclusive) has settled."""
        if not self._unsettled or self._unsettled[0] > seq:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future))
        await future
