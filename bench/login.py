"""What auditing adds to a login, through the real user-service, in one run.

    .venv/bin/python -m bench.login [--calls 300] [--cheap-calls 1000] [--no-record]

User-services run side by side in this process (each on its own port and users
database) against the same PostgreSQL, Redis and audit-service (its own process);
rate limits are raised so they never refuse a call. Three measurements:

1. production argon2id: auditing on and off, `--calls` logins each, sequential, the
   two alternating (in turn first), so drift in the machine's load hits both alike.
   argon2 takes ~140 ms and varies by milliseconds, so this only bounds the cost.
2. the same with a cheap argon2id (t=1, 1 MiB, 1 lane; USER_ARGON2_* settings, for
   this measurement only), `--cheap-calls` logins each: the rest of the login (SQL,
   Redis, tokens, the audit event) at a scale where a millisecond shows.
3. inside the auditing-on services: the time each login spends in the audit path
   (`Auditor.record`: building the event and the audit client's `emit`), summed per
   login. This is the part of a login's latency that auditing adds directly; what
   (1) and (2) add on top is the audit client's background sending sharing the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Bench, Report, bench_postgres, percentiles
from devstack import create_database, start_redis
from devstack.certs import tls_settings
from meshkit.tls import aio_channel
from user.v1 import user_service_pb2 as pb
from user.v1 import user_service_pb2_grpc as pb_grpc
from user_svc.app import UserApp
from user_svc.audit import Auditor
from user_svc.migrate import upgrade as users_upgrade
from user_svc.settings import Settings

PASSWORD = "Correct-Horse-Battery-Staple"
TARGET_MS = 1.0
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
WARM_UP = 10


@dataclass
class AuditTimer:
    """Wraps one service's `Auditor.record`; `spent` is its time since the last reset."""

    spent: float = 0.0
    per_login: list[float] = field(default_factory=list)

    def install(self, auditor: Auditor) -> None:
        record = auditor.record

        async def timed(*args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            try:
                await record(*args, **kwargs)
            finally:
                self.spent += time.perf_counter() - start

        auditor.record = timed  # type: ignore[method-assign]


@dataclass
class Pair:
    """Logins with auditing on and off, alternating; ms."""

    label: str
    on: list[float]
    off: list[float]
    audit_path: list[float]

    def rows(self) -> list[list[object]]:
        on50, on99 = percentiles(self.on)
        off50, off99 = percentiles(self.off)
        paired = statistics.median(a - b for a, b in zip(self.on, self.off, strict=True)) * 1000
        path50, path99 = percentiles(self.audit_path)
        return [
            [f"{self.label}: login, auditing on", on50, on99, "-"],
            [f"{self.label}: login, auditing off", off50, off99, "-"],
            [f"{self.label}: auditing adds", on50 - off50, on99 - off99, paired],
            [f"{self.label}: audit path in the handler", path50, path99, "-"],
        ]


Login = Callable[[], Awaitable[object]]


async def alternate(label: str, on: Login, off: Login, timer: AuditTimer, calls: int) -> Pair:
    for _ in range(WARM_UP):
        await on()
        await off()
    pair = Pair(label, [], [], [])
    for i in range(calls):
        order = ((on, pair.on), (off, pair.off))
        for login, samples in order if i % 2 == 0 else reversed(order):
            timer.spent = 0.0
            start = time.perf_counter()
            await login()
            samples.append(time.perf_counter() - start)
            if login is on:
                pair.audit_path.append(timer.spent)
    return pair


async def measure(settings: dict[str, Settings], calls: int, cheap_calls: int) -> list[Pair]:
    """Every user-service up at once; each pair of them measured in turn."""
    timers = {name: AuditTimer() for name in settings}
    logins: dict[str, Login] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, s in settings.items():
            app = await stack.enter_async_context(UserApp(s))
            if s.audit_enabled:
                timers[name].install(app.services.auditor)
            channel = aio_channel(f"127.0.0.1:{app.port}", s.identity_files)
            stack.push_async_callback(channel.close)
            stub = pb_grpc.UserServiceStub(channel)
            create = pb.CreateUserRequest(username="bench", email="b@x.io", password=PASSWORD)
            await stub.CreateUser(create)
            logins[name] = functools.partial(
                stub.Login, pb.LoginRequest(username="bench", password=PASSWORD)
            )
        prod = await alternate(
            "argon2 t=3 64MiB p=4", logins["prod-on"], logins["prod-off"], timers["prod-on"], calls
        )
        cheap = await alternate(
            "argon2 t=1 1MiB p=1",
            logins["cheap-on"],
            logins["cheap-off"],
            timers["cheap-on"],
            cheap_calls,
        )
    return [prod, cheap]


def run(bench: Bench, redis_url: str, calls: int, cheap_calls: int) -> list[Pair]:
    audit_dsn = bench.fresh_database("audit_login")
    with bench.audit_service(audit_dsn) as audit:
        settings = {}
        for cost in ("prod", "cheap"):
            for enabled in (True, False):
                name = f"{cost}-{'on' if enabled else 'off'}"
                users = create_database(bench.pg, f"users_{name.replace('-', '_')}")
                users_upgrade(users.dsn)
                settings[name] = Settings.from_env(
                    {},
                    database_url=users.dsn,
                    grpc_listen="127.0.0.1:0",
                    redis_url=redis_url,
                    redis_prefix=f"bench-{name}:",
                    audit_target=audit.info.url,
                    **tls_settings(Path(audit.info.certs_dir), "user-service"),
                    audit_enabled=enabled,
                    rate_limit_per_ip=1_000_000,
                    rate_limit_per_account=1_000_000,
                    log_level="ERROR",
                    **(CHEAP_ARGON2 if cost == "cheap" else {}),
                )
        return asyncio.run(measure(settings, calls, cheap_calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="logins per case, production")
    parser.add_argument("--cheap-calls", type=int, default=1000, help="logins per case, cheap")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        with start_redis(Path(tmp) / "redis") as redis:
            prod, cheap = run(bench, redis.info.url, args.calls, args.cheap_calls)
    report = Report("login")
    report.add(
        f"# sequential logins, on and off alternating: {args.calls} per case with production "
        f"argon2id, {args.cheap_calls} with a cheap one; ms"
    )
    report.table(["case", "p50", "p99", "paired"], prod.rows() + cheap.rows())
    report.add()
    for pair in (prod, cheap):
        _, path99 = percentiles(pair.audit_path)
        verdict = "PASS" if path99 < TARGET_MS else "MISS"
        report.add(
            f"target: auditing adds < {TARGET_MS:g} ms to login p99 ({pair.label}): "
            f"audit path p99 {path99:.3f} ms  {verdict}"
        )
    on99, off99 = percentiles(cheap.on)[1], percentiles(cheap.off)[1]
    report.add(
        f"end to end ({cheap.label}): p99 on - off = {on99 - off99:.2f} ms "
        "(two p99s of a noisy machine; see BENCHMARKS.md)"
    )
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
