"""Batches: events gathered in emit order and sealed by count, size or age."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import event_pb2
from audit_client.ids import new_id


@dataclass(eq=False, slots=True)
class Batch:
    """A sealed batch of this client. `seq` orders batches of one client (for flush)."""

    seq: int
    request: pb.StreamIngestRequest
    size: int
    _encoded: bytes | None = field(default=None, repr=False)

    @property
    def batch_id(self) -> str:
        return self.request.batch_id

    def encode(self) -> bytes:
        """The spool's form: a serialized `audit.v2.StreamIngestRequest`."""
        if self._encoded is None:
            self._encoded = self.request.SerializeToString()
        return self._encoded


class Batcher:
    """The open batch. Not thread-safe: used from the client's event loop."""

    def __init__(
        self,
        *,
        max_events: int,
        max_bytes: int,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._clock = clock
        self._seq = 0
        self._request = pb.StreamIngestRequest()
        self._pending = 0
        self._bytes = 0
        self._opened = 0.0

    @property
    def pending(self) -> int:
        """Events in the open batch."""
        return self._pending

    @property
    def sealed(self) -> int:
        """The seq of the newest sealed batch (0 before the first)."""
        return self._seq

    @property
    def deadline(self) -> float:
        """When the open batch must be sealed by age (monotonic clock); inf when empty."""
        return self._opened + self._max_age if self.pending else float("inf")

    def add(self, event: event_pb2.AuditEvent, size: int) -> list[Batch]:
        """Copy the event into the open batch; return the batches this sealed (0 to 2)."""
        sealed = []
        # Field tag + length prefix: at most 4 bytes for an event under 2 MiB.
        if self._pending and self._bytes + size + 4 > self._max_bytes:
            sealed.append(self._seal())
        if not self._pending:
            self._opened = self._clock()
        self._request.events.append(event)
        self._pending += 1
        self._bytes += size + 4
        if self._pending >= self._max_events or self._bytes >= self._max_bytes:
            sealed.append(self._seal())
        return sealed

    def seal(self) -> Batch | None:
        """Seal the open batch now (flush, age); None when it is empty."""
        return self._seal() if self._pending else None

    def _seal(self) -> Batch:
        self._seq += 1
        request, self._request = self._request, pb.StreamIngestRequest()
        request.batch_id = new_id.text()
        size, self._pending, self._bytes = self._pending, 0, 0
        return Batch(self._seq, request, size)
