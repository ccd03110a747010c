"""The replayer: feeds spooled batches, oldest first, to the live stream, and removes each
from Redis only after the audit-service acknowledged it.

It reads ahead a window of batches from the head of the list (LRANGE at the offset past
what it already took), so replay is pipelined like direct sending. The offset is only a
hint: a batch read twice is sent twice and the second ack says DUPLICATE; a batch
skipped stays in the list and is read again after the next reset. Only the holder of the
replay lease replays (see `audit_client.spool`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from audit.v2 import audit_service_pb2 as pb
from audit_client.errors import SpoolUnavailable
from audit_client.ledger import SpoolLedger
from audit_client.outbox import Outbox, wait_until
from audit_client.spool import RedisSpool

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class ReplayItem:
    """One spooled batch, as read from Redis (`raw` is what LREM must match)."""

    raw: bytes
    request: pb.StreamIngestRequest
    generation: int

    @property
    def batch_id(self) -> str:
        return self.request.batch_id

    @property
    def size(self) -> int:
        return len(self.request.events)


class Replayer:
    """See the module docstring. Its `run` task reads; the stream's writer `take`s."""

    def __init__(
        self,
        spool: RedisSpool,
        outbox: Outbox,
        ledger: SpoolLedger,
        *,
        window: int,
        poll_seconds: float,
    ) -> None:
        self._spool = spool
        self._ledger = ledger
        self._outbox = outbox
        self._window = window
        self._poll = poll_seconds
        self._buffer: deque[ReplayItem] = deque()
        self._taken = 0  # batches at the head of the list already read by us
        self._generation = 0
        self._stalled = False
        self.in_flight = 0
        # Reads and removals take turns, so the offset always matches the list.
        self._turn = asyncio.Lock()

    def take(self) -> ReplayItem | None:
        """The next spooled batch to send, if one is read ahead."""
        if not self._buffer:
            return None
        self.in_flight += 1
        return self._buffer.popleft()

    def reset(self) -> None:
        """The stream ended: forget the read-ahead; start again from the head."""
        self._generation += 1
        self._buffer.clear()
        self._taken = 0
        self._stalled = False
        self.in_flight = 0

    async def acked(self, item: ReplayItem) -> None:
        """The audit-service acknowledged `item`: remove it from the spool."""
        self._ledger.acked(item.batch_id)
        async with self._turn:
            if item.generation != self._generation:
                return
            try:
                _, depth = await self._spool.remove(item.raw)
            except SpoolUnavailable as exc:
                # It stays in the list and is sent again (DUPLICATE) after a reset.
                log.warning("cannot remove replayed batch %s: %s", item.batch_id, exc)
                self._outbox.spool_available = False
                self._stalled = True
                return
            finally:
                self.in_flight -= 1
            # Whether we or another replayer removed it, the list is one shorter before
            # our offset.
            self._taken = max(0, self._taken - 1)
            self._outbox.spool_depth = depth
            self._outbox.changed.set()

    def _wants_read(self) -> bool:
        if self._stalled and self.in_flight == 0:
            self.reset()
        o = self._outbox
        return (
            not self._stalled
            and o.replaying
            and o.stream_live
            and o.spool_available
            and o.spool_depth > self._taken
            and len(self._buffer) + self.in_flight < self._window
        )

    async def run(self) -> None:
        """Read ahead whenever the stream can take spooled batches."""
        o = self._outbox
        while True:
            await wait_until(o.changed, self._wants_read)
            async with self._turn:
                if not self._wants_read():
                    continue
                try:
                    await self._read_ahead()
                except SpoolUnavailable as exc:
                    log.warning("cannot read the spool: %s", exc)
                    o.spool_available = False
                    await asyncio.sleep(self._poll)
            o.changed.set()

    async def _read_ahead(self) -> None:
        generation = self._generation
        want = self._window - len(self._buffer) - self.in_flight
        raws = await self._spool.read(self._taken, want)
        if generation != self._generation:
            return
        self._taken += len(raws)
        if len(raws) < want:
            self._outbox.spool_depth = self._taken  # the list ends here
        for raw in raws:
            try:
                request = pb.StreamIngestRequest.FromString(raw)
            except DecodeError:
                await self._bury(raw)
                continue
            self._buffer.append(ReplayItem(raw, request, generation))

    async def _bury(self, raw: bytes) -> None:
        log.error(
            "spool %s holds %d bytes that are not a StreamIngestRequest; moved to %s",
            self._spool.key,
            len(raw),
            self._spool.dead_key,
        )
        try:
            await self._spool.bury(raw)
        except SpoolUnavailable:
            self._outbox.spool_available = False
            return
        self._taken -= 1
