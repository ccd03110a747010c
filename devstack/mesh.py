"""The mesh's own services as Stack components, started after the infrastructure:
the audit-service now; the user-service and the gateway join as they land."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.errors import DevstackError
from devstack.ports import LOOPBACK
from devstack.postgres import PostgresInfo
from devstack.process import ProcessSpec
from devstack.service import ServicePlan
from devstack.settings import PORT_VARIABLES, Settings
from devstack.stack import Component, ComponentContext


@dataclass(frozen=True)
class GrpcServiceInfo:
    """Where a gRPC service of the mesh listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        return f"{self.url} (gRPC; grpcurl -plaintext {self.url} list)"


def probe_grpc(info: GrpcServiceInfo) -> None:
    """Return once grpc.health.v1 answers SERVING; raise otherwise."""
    with grpc.insecure_channel(info.url) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise DevstackError(f"{info.url} health is {reply.status}")


def _migrate(module: str, env: Mapping[str, str]) -> None:
    """Apply a service's schema migrations before it starts."""
    done = subprocess.run(
        [sys.executable, "-m", module, "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DevstackError(f"{module} migrate failed:\n{done.stdout}{done.stderr}")


def audit_plan(ctx: ComponentContext) -> ServicePlan[GrpcServiceInfo]:
    """`python -m audit_svc` on `ctx.port`, over the stack's PostgreSQL, migrated first."""
    pg = ctx.infos["postgres"]
    assert isinstance(pg, PostgresInfo)
    info = GrpcServiceInfo(LOOPBACK, ctx.port)
    data_dir = ctx.data_dir.resolve()
    log_path = data_dir / "audit-service.log"
    env = {"AUDIT_DATABASE_URL": pg.dsn, "AUDIT_GRPC_LISTEN": info.url}

    def prepare() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        _migrate("audit_svc", env)

    spec = ProcessSpec(
        name="audit-service",
        argv=(sys.executable, "-m", "audit_svc"),
        log_path=log_path,
        ready=lambda: probe_grpc(info),
        cwd=data_dir,
        env=env,
        stop_timeout=20.0,
    )
    return ServicePlan(spec=spec, info=info, prepare=prepare)


def _restore(fields: Mapping[str, Any]) -> GrpcServiceInfo:
    return GrpcServiceInfo(**fields)


def mesh_components(settings: Settings | None = None) -> list[Component]:
    """The mesh's services; on the fixed ports of `settings`, or free ports if None."""
    return [
        Component(
            name="audit",
            label="audit-service",
            plan=audit_plan,
            probe=probe_grpc,
            restore=_restore,
            port=settings.port_of("audit") if settings else None,
            port_env=PORT_VARIABLES["audit"][0],
            after=("postgres",),
        )
    ]
