"""The Redis spool: a list of serialized `audit.v2.StreamIngestRequest` batches, oldest first.

Writers append at the tail (RPUSH, one command per group of batches, so a group lands
whole). The replayer reads from the head without removing (LRANGE), and removes a batch
only after the audit-service acknowledged it (LREM of those exact bytes): a crash at any
point leaves the batch in the list, and replaying it again is harmless because its
events keep their ids (the audit-service answers DUPLICATE). One process at a time
replays a given list: it holds a lease key (`<key>:replayer`, SET NX PX, renewed while
held). Batches Redis holds that do not parse go to `<key>:dead`.

Loss detection: the hash `<key>:meta` holds an `epoch` token and two counters, `pushed`
and `removed` (batches ever appended and removed after an ack), updated in the same
script as the list, so a Redis that comes back with less (no persistence, the last
second of an `everysec` AOF, a flush) comes back with smaller counters or without its
epoch. A push names the epoch its client knows and is refused in another one, so no
batch lands in a spool its writer has not checked (see `audit_client.ledger`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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
_PUSH = """
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[1] then
  return {-1, 0}
end
local depth = 0
for i = 2, #ARGV do
  depth = redis.call('RPUSH', KEYS[1], ARGV[i])
end
return {redis.call('HINCRBY', KEYS[2], 'pushed', #ARGV - 1), depth}
"""
_REMOVE = """
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 1 then
  redis.call('HINCRBY', KEYS[2], 'removed', 1)
end
return {removed, redis.call('LLEN', KEYS[1])}
"""
_EPOCH = """
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
return redis.call('HGET', KEYS[1], 'epoch')
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


class EpochChanged(SpoolUnavailable):
    """The spool's epoch is not the one the client knows: Redis lost data or was reset."""


@dataclass(frozen=True, slots=True)
class SpoolState:
    """The spool's bookkeeping as Redis holds it now (`epoch` None: not set)."""

    epoch: str | None
    pushed: int
    removed: int
    depth: int


class RedisSpool:
    """Durable FIFO of encoded batches in one Redis list (see the module docstring)."""

    def __init__(self, url: str, key: str, *, timeout: float, max_batches: int) -> None:
        self.key = key
        self.lease_key = f"{key}:replayer"
        self.dead_key = f"{key}:dead"
        self.meta_key = f"{key}:meta"
        self._max = max_batches
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        )
        self._hold = self._redis.register_script(_HOLD_LEASE)
        self._release = self._redis.register_script(_RELEASE_LEASE)
        self._push = self._redis.register_script(_PUSH)
        self._remove = self._redis.register_script(_REMOVE)
        self._epoch = self._redis.register_script(_EPOCH)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def push(self, items: Sequence[bytes], *, epoch: str, depth_hint: int) -> tuple[int, int]:
        """Append batches at the tail, in order, in spool `epoch`; return (`pushed` after
        them, so they are numbered pushed-len+1 .. pushed; the new depth).

        Raises EpochChanged in another epoch, SpoolUnavailable when Redis does not answer
        or the list is full.
        """
        if self._max and depth_hint + len(items) > self._max:
            depth = await self.depth()
            if depth + len(items) > self._max:
                raise SpoolUnavailable(f"spool {self.key} is full ({depth} batches)")
        with _map_redis_errors("RPUSH"):
            pushed, depth = await self._push(keys=[self.key, self.meta_key], args=[epoch, *items])
        if int(pushed) < 0:
            raise EpochChanged(f"spool {self.key} is no longer in epoch {epoch}")
        return int(pushed), int(depth)

    async def state(self) -> SpoolState:
        """The epoch, the counters and the depth, read at one moment."""
        with _map_redis_errors("state"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hmget(self.meta_key, ["epoch", "pushed", "removed"])
                pipe.llen(self.key)
                (epoch, pushed, removed), depth = await pipe.execute()
        return SpoolState(
            epoch.decode() if isinstance(epoch, bytes) else epoch,
            int(pushed or 0),
            int(removed or 0),
            int(depth),
        )

    async def claim_epoch(self, token: str) -> str:
        """Set the epoch to `token` unless one is set; return the epoch in force."""
        with _map_redis_errors("epoch"):
            epoch = await self._epoch(keys=[self.meta_key], args=[token])
        return epoch.decode() if isinstance(epoch, bytes) else str(epoch)

    async def read(self, start: int, count: int) -> list[bytes]:
        """Up to `count` batches from position `start` (0 = oldest), left in place."""
        with _map_redis_errors("LRANGE"):
            items = await self._redis.lrange(self.key, start, start + count - 1)
        return [item if isinstance(item, bytes) else item.encode() for item in items]

    async def remove(self, item: bytes) -> tuple[bool, int]:
        """Remove one acknowledged batch; return (whether it was there, the new depth)."""
        with _map_redis_errors("LREM"):
            removed, depth = await self._remove(keys=[self.key, self.meta_key], args=[item])
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
