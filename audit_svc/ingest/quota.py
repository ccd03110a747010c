"""Write quotas: events per second and bytes per second per principal, each a token
bucket. Every ingest entry point (unary, batch, stream, REST through the gateway, a
queue consumer) takes from it through `Ingestor.ingest`; `WriteQuotas.take` is the one
check, for a consumer that wants it before its own work.

A batch over quota is refused whole with WRITE_QUOTA_EXCEEDED (RESOURCE_EXHAUSTED)
and a RetryInfo saying when it would fit: nothing of it is stored, so the client
backs off and sends it again (audit_client spools it meanwhile). A bucket holds
`burst_seconds` of its rate; a batch larger than that passes once the bucket is full
(it goes into debt), so no batch is refused forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2

from audit_svc import metrics
from audit_svc.errors import AuditError

REASON = "WRITE_QUOTA_EXCEEDED"


class WriteQuotaExceeded(AuditError):
    """The principal wrote more than its quota; retry after `retry_after` seconds."""

    code = code_pb2.RESOURCE_EXHAUSTED
    reason = REASON

    def __init__(self, principal: str, limit: str, retry_after: float) -> None:
        super().__init__(
            f"{principal} is over its write quota ({limit}); retry in {retry_after:.2f} s",
            metadata={"principal": principal, "limit": limit},
        )
        self.retry_after = retry_after

    def extra_details(self) -> list[Message]:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(max(1, int(self.retry_after * 1e9)))
        return [info]


class TokenBucket:
    """`rate` tokens a second, holding at most `capacity`; starts full."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` may be taken (0: now); refills first."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(cost, self.capacity)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.rate

    def take(self, cost: float) -> None:
        self.tokens -= cost


@dataclass(frozen=True, slots=True)
class Rates:
    """A principal's quota; 0 is no limit."""

    events_per_second: float
    bytes_per_second: float


def rates_of(
    default: Rates, events_per_second: float | None, bytes_per_second: float | None
) -> Rates:
    """`default` with a writer's overrides (None: not overridden)."""
    return Rates(
        default.events_per_second if events_per_second is None else events_per_second,
        default.bytes_per_second if bytes_per_second is None else bytes_per_second,
    )


class WriteQuotas:
    """The buckets of every principal that wrote (principals come from the policy,
    so their number is bounded)."""

    def __init__(
        self,
        default: Rates,
        burst_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self._burst = burst_seconds
        self._clock = clock
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}

    def take(
        self,
        principal: str,
        events: int,
        size: int,
        *,
        events_per_second: float | None = None,
        bytes_per_second: float | None = None,
    ) -> None:
        """Take `events` and `size` bytes from `principal`'s buckets (the rates given
        are the writer's overrides of the default, from the policy), or raise
        WriteQuotaExceeded taking nothing."""
        now = self._clock()
        buckets = self._buckets.get(principal)
        if buckets is None:
            r = rates_of(self.default, events_per_second, bytes_per_second)
            buckets = self._buckets[principal] = (
                self._bucket(r.events_per_second, now),
                self._bucket(r.bytes_per_second, now),
            )
        by_events, by_bytes = buckets
        for bucket, cost, limit in ((by_events, events, "events"), (by_bytes, size, "bytes")):
            if bucket is not None and (delay := bucket.wait(cost, now)) > 0:
                metrics.count_over_quota(principal, limit)
                raise WriteQuotaExceeded(principal, f"{bucket.rate:g} {limit}/s", delay)
        for bucket, cost in ((by_events, events), (by_bytes, size)):
            if bucket is not None:
                bucket.take(cost)

    def _bucket(self, rate: float, now: float) -> TokenBucket | None:
        return TokenBucket(rate, rate * self._burst, now) if rate > 0 else None
