"""N producers for bench.ingest: each a separate process with its own AuditClient, as N
service instances would run, emitting its share of the events as fast as it can.

Each process builds its events, starts its client and waits at a barrier shared with
the other producers and the orchestrator; then it times from its first `emit()` to the
moment every event it emitted has been acknowledged by the audit-service (an ack is
sent only after the commit; over RabbitMQ, the broker's confirm, and bench.ingest
times the commits itself). Events the client spills to its Redis spool under the
burst count only once replayed and acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.queues import SimpleQueue
from multiprocessing.synchronize import Barrier
from threading import BrokenBarrierError

from audit_client import AuditClient, ClientSettings
from bench.common import Dial
from devstack.events import wire_events

DONE_TIMEOUT = 600.0


@dataclass(frozen=True)
class ProducerResult:
    """One producer's timed window (time.monotonic, the same clock in every process on
    Linux), its CPU time in that window, and its client's final counters."""

    first_emit: float
    last_ack: float
    cpu_seconds: float
    stats: dict[str, int | bool | str]


async def _produce(
    index: int, count: int, target: Dial, redis_url: str, barrier: Barrier
) -> ProducerResult:
    events = wire_events(count)
    for event in events:
        event.ClearField("event_id")  # emit() stamps a UUIDv7, as in a service
    settings = ClientSettings(
        redis_url=redis_url, spool_key=f"bench:{index}", **target.client_settings()
    )
    async with AuditClient(settings) as client:
        await asyncio.to_thread(barrier.wait)
        cpu = time.process_time()
        first = time.monotonic()
        for event in events:
            await client.emit(event)
        await client.flush()
        async with asyncio.timeout(DONE_TIMEOUT):
            # flush() also returns for events spooled in Redis; wait for their acks (or,
            # over RabbitMQ, the broker's confirms: bench.ingest then waits for the rows).
            while (s := client.stats()).acked + s.queued + s.dropped < s.emitted:
                await asyncio.sleep(0.002)
        last = time.monotonic()
        cpu = time.process_time() - cpu
    return ProducerResult(first, last, cpu, client.stats().as_dict())


def _main(
    index: int,
    count: int,
    target: Dial,
    redis_url: str,
    barrier: Barrier,
    out: SimpleQueue[ProducerResult | str],
) -> None:
    try:
        out.put(asyncio.run(_produce(index, count, target, redis_url, barrier)))
    except BaseException as exc:
        barrier.abort()
        out.put(f"producer {index} failed: {exc!r}")
        raise


@dataclass(frozen=True)
class ProducersRun:
    """What the orchestrator needs from one run of N producers."""

    seconds: float
    cpu_seconds: float
    stats: dict[str, int]


def run_producers(
    ctx: SpawnContext,
    producers: int,
    events: int,
    target: Dial | Sequence[Dial],
    redis_url: str,
    at_start: Callable[[], None] | None = None,
) -> ProducersRun:
    """Run `producers` processes sharing `events`; block until all are done. With
    several targets (replicas), producer i sends to target i modulo their number.

    `at_start` (a callable) runs once every producer is ready, as the timer starts.
    """
    targets = [target] if isinstance(target, Dial) else list(target)
    barrier = ctx.Barrier(producers + 1, timeout=300)
    out = ctx.SimpleQueue()
    shares = [events // producers + (i < events % producers) for i in range(producers)]
    procs = [
        ctx.Process(
            target=_main,
            args=(i, n, targets[i % len(targets)], redis_url, barrier, out),
            daemon=True,
        )
        for i, n in enumerate(shares)
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait()
    except BrokenBarrierError:
        raise RuntimeError(out.get()) from None
    if at_start is not None:
        at_start()
    answers = [out.get() for _ in procs]
    for p in procs:
        p.join()
    if failures := [a for a in answers if isinstance(a, str)]:
        raise RuntimeError("; ".join(failures))
    results = [a for a in answers if isinstance(a, ProducerResult)]
    totals: dict[str, int] = {}
    for r in results:
        for key, value in r.stats.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return ProducersRun(
        seconds=max(r.last_ack for r in results) - min(r.first_emit for r in results),
        cpu_seconds=sum(r.cpu_seconds for r in results),
        stats=totals,
    )
