"""Login latency with auditing on and off, in one run, through the real user-service.

    .venv/bin/python -m bench.login [--calls 300]

Two user-services run side by side (in this process, each on its own port and users
database, production argon2 parameters) against the same PostgreSQL, Redis and
audit-service (its own process); only USER_AUDIT_ENABLED differs. Calls alternate
between them, `--calls` each, sequentially; rate limits are raised so they never
refuse a call.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import grpc

from bench.common import Bench, bench_postgres, command_line, machine, percentiles
from devstack import create_database, start_redis
from user.v1 import user_service_pb2 as pb
from user.v1 import user_service_pb2_grpc as pb_grpc
from user_svc.app import UserApp
from user_svc.migrate import upgrade as users_upgrade
from user_svc.settings import Settings

PASSWORD = "Correct-Horse-Battery-Staple"


async def logins(on: Settings, off: Settings, calls: int) -> list[tuple[str, float, float]]:
    """Both user-services up at once; calls alternate between them, so drift in the
    machine's load hits both alike."""
    async with UserApp(on) as app_on, UserApp(off) as app_off:
        stubs = {}
        for name, app in (("Login, auditing on", app_on), ("Login, auditing off", app_off)):
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
            stubs[name] = (channel, pb_grpc.UserServiceStub(channel))
        try:
            request = pb.LoginRequest(username="bench", password=PASSWORD)
            for _, stub in stubs.values():
                create = pb.CreateUserRequest(username="bench", email="b@x.io", password=PASSWORD)
                await stub.CreateUser(create)
                for _ in range(5):  # warm-up
                    await stub.Login(request)
            samples: dict[str, list[float]] = {name: [] for name in stubs}
            for _ in range(calls):
                for name, (_, stub) in stubs.items():
                    start = time.perf_counter()
                    await stub.Login(request)
                    samples[name].append(time.perf_counter() - start)
        finally:
            for channel, _ in stubs.values():
                await channel.close()
    return [(name, *percentiles(values)) for name, values in samples.items()]


def run(bench: Bench, redis_url: str, calls: int) -> list[tuple[str, float, float]]:
    audit_dsn = bench.fresh_database("audit_login")
    with bench.audit_service(audit_dsn) as audit:
        settings = []
        for enabled in (True, False):
            users = create_database(bench.pg, f"users_{'on' if enabled else 'off'}")
            users_upgrade(users.dsn)
            settings.append(
                Settings.from_env(
                    {},
                    database_url=users.dsn,
                    grpc_listen="127.0.0.1:0",
                    redis_url=redis_url,
                    redis_prefix=f"bench-{enabled}:",
                    audit_target=audit.info.url,
                    audit_enabled=enabled,
                    rate_limit_per_ip=1_000_000,
                    rate_limit_per_account=1_000_000,
                    log_level="ERROR",
                )
            )
        return asyncio.run(logins(settings[0], settings[1], calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_postgres(Path(tmp)) as bench:
        with start_redis(Path(tmp) / "redis") as redis:
            results = run(bench, redis.info.url, args.calls)
    print(f"# {command_line('bench.login')}")
    print(f"# {machine()}; argon2id t=3 m=64MiB p=4; {args.calls} sequential calls each")
    print(f"{'case':<24} {'p50 ms':>8} {'p99 ms':>8}")
    for name, p50, p99 in results:
        print(f"{name:<24} {p50:>8.2f} {p99:>8.2f}")
    (_, on50, on99), (_, off50, off99) = results
    print(f"{'auditing adds':<24} {on50 - off50:>8.2f} {on99 - off99:>8.2f}")


if __name__ == "__main__":
    main()
