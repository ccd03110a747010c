"""The ledger: which of this client's batches are in the Redis spool, so that batches a
Redis restart took away are noticed, counted and named instead of vanishing.

Every push returns the spool's `pushed` counter, so each batch of ours gets its number
in the spool (`index`); the replayer removes batches from the head in order and counts
them in `removed`. A batch of ours has left the spool the right way once `removed`
reaches its index, or once this process saw its ack. When Redis comes back in another
epoch (it lost everything) every batch still in the ledger is lost; when it comes back
with `pushed` below the highest value we saw (it lost its last writes), the batches
numbered above it are. Counts are events.

What it cannot know: a batch of ours that another process replayed and removed in the
moment before the loss, before our next poll saw `removed` move, is counted lost though
it was stored (an over-count, never an under-count).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from audit_client.spool import SpoolState


@dataclass(frozen=True, slots=True)
class SpoolLoss:
    """Batches of ours a Redis restart took away: our spool sequence numbers first..last."""

    batches: int
    events: int
    first_seq: int
    last_seq: int
    first_batch_id: str
    last_batch_id: str


@dataclass(slots=True)
class _Entry:
    seq: int  # this client's own count of batches it spooled, for the log's range
    index: int  # the batch's number in the spool (its `pushed` value)
    events: int


class SpoolLedger:
    """Our batches in the spool, oldest first (see the module docstring)."""

    def __init__(self) -> None:
        self.epoch: str | None = None
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._high_water = 0  # the largest `pushed` seen in this epoch
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def pushed(self, batches: list[tuple[str, int]], pushed: int) -> None:
        """`batches` (batch id, events), oldest first, were appended; `pushed` after them."""
        first = pushed - len(batches) + 1
        for offset, (batch_id, events) in enumerate(batches):
            self._seq += 1
            self._entries[batch_id] = _Entry(self._seq, first + offset, events)
        self._high_water = max(self._high_water, pushed)

    def acked(self, batch_id: str) -> None:
        """The audit-service acknowledged a batch this process replayed."""
        self._entries.pop(batch_id, None)

    def reconcile(self, state: SpoolState, epoch: str) -> SpoolLoss | None:
        """Compare with the spool as Redis holds it now (`epoch`: the one in force, which
        the caller claimed when `state.epoch` was unset). Returns what was lost, if any."""
        if epoch != self.epoch:
            known = self.epoch is not None
            self.epoch, self._high_water = epoch, state.pushed
            gone = list(self._entries.items()) if known else []
            self._entries.clear()
            return _loss(gone)
        gone = []
        if state.pushed < self._high_water:
            gone = [(k, e) for k, e in self._entries.items() if e.index > state.pushed]
            for batch_id, _ in gone:
                del self._entries[batch_id]
            self._high_water = state.pushed
        self._high_water = max(self._high_water, state.pushed)
        while self._entries:
            batch_id, entry = next(iter(self._entries.items()))
            if entry.index > state.removed:
                break
            del self._entries[batch_id]
        return _loss(gone)


def _loss(gone: list[tuple[str, _Entry]]) -> SpoolLoss | None:
    if not gone:
        return None
    return SpoolLoss(
        batches=len(gone),
        events=sum(e.events for _, e in gone),
        first_seq=gone[0][1].seq,
        last_seq=gone[-1][1].seq,
        first_batch_id=gone[0][0],
        last_batch_id=gone[-1][0],
    )
