"""bench.spool: what the spool's guarantees cost while the audit-service is down.

Loss detection on vs off: the same batches appended to a Redis list by the spool's
script (epoch check, `pushed` counter; what the client runs) and by plain RPUSH (what
it ran before). Disk spool on vs off: an AuditClient spooling N events to Redis, and
one whose Redis is down too, spooling them to fsync'ed files instead.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from audit_client import AuditClient, ClientSettings
from audit_client.spool import RedisSpool
from bench.common import Report
from devstack import free_port, start_redis
from devstack.events import wire_events

GROUP = 32  # batches per push, as the spiller writes them


async def client_spools(redis_url: str, events: int, disk: str) -> float:
    """Seconds for emit + flush of `events` while the audit-service is down."""
    settings = ClientSettings(
        target=f"127.0.0.1:{free_port()}",
        tls="plaintext",
        redis_url=redis_url,
        spool_key=f"bench:{time.time_ns()}:retry_queue",
        disk_spool_dir=disk,
        breaker_reset_seconds=60,
        redis_timeout_seconds=0.5,
        max_buffered_events=max(20_000, events),
    )
    async with AuditClient(settings) as client:
        started = time.perf_counter()
        for event in wire_events(events):
            await client.emit(event)
        await client.flush()
        return time.perf_counter() - started


async def pushes(redis_url: str, items: list[bytes]) -> tuple[float, float]:
    """Seconds to append `items` in groups: by the spool's script, by plain RPUSH."""
    spool = RedisSpool(redis_url, f"bench:{time.time_ns()}:a", timeout=5, max_batches=0)
    epoch = await spool.claim_epoch("bench")
    started = time.perf_counter()
    for i in range(0, len(items), GROUP):
        await spool.push(items[i : i + GROUP], epoch=epoch, depth_hint=0)
    scripted = time.perf_counter() - started
    await spool.aclose()
    plain = aioredis.Redis.from_url(redis_url)
    key = f"bench:{time.time_ns()}:b"
    started = time.perf_counter()
    for i in range(0, len(items), GROUP):
        await plain.rpush(key, *items[i : i + GROUP])
    rpush = time.perf_counter() - started
    await plain.aclose()
    return scripted, rpush


async def run(events: int, tmp: Path) -> Report:
    out = Report("spool")
    with start_redis(tmp / "redis", appendfsync="everysec") as redis:
        url = redis.info.url
        to_redis = await client_spools(url, events, "")
        reader = aioredis.Redis.from_url(url)
        (key,) = await reader.keys("bench:*:retry_queue")
        listed = await reader.lrange(key, 0, -1)
        raw = [item for item in listed if isinstance(item, bytes)]
        await reader.aclose()
        scripted, rpush = await pushes(url, raw)
    to_disk = await client_spools(f"redis://127.0.0.1:{free_port()}/0", events, str(tmp / "d"))
    out.add(f"# {events:,} guide-sized events, 500 per batch; audit-service down; AOF everysec")
    out.table(
        ["case", "seconds", "events/s"],
        [
            ["client -> Redis spool (loss detection on)", to_redis, events / to_redis],
            ["client -> disk spool, Redis down (fsync per 32 batches)", to_disk, events / to_disk],
        ],
    )
    out.add(f"# the same {len(raw):,} batches appended {GROUP} per command:")
    out.table(
        ["append", "seconds", "batches/s"],
        [
            ["spool script (epoch check, pushed counter)", scripted, len(raw) / scripted],
            ["plain RPUSH (no loss detection)", rpush, len(raw) / rpush],
        ],
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--no-record", action="store_true", help="print only (dev runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = asyncio.run(run(args.events, Path(tmp)))
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
