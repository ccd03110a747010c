"""Shared pieces of the benchmarks: a private PostgreSQL, a migrated database, the
audit-service as a child process, event generation, and result printing."""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit_svc.ops.migrate import upgrade
from devstack import PostgresInfo, create_database, start_postgres
from devstack.certs import files_of
from devstack.mesh import NO_QUOTA_ENV, GrpcServiceInfo, audit_plan
from devstack.ports import free_port
from devstack.service import RunningService, start_service
from devstack.settings import DEFAULT_PG_BINDIR
from devstack.stack import ComponentContext
from meshkit.tls import TlsFiles, aio_channel


def command_line(module: str) -> str:
    """The command that reproduces this run."""
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", module, *sys.argv[1:]])


def commit_of(checkout: Path) -> str:
    """The short commit id a checkout is at (its path when it is not a git checkout)."""
    out = subprocess.run(
        ["git", "-C", str(checkout), "log", "-1", "--format=%h"], capture_output=True, text=True
    )
    return out.stdout.strip() or str(checkout)


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"


@dataclass
class Bench:
    """A private PostgreSQL and an empty, migrated database for one benchmark run."""

    pg: PostgresInfo
    folder: Path

    def fresh_database(self, name: str) -> str:
        info = create_database(self.pg, name)
        upgrade(info.dsn)
        return info.dsn

    @contextmanager
    def audit_service(
        self, dsn: str, env: Mapping[str, str] | None = None, *, tls: bool = True, replica: int = 0
    ) -> Iterator[RunningService[GrpcServiceInfo]]:
        """The audit-service over `dsn`; `env` adds AUDIT_* settings (sinks). With
        mutual TLS as `make up` runs it, or plaintext (for the on/off comparison).
        Without write quotas: a benchmark measures what the service can take."""
        env = {**NO_QUOTA_ENV, **(env or {})}
        if not tls:
            env = {**env, **PLAINTEXT_ENV}
        name = dsn.rsplit("/", 1)[1]
        folder = self.folder / (f"audit-{name}-{replica}" if replica else f"audit-{name}")
        context = ComponentContext(folder, free_port(), {"postgres": self.pg.for_database(name)})
        plan = audit_plan(context)
        if env:  # always: the quotas at least
            spec = dataclasses.replace(plan.spec, env={**plan.spec.env, **env})
            plan = dataclasses.replace(plan, spec=spec)
        if not tls:  # devstack's probe dials mutual TLS
            ready = functools.partial(_probe_plaintext, plan.info.url)
            plan = dataclasses.replace(plan, spec=dataclasses.replace(plan.spec, ready=ready))
        with start_service(plan) as service:
            yield service


# The audit-service without TLS (its callers are then anonymous: dev mode on loopback).
PLAINTEXT_ENV = {"AUDIT_TLS": "plaintext"}


def _probe_plaintext(target: str) -> None:
    """Return once a plaintext audit-service answers grpc.health.v1 SERVING."""
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError(f"{target} is not serving yet")


@dataclass(frozen=True)
class Dial:
    """How a bench client reaches the audit-service: target, and the identity's TLS
    files (None: plaintext)."""

    target: str
    tls: TlsFiles | None
    # More client settings (the RabbitMQ transport: transport, amqp_url, amqp_exchange).
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def channel(self) -> grpc.aio.Channel:
        return aio_channel(self.target, self.tls)

    def client_settings(self) -> dict[str, Any]:
        """audit_client.ClientSettings fields for this dial."""
        if self.tls is None:
            return {"target": self.target, "tls": "plaintext", **self.extra}
        f = self.tls
        return {
            "target": self.target,
            "tls_ca_file": f.ca_file,
            "tls_cert_file": f.cert_file,
            "tls_key_file": f.key_file,
            **self.extra,
        }


def dial(info: GrpcServiceInfo, identity: str = "user-service", *, tls: bool = True) -> Dial:
    """A Dial to a service `Bench.audit_service` started (`tls` as it was started)."""
    return Dial(info.url, files_of(Path(info.certs_dir), identity) if tls else None)


@contextmanager
def bench_postgres(folder: Path, options: Mapping[str, str] | None = None) -> Iterator[Bench]:
    """PostgreSQL under `folder`; `options` are extra server settings."""
    # fsync on: committed means durable, as in production.
    with start_postgres(folder / "pg", fsync=True, options=options) as server:
        yield Bench(server.info, folder)


async def timed(
    call: Callable[[], Awaitable[object]], calls: int, warm_up: int
) -> tuple[list[float], object]:
    """`warm_up` untimed calls, then the seconds of each of `calls` sequential calls,
    and the last call's reply."""
    for _ in range(warm_up):
        await call()
    samples, reply = [], None
    for _ in range(calls):
        start = time.perf_counter()
        reply = await call()
        samples.append(time.perf_counter() - start)
    return samples, reply


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def versions() -> str:
    """The versions that shape the figures."""
    postgres = subprocess.run(
        [str(DEFAULT_PG_BINDIR / "postgres"), "--version"], capture_output=True, text=True
    ).stdout.split()[2]
    libs = ", ".join(f"{p} {version(p)}" for p in ("grpcio", "protobuf", "asyncpg"))
    return f"Python {platform.python_version()}, PostgreSQL {postgres}, {libs}"


@dataclass
class Report:
    """One benchmark's output: printed, and recorded in BENCHMARKS.md between its
    markers (`<!-- bench:NAME -->` ... `<!-- /bench:NAME -->`), so the file always
    holds the latest run of each part next to the prose that explains it."""

    name: str
    lines: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.lines += [
            f"# {command_line('bench.' + self.name)}",
            f"# {platform.node()}: {os.cpu_count()} cores; {versions()}",
            f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        ]

    def add(self, line: str = "") -> None:
        self.lines.append(line)

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        """A fixed-width table: the first column left-aligned, numbers right-aligned."""
        cells = [header] + [[_cell(v) for v in row] for row in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        for r in cells:
            rest = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
            self.add("  ".join([r[0].ljust(widths[0]), *rest]))

    def publish(self, record: bool = True) -> None:
        text = "\n".join(self.lines)
        print(text, flush=True)
        if record:
            record_section(self.name, text)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def record_section(name: str, text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the block between NAME's markers in BENCHMARKS.md (appended if new)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n```\n{text}\n```\n{end}"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in doc and end in doc:
        head, rest = doc.split(start, 1)
        doc = head + block + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip("\n") + f"\n\n{block}\n"
    path.write_text(doc)


async def count_events(dsn: str) -> int:
    """Rows in audit_events: what a run really committed."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM audit_events"))
    finally:
        await conn.close()
