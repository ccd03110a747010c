"""Short-lived protection state in Redis: rate-limit windows, per-account failure
addresses, sign-in failure delays, and the mail outbox (sealed messages, `outbox.py`).

Subjects (addresses, user names, emails) appear in keys only as hashes, so the keys
hold no personal data.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from user_svc.errors import Unavailable
from user_svc.outbox import message_key

# Records the failure address and returns (was it new, distinct addresses in window).
_ADD_FAILURE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {added, redis.call('ZCARD', KEYS[1])}
"""

# One failed sign-in of an account (KEYS[1], a hash) from a source (ARGV[2]): counts
# `n:<source>` and `n:*` (every source) go up; past its free failures (ARGV[3], ARGV[4])
# each sets `until:<field>` to now (ARGV[1]) + base (ARGV[5]) x 2^(excess - 1), capped
# at ARGV[6]. The hash lives ARGV[7] seconds after the last failure. Returns
# {source count, source delay, account count, account delay}.
_LOGIN_FAILURE = """
local now = tonumber(ARGV[1])
local function bump(field, free)
  local n = redis.call('HINCRBY', KEYS[1], 'n:' .. field, 1)
  local delay = 0
  if n > free then
    delay = math.min(tonumber(ARGV[6]), tonumber(ARGV[5]) * 2 ^ math.min(n - free - 1, 40))
    redis.call('HSET', KEYS[1], 'until:' .. field, now + delay)
  end
  return {n, delay}
end
local s = bump(ARGV[2], tonumber(ARGV[3]))
local a = bump('*', tonumber(ARGV[4]))
redis.call('EXPIRE', KEYS[1], ARGV[7])
return {s[1], s[2], a[1], a[2]}
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
        self._login_failure = client.register_script(_LOGIN_FAILURE)

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

    def _failures_key(self, account: str) -> str:
        return f"{self._prefix}login_failures:{_subject(account)}"

    async def login_failure(
        self,
        account: str,
        source: str,
        *,
        free: tuple[int, int],
        base_seconds: int,
        max_seconds: int,
        memory_seconds: int,
    ) -> tuple[int, int, int, int]:
        """Count a failed sign-in of `account` from `source`; (source failures, source
        delay, account failures, account delay), delays in seconds (0: none yet).
        `free` is how many failures (per source, per account) pass without a delay."""
        async with map_redis_errors():
            out = await self._login_failure(
                keys=[self._failures_key(account)],
                args=[int(time.time()), _subject(source), free[0], free[1],
                      base_seconds, max_seconds, memory_seconds],
            )  # fmt: skip
        n_source, d_source, n_account, d_account = (int(x) for x in out)
        return n_source, d_source, n_account, d_account

    async def login_waits(self, account: str, source: str) -> tuple[int, int]:
        """Seconds `source` must still wait before signing in to `account`, and seconds
        every source must (0: none)."""
        async with map_redis_errors():
            until = await self._redis.hmget(
                self._failures_key(account), [f"until:{_subject(source)}", "until:*"]
            )
        now = time.time()
        source_until, account_until = (float(u) if u else now for u in until)
        return math.ceil(max(0.0, source_until - now)), math.ceil(max(0.0, account_until - now))

    async def forget_login_failures(self, account: str, source: str | None = None) -> None:
        """Clear the failures of `account` from `source`, or all of them when None."""
        key = self._failures_key(account)
        async with map_redis_errors():
            if source is None:
                await self._redis.delete(key)
            else:
                field = _subject(source)
                await self._redis.hdel(key, f"n:{field}", f"until:{field}")

    async def push_outbox(
        self,
        key: str,
        message_id: str,
        sealed: bytes,
        ttl_seconds: int,
        *,
        cap: int = 10_000,
    ) -> None:
        """Store a sealed message for `ttl_seconds` (at `message_key`) and queue its
        id; the queue keeps the newest `cap` ids and lives as long as its newest
        message."""
        async with map_redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(message_key(key, message_id), sealed, ex=ttl_seconds)
                pipe.rpush(key, message_id)
                pipe.ltrim(key, -cap, -1)
                pipe.expire(key, ttl_seconds)
                await pipe.execute()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False
