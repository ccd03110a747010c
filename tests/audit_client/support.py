"""Helpers of the client's tests: waiting without timed assertions, and real servers a
test can stop, kill -9 and start again on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg

from audit.v2 import event_pb2
from audit_client import ClientSettings
from audit_svc.settings import Settings
from devstack import (
    PostgresInfo,
    RabbitInfo,
    RedisInfo,
    RunningService,
    ServiceInfo,
    free_port,
    start_rabbitmq,
    start_redis,
)
from devstack.events import guide_event
from devstack.mesh import GrpcServiceInfo, audit_plan
from devstack.process import family
from devstack.secrets import dev_password
from devstack.service import start_service
from devstack.stack import ComponentContext
from tests.testkit import tls

ROOT = Path(__file__).resolve().parents[2]
InfoT = TypeVar("InfoT", bound=ServiceInfo)
MakeSettings = Callable[..., ClientSettings]
"""The `client_settings` fixture: target plus any changed setting -> ClientSettings."""


def service_settings(audit_db: str, port: int = 0) -> Settings:
    """The audit-service on 127.0.0.1:`port`, shutting down without a long grace."""
    return tls.audit_settings(
        database_url=audit_db,
        grpc_listen=f"127.0.0.1:{port}",
        shutdown_grace_seconds=0.5,
        log_level="WARNING",
    )


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, timeout: float = 60.0, what: str = ""
) -> None:
    """Wait until `check()` holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or check}")
        await asyncio.sleep(0.05)


def kill9(server: RunningService[Any]) -> None:
    """SIGKILL a server and every process it started (PostgreSQL's backends), no
    goodbye, and wait until it is gone."""
    process = server.process
    members = family(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait_exit(time.monotonic() + 10)
    process.finish()


class AuditProcess:
    """`python -m audit_svc` as a child process on a fixed port, to kill -9 and restart."""

    def __init__(self, pg: PostgresInfo, port: int, data_dir: Path) -> None:
        self.target = f"127.0.0.1:{port}"
        self._context = ComponentContext(data_dir, port, {"postgres": pg}, tls.folder())
        self._server: RunningService[GrpcServiceInfo] | None = None

    def start(self, **extra: str) -> None:
        """Start and wait until it answers a health check (blocking: use to_thread).
        With the tests' policy (tests/testkit/policy.toml) and no read audit, as the
        in-process audit-service of `tls.audit_settings` runs; `extra` variables too."""
        plan = audit_plan(self._context)
        env = {
            **plan.spec.env,
            "AUDIT_POLICY_FILE": str(tls.TEST_POLICY),
            "AUDIT_READ_AUDIT": "false",
            **extra,
        }
        self._server = start_service(
            dataclasses.replace(plan, spec=dataclasses.replace(plan.spec, env=env))
        )

    def kill9(self) -> None:
        """SIGKILL, no goodbye: what a crash or an OOM kill does."""
        assert self._server is not None
        kill9(self._server)
        self._server = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as in a long GC pause."""
        assert self._server is not None
        os.kill(self._server.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._server is not None
        os.kill(self._server.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self._server is not None:
            self.resume()
            self._server.stop()
            self._server = None


class OwnServer(Generic[InfoT]):
    """A server of one test's own on a fixed port, which the test may stop, kill -9
    and start again there: `start_on(data_dir, port)` starts it."""

    def __init__(self, data_dir: Path, start_on: Callable[[Path, int], RunningService[InfoT]]):
        self.dir = data_dir
        self.port = free_port()
        self._start_on = start_on
        self._server: RunningService[InfoT] | None = None

    def start(self) -> InfoT:
        self._server = self._start_on(self.dir, self.port)
        return self._server.info

    def kill9(self) -> None:
        """SIGKILL: what the OOM killer does."""
        assert self._server is not None
        kill9(self._server)
        self._server = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class OwnRedis(OwnServer[RedisInfo]):
    """A Redis of one test's own; `appendfsync` (`everysec` as `make up` runs it, or
    `always`): with its append-only file."""

    def __init__(self, data_dir: Path, *, appendfsync: str | None = None) -> None:
        super().__init__(data_dir, lambda d, port: start_redis(d, port, appendfsync=appendfsync))
        # Its password is made once in its folder: the URL holds across restarts.
        password = dev_password(data_dir.resolve() / "redis-password")
        self.url = RedisInfo("127.0.0.1", self.port, password=password).url


class OwnRabbitMQ(OwnServer[RabbitInfo]):
    """A RabbitMQ node of one test's own (the tests' publishers), to stop and restart
    on its port; its users and passwords hold across restarts."""

    def __init__(self, data_dir: Path, publishers: tuple[str, ...]) -> None:
        super().__init__(data_dir, lambda d, port: start_rabbitmq(d, port, publishers=publishers))


def make_events(count: int, **changes: Any) -> list[event_pb2.AuditEvent]:
    """`count` copies of the integration guide's event (without ids: the client sets them)."""
    template = guide_event(**changes)
    out = []
    for _ in range(count):
        event = event_pb2.AuditEvent()
        event.CopyFrom(template)
        out.append(event)
    return out


async def stored_order(db: asyncpg.Connection) -> dict[str, list[str]]:
    """Event ids of each chain, in seq order."""
    rows = await db.fetch(
        "SELECT chain_id, event_id::text AS id FROM audit_events ORDER BY chain_id, seq"
    )
    chains: dict[str, list[str]] = {}
    for row in rows:
        chains.setdefault(row["chain_id"], []).append(row["id"])
    return chains
