"""The spooler: writes this client's batches to the Redis spool when they cannot go to
the stream, and watches the spool (depth, Redis health, the replay lease, and batches
of ours that a Redis restart lost: see `audit_client.ledger`). With a disk spool, it
writes there what neither Redis nor the stream can take, and moves it to Redis later."""

from __future__ import annotations

import asyncio
import logging

from audit.v2 import audit_service_pb2 as pb
from audit_client.breaker import CircuitBreaker
from audit_client.counters import Counters
from audit_client.disk_spool import DiskSpool
from audit_client.errors import SpoolUnavailable
from audit_client.ids import new_id
from audit_client.ledger import SpoolLedger
from audit_client.outbox import Outbox, wait_until
from audit_client.spool import EpochChanged, RedisSpool, SpoolState

log = logging.getLogger(__name__)

# Batches written per RPUSH; one command, so a group lands whole and in order.
SPILL_GROUP = 32


class Spooler:
    """Two tasks: `spill_loop` (the only writer of our batches to Redis, and the only one
    to leave spill mode, so a push and the emptiness check never interleave) and
    `watch_loop` (polls the depth, takes and renews the replay lease)."""

    def __init__(
        self,
        spool: RedisSpool,
        outbox: Outbox,
        breaker: CircuitBreaker,
        counters: Counters,
        ledger: SpoolLedger,
        disk: DiskSpool | None,
        *,
        owner: str,
        high_water_events: int,
        max_batches: int,
        poll_seconds: float,
        lease_seconds: float,
    ) -> None:
        self._spool = spool
        self._outbox = outbox
        self._breaker = breaker
        self._counters = counters
        self._owner = owner
        self._high_water = high_water_events
        self._max_batches = max_batches
        self._poll = poll_seconds
        self._lease = lease_seconds
        self.ledger = ledger
        self._disk = disk
        self.disk_segments = len(disk.segments()) if disk is not None else 0
        # A push and a reconcile never interleave: a state read before a push would
        # make that push look lost.
        self._books = asyncio.Lock()

    def _under_pressure(self) -> bool:
        """Memory fills faster than the stream drains it: switch to the spool."""
        o = self._outbox
        return not o.spill_mode and o.spool_available and o.buffered_events >= self._high_water

    def _can_spill(self) -> bool:
        o = self._outbox
        # Never while our direct batches are in flight: they must stay ahead.
        return (
            len(o) > 0
            and (o.spill_mode or self._breaker.is_open)
            and o.direct_in_flight == 0
            and o.spool_available
        )

    def _may_leave_spill_mode(self) -> bool:
        o = self._outbox
        return (
            o.spill_mode
            and o.spool_depth == 0
            and self.disk_segments == 0
            and o.spool_available
            and not self._breaker.is_open
            and o.buffered_events < self._high_water
        )

    def _can_spill_to_disk(self) -> bool:
        """Neither Redis nor the audit-service answers: memory would be the only copy."""
        o = self._outbox
        return (
            self._disk is not None
            and len(o) > 0
            and not o.spool_available
            and self._breaker.is_open
            and o.direct_in_flight == 0
        )

    def _can_drain_disk(self) -> bool:
        return self.disk_segments > 0 and self._outbox.spool_available

    async def spill_loop(self) -> None:
        o = self._outbox
        while True:
            await wait_until(
                o.changed,
                lambda: (
                    self._under_pressure()
                    or self._can_drain_disk()
                    or self._may_leave_spill_mode()
                    or self._can_spill()
                    or self._can_spill_to_disk()
                ),
            )
            if self._under_pressure():
                log.info("%d audit events in memory; spooling until it drains", o.buffered_events)
                o.spill_mode = True
                o.changed.set()
            elif self._can_drain_disk():
                await self.drain_disk()
            elif self._may_leave_spill_mode():
                await self._leave_spill_mode()
            elif self._can_spill():
                await self.spill()
            elif not await self.spill_to_disk():
                await asyncio.sleep(self._poll)

    async def _push(self, items: list[bytes], entries: list[tuple[str, int]]) -> int:
        """Append to the Redis spool in the epoch we know, noting our batches (batch id,
        events) in the ledger; in a new epoch, reconcile first (counting what was lost)
        and push once more. Returns the depth; raises SpoolUnavailable."""
        for attempt in (1, 2):
            try:
                async with self._books:
                    if self.ledger.epoch is None:
                        await self._reconcile()
                    assert self.ledger.epoch is not None
                    pushed, depth = await self._spool.push(
                        items, epoch=self.ledger.epoch, depth_hint=self._outbox.spool_depth
                    )
                    self.ledger.pushed(entries, pushed)
                    return depth
            except EpochChanged:
                if attempt == 2:
                    raise
                await self.reconcile()
        raise AssertionError("unreachable")

    async def spill(self, everything: bool = False) -> bool:
        """Write the oldest waiting batches (all of them if `everything`) to the spool.

        Returns False, leaving them in memory, when Redis cannot take them.
        """
        o = self._outbox
        while len(o):
            o.spill_mode = True
            batches = o.take(len(o) if everything else SPILL_GROUP)
            events = sum(b.size for b in batches)
            o.spilling_events += events
            try:
                depth = await self._push(
                    [b.encode() for b in batches], [(b.batch_id, b.size) for b in batches]
                )
            except SpoolUnavailable as exc:
                self.spool_failed(exc)
                o.put_back(batches)
                return False
            finally:
                o.spilling_events -= events
            o.spool_depth = depth
            self._counters.spooled += events
            o.settle(batches)
            if not everything:
                break
        return True

    async def spill_to_disk(self, everything: bool = False) -> bool:
        """Write the oldest waiting batches (all if `everything`) to the disk spool.

        Returns False, leaving them in memory, when the write fails.
        """
        o, disk = self._outbox, self._disk
        assert disk is not None
        while len(o):
            batches = o.take(len(o) if everything else SPILL_GROUP)
            events = sum(b.size for b in batches)
            o.spilling_events += events
            try:
                await disk.write([b.encode() for b in batches])
            except OSError as exc:
                log.error("cannot write the disk spool %s: %s", disk.directory, exc)
                o.put_back(batches)
                return False
            finally:
                o.spilling_events -= events
            o.spill_mode = True  # ours are on disk: nothing overtakes them directly
            self.disk_segments += 1
            self._counters.disk_spooled += events
            o.settle(batches)
            if not everything:
                break
        return True

    async def drain_disk(self) -> None:
        """Move the oldest disk segment to the Redis spool, then delete it."""
        disk = self._disk
        assert disk is not None
        segments = disk.segments()
        self.disk_segments = len(segments)
        if not segments:
            return
        raws = disk.read(segments[0])
        for start in range(0, len(raws), SPILL_GROUP):
            group = [
                pb.StreamIngestRequest.FromString(raw) for raw in raws[start : start + SPILL_GROUP]
            ]
            try:
                depth = await self._push(
                    raws[start : start + SPILL_GROUP], [(r.batch_id, len(r.events)) for r in group]
                )
            except SpoolUnavailable as exc:
                self.spool_failed(exc)  # pushed again later: answered DUPLICATE
                return
            self._outbox.spool_depth = depth
        disk.delete(segments[0])
        self.disk_segments -= 1
        self._outbox.changed.set()

    async def _leave_spill_mode(self) -> None:
        o = self._outbox
        try:
            depth = await self._spool.depth()
        except SpoolUnavailable as exc:
            self.spool_failed(exc)
            return
        o.spool_depth = depth
        if depth == 0 and o.spill_mode:
            o.spill_mode = False
            log.info("spool %s is empty; sending directly again", self._spool.key)
        o.changed.set()

    async def reconcile(self) -> SpoolState:
        """Read the spool's state and compare it with the ledger: count, and log at
        ERROR, the batches of ours Redis no longer holds though nobody acked them."""
        async with self._books:
            return await self._reconcile()

    async def _reconcile(self) -> SpoolState:
        state = await self._spool.state()
        epoch = state.epoch or await self._spool.claim_epoch(str(new_id()))
        loss = self.ledger.reconcile(state, epoch)
        if loss is not None:
            self._counters.spool_lost += loss.events
            log.error(
                "audit spool %s lost %d events in %d batches of this client (its spool seq"
                " %d..%d, batch ids %s..%s): Redis restarted without them or was flushed;"
                " they were never acknowledged",
                self._spool.key,
                loss.events,
                loss.batches,
                loss.first_seq,
                loss.last_seq,
                loss.first_batch_id,
                loss.last_batch_id,
            )
        return state

    async def watch_loop(self) -> None:
        o = self._outbox
        while True:
            try:
                depth = (await self.reconcile()).depth
                held = depth > 0 and await self._spool.hold_lease(self._owner, self._lease)
            except SpoolUnavailable as exc:
                self.spool_failed(exc)
            else:
                full = bool(self._max_batches) and depth >= self._max_batches
                if not o.spool_available and not full:
                    log.info("redis answers again; %s holds %d batches", self._spool.key, depth)
                o.spool_available = not full
                o.spool_depth = depth
                o.replaying = held
                o.changed.set()
            await asyncio.sleep(self._poll)

    def spool_failed(self, exc: SpoolUnavailable) -> None:
        o = self._outbox
        if o.spool_available:
            log.warning("audit spool unavailable: %s", exc)
        o.spool_available = False
        o.replaying = False
        o.changed.set()

    async def release(self) -> None:
        """Give the replay lease up (on close), so another process may replay at once."""
        try:
            await self._spool.release_lease(self._owner)
        except SpoolUnavailable:
            pass
        self._outbox.replaying = False
