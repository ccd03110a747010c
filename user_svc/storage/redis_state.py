"""Short-lived protection state in Redis: rate-limit windows, per-account failure
addresses, and the outbox a mailer reads reset tokens from.

Subjects (addresses, user names, emails) appear in keys only as hashes, so the keys
hold no personal data.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from user_svc.errors import Unavailable

# Records the failure address and returns (was it new, distinct addresses in window).
_ADD_FAILURE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {added, redis.call('ZCARD', KEYS[1])}
"""


@contextlib.asynccontextmanager
async def map_redis_errors() -> AsyncIterator[None]:
    """Every Redis failure becomes the domain's `Unavailable`, at this one boundary."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise Unavailable(f"redis failed: {exc.__class__.__name__}") from exc


def _subject(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class RedisState:
    """The user-service's keys in one Redis, all under `prefix`."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._add_failure = client.register_script(_ADD_FAILURE)

    async def hit(self, bucket: str, subject: str, window_seconds: int) -> int:
        """Count one call of `subject` in the current fixed window; the count so far."""
        window = int(time.time()) // window_seconds
        key = f"{self._prefix}rl:{bucket}:{_subject(subject)}:{window}"
        async with map_redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, window_seconds + 1)
                count, _ = await pipe.execute()
        return int(count)

    async def add_failure_address(
        self, user_id: str, ip: str, window_seconds: int
    ) -> tuple[bool, int]:
        """Remember a failed sign-in of the account from `ip`; whether `ip` was new in
        the window, and how many distinct addresses failed within it."""
        key = f"{self._prefix}fail_ips:{user_id}"
        async with map_redis_errors():
            added, distinct = await self._add_failure(
                keys=[key], args=[time.time(), window_seconds, _subject(ip)]
            )
        return bool(added), int(distinct)

    async def push_outbox(self, key: str, entry: str, *, cap: int = 10_000) -> None:
        """Append a message for the mailer; the list keeps the newest `cap` entries."""
        async with map_redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, entry)
                pipe.ltrim(key, -cap, -1)
                await pipe.execute()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False
