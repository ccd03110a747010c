"""The Redis spool: a list of serialized `audit.v2.StreamIngestRequest` batches, oldest first.

Writers append at the tail (RPUSH, one command per group of batches, so a group lands
whole). The replayer reads from the head without removing (LRANGE), and removes a batch
only after the audit-service acknowledged it (LREM of those exact bytes): a crash at any
point leaves the batch in the list, and replaying it again is harmless because its
events keep their ids (the audit-service answers DUPLICATE). One process at a time
replays a given list: it holds a lease key (`<key>:replayer`, SET NX PX, renewed while
held). Batches Redis holds that do not parse go to `<key>:dead`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from audit_client.errors import SpoolUnavailable

log = logging.getLogger(__name__)

_HOLD_LEASE = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@contextlib.contextmanager
def _map_redis_errors(what: str) -> Iterator[None]:
    """Every Redis failure becomes SpoolUnavailable, at this one boundary."""
    try:
        yield
    except (RedisError, OSError) as exc:
        _give_back_cancellation()
        raise SpoolUnavailable(f"redis {what} failed: {exc!r}") from exc
    _give_back_cancellation()


def _give_back_cancellation() -> None:
    # redis-py (8.1, asyncio) can swallow a cancellation that lands during a command:
    # the command returns normally or raises ConnectionError, and the cancelled task
    # would run on. Raise it again.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisSpool:
    """Durable FIFO of encoded batches in one Redis list (see the module docstring)."""

    def __init__(self, url: str, key: str, *, timeout: float, max_batches: int) -> None:
        self.key = key
        self.lease_key = f"{key}:replayer"
        self.dead_key = f"{key}:dead"
        self._max = max_batches
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        )
        self._hold = self._redis.register_script(_HOLD_LEASE)
        self._release = self._redis.register_script(_RELEASE_LEASE)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def push(self, items: Sequence[bytes], *, depth_hint: int) -> int:
        """Append batches at the tail, in order; return the new depth.

        Raises SpoolUnavailable when Redis does not answer or the list is full.
        """
        if self._max and depth_hint + len(items) > self._max:
            depth = await self.depth()
            if depth + len(items) > self._max:
                raise SpoolUnavailable(f"spool {self.key} is full ({depth} batches)")
        with _map_redis_errors("RPUSH"):
            return int(await self._redis.rpush(self.key, *items))

    async def read(self, start: int, count: int) -> list[bytes]:
        """Up to `count` batches from position `start` (0 = oldest), left in place."""
        with _map_redis_errors("LRANGE"):
            items = await self._redis.lrange(self.key, start, start + count - 1)
        return [item if isinstance(item, bytes) else item.encode() for item in items]

    async def remove(self, item: bytes) -> tuple[bool, int]:
        """Remove one acknowledged batch; return (whether it was there, the new depth)."""
        with _map_redis_errors("LREM"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.lrem(self.key, 1, item)  # type: ignore[arg-type]  # bytes are sent as is
                pipe.llen(self.key)
                removed, depth = await pipe.execute()
        return bool(removed), int(depth)

    async def bury(self, item: bytes) -> None:
        """Move an unreadable batch to the dead-letter list, for an operator to look at."""
        with _map_redis_errors("bury"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrem(self.key, 1, item)  # type: ignore[arg-type]
                pipe.rpush(self.dead_key, item)
                await pipe.execute()

    async def depth(self) -> int:
        """Batches in the list."""
        with _map_redis_errors("LLEN"):
            return int(await self._redis.llen(self.key))

    async def hold_lease(self, owner: str, seconds: float) -> bool:
        """Take or renew the replay lease; False when another process holds it."""
        with _map_redis_errors("lease"):
            held = await self._hold(keys=[self.lease_key], args=[owner, int(seconds * 1000)])
        return bool(held)

    async def release_lease(self, owner: str) -> None:
        """Give the lease up if this owner holds it, so another process may replay at once."""
        with _map_redis_errors("lease release"):
            await self._release(keys=[self.lease_key], args=[owner])
