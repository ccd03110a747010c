"""Shared pieces of the benchmarks: a private PostgreSQL, a migrated database, the
audit-service as a child process, event generation, and result printing."""

from __future__ import annotations

import dataclasses
import os
import platform
import shlex
import statistics
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from audit.v2 import event_pb2
from audit_svc.migrate import upgrade
from devstack import PostgresInfo, create_database, start_postgres
from devstack.mesh import GrpcServiceInfo, audit_plan
from devstack.ports import free_port
from devstack.service import RunningService, start_service
from devstack.stack import ComponentContext

EVENT_TYPES = [
    ("auth.login_success", "login_success", "success"),
    ("auth.login_failed", "login_failed", "failure"),
    ("auth.logout", "logout", "success"),
    ("auth.token_refresh", "token_refresh", "success"),
    ("user.user_updated", "user_updated", "success"),
    ("mfa.mfa_verified", "mfa_verified", "success"),
    ("permission.role_assigned", "role_assigned", "success"),
    ("security.rate_limit_exceeded", "rate_limit_exceeded", "denied"),
]


def command_line(module: str) -> str:
    """The command that reproduces this run."""
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", module, *sys.argv[1:]])


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"


def wire_events(count: int, users: int = 1000) -> list[event_pb2.AuditEvent]:
    """Guide-shaped events over `users` accounts and the common types."""
    out = []
    for i in range(count):
        event_type, action, result = EVENT_TYPES[i % len(EVENT_TYPES)]
        event = event_pb2.AuditEvent(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            user_id=f"user{i % users}",
            username=f"name{i % users}",
            ip_address=f"10.0.{i % 250}.{i % 200}",
            user_agent="Mozilla/5.0 (bench)",
            service="user-service",
            action=action,
            result=result,
            compliance_tags=["SOX", "GDPR"] if i % 3 == 0 else ["GDPR"],
            data_classification="internal",
        )
        event.details.update({"mfa_used": i % 2 == 0, "session_id": f"sess_{i}"})
        out.append(event)
    return out


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
        self, dsn: str, env: Mapping[str, str] | None = None
    ) -> Iterator[RunningService[GrpcServiceInfo]]:
        """The audit-service over `dsn`; `env` adds AUDIT_* settings (sinks)."""
        name = dsn.rsplit("/", 1)[1]
        context = ComponentContext(
            self.folder / f"audit-{name}", free_port(), {"postgres": self.pg.for_database(name)}
        )
        plan = audit_plan(context)
        if env:
            spec = dataclasses.replace(plan.spec, env={**plan.spec.env, **env})
            plan = dataclasses.replace(plan, spec=spec)
        with start_service(plan) as service:
            yield service


@contextmanager
def bench_postgres(folder: Path) -> Iterator[Bench]:
    # fsync on: committed means durable, as in production.
    with start_postgres(folder / "pg", fsync=True) as server:
        yield Bench(server.info, folder)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000
