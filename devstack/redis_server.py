"""Redis 7 from Debian's redis-server: with an append-only file for `make up` (the audit
client's spool must survive a Redis restart), without persistence for most tests.
Every server requires a password (`requirepass`): a random development one, kept in
its data folder (0600) so a restart over the same folder keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack import binaries
from devstack.errors import DevstackError
from devstack.ports import LOOPBACK, free_port
from devstack.process import ProcessSpec
from devstack.secrets import dev_password
from devstack.service import RunningService, ServicePlan, start_service


@dataclass(frozen=True)
class RedisInfo:
    """How clients reach the server."""

    host: str
    port: int
    db: int = 0
    password: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """e.g. redis://:<password>@127.0.0.1:6379/0"""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{self.db}"

    def describe(self) -> str:
        """One line for humans: the URL without its password (in redis-password)."""
        return f"redis://{self.host}:{self.port}/{self.db}"


def probe(info: RedisInfo) -> None:
    """Return once PING answers PONG; raise otherwise."""
    # One attempt per probe: redis-py's default retries would slow the polling loop.
    no_retry = Retry(NoBackoff(), 0)
    with redis.Redis(
        host=info.host,
        port=info.port,
        password=info.password or None,
        socket_timeout=2,
        retry=no_retry,
    ) as client:
        if client.ping() is not True:
            raise DevstackError("PING did not answer PONG")


def redis_plan(
    data_dir: Path, port: int, *, appendfsync: str | None = None
) -> ServicePlan[RedisInfo]:
    """Plan redis-server on 127.0.0.1:`port`; no RDB snapshots.

    `appendfsync` (`everysec` or `always`) turns the append-only file on; None runs
    without persistence (a restart empties Redis). With `everysec` Redis normally
    writes each command to the file before it answers, so a kill -9 loses nothing,
    but while a slow fsync is still running it postpones that write for up to two
    seconds and answers anyway: a kill -9 or a crash then loses up to the last ~2 s
    of writes. `always` writes and fsyncs before answering: nothing answered is lost.
    """
    data_dir = data_dir.resolve()
    password = dev_password(data_dir / "redis-password")
    info = RedisInfo(LOOPBACK, port, password=password)
    persistence = (
        ("--appendonly", "yes", "--appendfsync", appendfsync)
        if appendfsync
        else ("--appendonly", "no")
    )
    argv = (
        str(binaries.redis_server()),
        "--port", str(port),
        "--bind", LOOPBACK,
        "--save", "",
        *persistence,
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--requirepass", password,
    )  # fmt: skip
    spec = ProcessSpec(
        name="redis",
        argv=argv,
        log_path=data_dir / "redis.log",
        ready=lambda: probe(info),
        cwd=data_dir,
        stop_timeout=10.0,
    )
    return ServicePlan(spec=spec, info=info)


def start_redis(
    data_dir: Path, port: int | None = None, *, appendfsync: str | None = None
) -> RunningService[RedisInfo]:
    """Start redis-server on `port` (a free one if None); `appendfsync`: with AOF."""
    return start_service(
        redis_plan(data_dir, free_port() if port is None else port, appendfsync=appendfsync)
    )
