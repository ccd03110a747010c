"""Redis 7 from Debian's redis-server: with an append-only file for `make up` (the audit
client's spool must survive a Redis restart), without persistence for most tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack import binaries
from devstack.errors import DevstackError
from devstack.ports import LOOPBACK, free_port
from devstack.process import ProcessSpec
from devstack.service import RunningService, ServicePlan, start_service


@dataclass(frozen=True)
class RedisInfo:
    """How clients reach the server."""

    host: str
    port: int
    db: int = 0

    @property
    def url(self) -> str:
        """e.g. redis://127.0.0.1:6379/0"""
        return f"redis://{self.host}:{self.port}/{self.db}"

    def describe(self) -> str:
        """One line for humans."""
        return self.url


def probe(info: RedisInfo) -> None:
    """Return once PING answers PONG; raise otherwise."""
    # One attempt per probe: redis-py's default retries would slow the polling loop.
    no_retry = Retry(NoBackoff(), 0)
    with redis.Redis(host=info.host, port=info.port, socket_timeout=2, retry=no_retry) as client:
        if client.ping() is not True:
            raise DevstackError("PING did not answer PONG")


def redis_plan(data_dir: Path, port: int, *, durable: bool = False) -> ServicePlan[RedisInfo]:
    """Plan redis-server on 127.0.0.1:`port`; no RDB snapshots.

    `durable`: AOF with `appendfsync everysec`. Every write reaches the file (the OS)
    before Redis answers it, so a kill -9 of Redis loses nothing; a crash of the
    machine loses at most the last second or two of writes (everysec, and a write
    Redis postpones while a slow fsync is still running). Without it a restart
    empties Redis.
    """
    data_dir = data_dir.resolve()
    info = RedisInfo(LOOPBACK, port)
    aof = ("--appendonly", "yes", "--appendfsync", "everysec")
    persistence = aof if durable else ("--appendonly", "no")
    argv = (
        str(binaries.redis_server()),
        "--port", str(port),
        "--bind", LOOPBACK,
        "--save", "",
        *persistence,
        "--dir", str(data_dir),
        "--daemonize", "no",
    )  # fmt: skip
    spec = ProcessSpec(
        name="redis",
        argv=argv,
        log_path=data_dir / "redis.log",
        ready=lambda: probe(info),
        cwd=data_dir,
        stop_timeout=10.0,
    )
    return ServicePlan(
        spec=spec, info=info, prepare=lambda: data_dir.mkdir(parents=True, exist_ok=True)
    )


def start_redis(
    data_dir: Path, port: int | None = None, *, durable: bool = False
) -> RunningService[RedisInfo]:
    """Start redis-server on `port` (a free one if None); `durable`: with AOF."""
    return start_service(
        redis_plan(data_dir, free_port() if port is None else port, durable=durable)
    )
