"""Serve the per-event HTTP baseline (bench.baselines.http_per_event) as its own uvicorn
process, and drive it: `concurrency` kept-alive HTTP/1.1 connections, each POSTing one
event at a time and waiting for its answer.

The driver is a minimal hand-written HTTP/1.1 client on asyncio streams: requests are
encoded before the timer starts, so per request it writes bytes and reads one response
(headers, then Content-Length bytes). It must not be the bottleneck on a 2-core box:
measured against this app, it spends about 110-140 us of CPU per request where aiohttp
spends 320-420 us (the app itself: 700-1,000 us, plus PostgreSQL's). Each run prints the
driver's CPU next to the server's, so a driver bottleneck would show.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devstack.mesh import probe_http
from devstack.ports import LOOPBACK, free_port
from devstack.process import ProcessSpec
from devstack.service import RunningService, ServicePlan, start_service

PATH = "/api/v2/events"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class HttpInfo:
    """Where the baseline app listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        return self.url


@contextmanager
def serve(folder: Path, dsn: str) -> Iterator[RunningService[HttpInfo]]:
    """The baseline app under uvicorn (one worker, uvloop + httptools) on a free port."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/health"

    folder.mkdir(parents=True, exist_ok=True)
    spec = ProcessSpec(
        name="baseline-http",
        argv=(
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baselines.http_per_event:create_app",
            "--factory",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ),  # fmt: skip
        log_path=folder / "baseline-http.log",
        ready=functools.partial(probe_http, url),
        cwd=REPO,
        env={"BASELINE_DATABASE_URL": dsn},
    )
    plan = ServicePlan(spec=spec, info=HttpInfo(LOOPBACK, port))
    with start_service(plan) as service:
        yield service


def requests(port: int, bodies: list[bytes]) -> list[bytes]:
    """Each body as a complete POST request."""
    head = f"POST {PATH} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nContent-Type: application/json\r\n"
    return [f"{head}Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]


@dataclass
class Outcome:
    """Responses by HTTP status."""

    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


async def drive(port: int, prepared: list[bytes], concurrency: int) -> Outcome:
    """Send every prepared request over `concurrency` keep-alive connections."""
    outcome = Outcome()
    todo = iter(prepared)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)  # TCP_NODELAY is on
        try:
            for request in todo:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
                await reader.readexactly(_content_length(head))
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return outcome


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError(f"response without Content-Length: {head!r}")
