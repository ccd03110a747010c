"""The mesh's own services as Stack components, started after the infrastructure:
the audit-service, the user-service and the REST gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.certs import ensure_certs, files_of
from devstack.errors import DevstackError
from devstack.ports import LOOPBACK, ensure_port_free, free_port
from devstack.postgres import PostgresInfo, create_database, create_role, server_role_password
from devstack.process import ProcessSpec
from devstack.rabbitmq import RabbitInfo
from devstack.seaweed import S3Info
from devstack.secrets import dev_password
from devstack.service import ServicePlan
from devstack.settings import PORT_VARIABLES, Settings
from devstack.stack import Component, ComponentContext, restore_as
from devstack.victoria import InfluxInfo

USERS_DATABASE = "users"
# Each service logs in to PostgreSQL as its own role (scram), owner of its database;
# its random development password is kept 0600 in its data folder under .run/.
AUDIT_ROLE = "audit_svc"
USER_ROLE = "user_svc"
DATABASE_PASSWORD_FILE = "database-password"
# The audit-service runs as this role, which may INSERT audit events and never UPDATE
# or DELETE them (audit_svc migration 0009); migrations run as the owner, AUDIT_ROLE.
# One role per PostgreSQL server: its password is kept in the server's folder.
AUDIT_WRITER_ROLE = "audit_writer"


def service_database(pg: PostgresInfo, data_dir: Path, database: str, role: str) -> PostgresInfo:
    """`database` owned by `role` (both made if missing), as `role` logs in to it."""
    password = dev_password(data_dir / DATABASE_PASSWORD_FILE)
    create_role(pg, role, password)
    return create_database(pg, database, owner=role).as_role(role, password)


# The user-service's access-token public key, beside the certificates.
TOKEN_KEY_FILE = "token-public-key.pem"


def _metrics_line(host: str, port: int) -> str:
    return f", metrics http://{host}:{port}/metrics" if port else ""


def _metrics_env(variable: str, port: int) -> dict[str, str]:
    """The service's *_METRICS_LISTEN on loopback, or nothing (off) for port 0."""
    return {variable: f"{LOOPBACK}:{port}"} if port else {}


@dataclass(frozen=True)
class GrpcServiceInfo:
    """Where a gRPC service of the mesh listens, the folder of the mesh's certificates
    (mutual TLS; see devstack.certs), and its /metrics port (0: none)."""

    host: str
    port: int
    certs_dir: str = ""
    metrics_port: int = 0

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        c = self.certs_dir
        return (
            f"{self.url} (gRPC, mutual TLS; grpcurl -cacert {c}/ca.pem "
            f"-cert {c}/operator.pem -key {c}/operator-key.pem {self.url} list)"
        ) + _metrics_line(self.host, self.metrics_port)


def certs_env(prefix: str, certs: Path, identity: str) -> dict[str, str]:
    """`<prefix>_CA_FILE`, `_CERT_FILE`, `_KEY_FILE` of `identity`'s files in `certs`."""
    files = files_of(certs, identity)
    return {
        f"{prefix}_CA_FILE": files.ca_file,
        f"{prefix}_CERT_FILE": files.cert_file,
        f"{prefix}_KEY_FILE": files.key_file,
    }


def _certs_dir(ctx: ComponentContext) -> Path:
    """The stack's certificates (made if missing): `ctx.certs_dir`, or `certs/`
    beside the components' folders."""
    folder = ctx.certs_dir or ctx.data_dir.resolve().parent / "certs"
    ensure_certs(folder)
    return folder


def probe_grpc(info: GrpcServiceInfo) -> None:
    """Return once grpc.health.v1 answers SERVING (over mutual TLS as `devstack`);
    raise otherwise."""
    files = files_of(Path(info.certs_dir), "devstack")
    ca, cert, key = files.read()
    creds = grpc.ssl_channel_credentials(ca, key, cert)
    with grpc.secure_channel(info.url, creds) as channel:
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


def _sink_env(infos: Mapping[str, Any]) -> dict[str, str]:
    """The audit-service's sink settings for the stack's InfluxDB and S3, when present."""
    env: dict[str, str] = {}
    influx, s3 = infos.get("influx"), infos.get("s3")
    if isinstance(influx, InfluxInfo):
        env |= {
            "AUDIT_INFLUX_URL": influx.url,
            "AUDIT_INFLUX_ORG": influx.org,
            "AUDIT_INFLUX_BUCKET": influx.bucket,
            "AUDIT_INFLUX_TOKEN": influx.token,
        }
    if isinstance(s3, S3Info):
        env |= {
            "AUDIT_S3_ENDPOINT": s3.endpoint,
            "AUDIT_S3_ACCESS_KEY": s3.access_key,
            "AUDIT_S3_SECRET_KEY": s3.secret_key,
        }
    if isinstance(mq := infos.get("rabbitmq"), RabbitInfo):
        env["AUDIT_AMQP_URL"] = mq.url  # consumes the ingest queue
    return env


TOOL_ENV = "tool.env"  # the service's settings, for `make verify` and the other tools


def write_tool_env(path: Path, env: Mapping[str, str]) -> None:
    """Keep the audit-service's settings (S3 keys included: mode 0600) so its tools
    (`python -m devstack verify`) check against the same bucket as the service."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{k}={v}\n" for k, v in sorted(env.items()))


def read_tool_env(path: Path) -> dict[str, str]:
    """What `write_tool_env` wrote; empty when the stack was never up."""
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


# The audit-service's write quota off: for benchmarks and tests that write as one
# principal as fast as they can (make up keeps the quota).
NO_QUOTA_ENV = {
    "AUDIT_WRITE_QUOTA_EVENTS_PER_SECOND": "0",
    "AUDIT_WRITE_QUOTA_BYTES_PER_SECOND": "0",
}


def audit_plan(ctx: ComponentContext, metrics_port: int = 0) -> ServicePlan[GrpcServiceInfo]:
    """`python -m audit_svc` on `ctx.port`, over the stack's PostgreSQL (migrated first),
    with its sinks on the stack's InfluxDB and S3 when they are among `ctx.infos`, and
    /metrics on `metrics_port` (0: none)."""
    pg = ctx.infos["postgres"]
    assert isinstance(pg, PostgresInfo)
    certs = _certs_dir(ctx)
    info = GrpcServiceInfo(LOOPBACK, ctx.port, str(certs), metrics_port)
    data_dir = ctx.data_dir.resolve()
    log_path = data_dir / "audit-service.log"
    # The roles are made (and the database handed to its owner) in prepare(), before
    # migrating as the owner; the service itself logs in as the writer.
    password = dev_password(data_dir / DATABASE_PASSWORD_FILE)
    writer_password = server_role_password(pg, AUDIT_WRITER_ROLE)
    owner_dsn = pg.as_role(AUDIT_ROLE, password).dsn
    env = {
        "AUDIT_DATABASE_URL": pg.as_role(AUDIT_WRITER_ROLE, writer_password).dsn,
        "AUDIT_GRPC_LISTEN": info.url,
        **certs_env("AUDIT_TLS", certs, "audit-service"),
        # The user-service writes it when it starts (USER_JWT_PUBLIC_KEY_FILE).
        "AUDIT_TOKEN_PUBLIC_KEY_FILE": str(certs / TOKEN_KEY_FILE),
        # Loopback only (the service refuses it elsewhere): anonymous local callers,
        # so the integration guide's curl lines work as written.
        "AUDIT_DEV_MODE": "true",
        "AUDIT_SIGNING_KEY_FILE": str(data_dir / "checkpoint-signing-key.pem"),
        # Made as a development key on first start (dev mode); erase/hold tools read it.
        "AUDIT_PRIVACY_KEY_FILE": str(data_dir / "privacy-master-key"),
        **_sink_env(ctx.infos),
        **_metrics_env("AUDIT_METRICS_LISTEN", metrics_port),
    }

    def prepare() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        write_tool_env(data_dir / TOOL_ENV, env)
        service_database(pg, data_dir, pg.database, AUDIT_ROLE)
        create_role(pg, AUDIT_WRITER_ROLE, writer_password)
        _migrate("audit_svc", {**env, "AUDIT_DATABASE_URL": owner_dsn})

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


@dataclass(frozen=True)
class GatewayInfo:
    """Where the REST gateway listens: one port per upstream service."""

    host: str
    port: int
    user_port: int
    metrics_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        return (
            f"{self.url} (audit REST, docs at /docs), "
            f"http://{self.host}:{self.user_port} (user REST)"
            + _metrics_line(self.host, self.metrics_port)
        )


def probe_http(url: str) -> None:
    """Return once `url` answers 200; raise DevstackError until then."""
    if httpx.get(url, trust_env=False, timeout=2).status_code != 200:
        raise DevstackError(f"{url} does not answer yet")


def probe_gateway(info: GatewayInfo) -> None:
    """Return once both listeners serve their OpenAPI document."""
    for port in (info.port, info.user_port):
        probe_http(f"http://{info.host}:{port}/openapi.json")


def gateway_plan(
    ctx: ComponentContext, user_port: int, user_upstream: str, metrics_port: int = 0
) -> ServicePlan[Any]:
    """`python -m gateway`: audit REST on `ctx.port`, user REST on `user_port`,
    /metrics on `metrics_port` (0: none)."""
    audit = ctx.infos["audit"]
    info = GatewayInfo(LOOPBACK, ctx.port, user_port, metrics_port)
    data_dir = ctx.data_dir.resolve()
    spec = ProcessSpec(
        name="gateway",
        argv=(sys.executable, "-m", "gateway"),
        log_path=data_dir / "gateway.log",
        ready=lambda: probe_gateway(info),
        cwd=data_dir,
        env={
            "GATEWAY_PORTS": f"audit={ctx.port},user={user_port}",
            "GATEWAY_UPSTREAMS": f"audit={audit.url},user={user_upstream}",
            **certs_env("GATEWAY_TLS", _certs_dir(ctx), "gateway"),
            **_metrics_env("GATEWAY_METRICS_LISTEN", metrics_port),
        },
        stop_timeout=20.0,
    )
    return ServicePlan(
        spec=spec, info=info, prepare=lambda: data_dir.mkdir(parents=True, exist_ok=True)
    )


def user_plan(ctx: ComponentContext, metrics_port: int = 0) -> ServicePlan[GrpcServiceInfo]:
    """`python -m user_svc` on `ctx.port`: its own `users` database (created and
    migrated first), the stack's Redis, and the audit-service as its audit target;
    /metrics on `metrics_port` (0: none); the audit client's disk spool in its data
    folder. Its signing and TOTP keys are development keys kept in that database."""
    pg = ctx.infos["postgres"]
    assert isinstance(pg, PostgresInfo)
    certs = _certs_dir(ctx)
    info = GrpcServiceInfo(LOOPBACK, ctx.port, str(certs), metrics_port)
    data_dir = ctx.data_dir.resolve()
    password = dev_password(data_dir / DATABASE_PASSWORD_FILE)
    env = {
        "USER_DATABASE_URL": pg.for_database(USERS_DATABASE).as_role(USER_ROLE, password).dsn,
        "USER_GRPC_LISTEN": info.url,
        **certs_env("USER_TLS", certs, "user-service"),
        "USER_JWT_PUBLIC_KEY_FILE": str(certs / TOKEN_KEY_FILE),
        "USER_REDIS_URL": ctx.infos["redis"].url,
        # Development secrets (keys kept in the database) are a warning, not refused.
        "USER_DEV_MODE": "true",
        "USER_AUDIT_TARGET": ctx.infos["audit"].url,
        **_metrics_env("USER_METRICS_LISTEN", metrics_port),
        # The audit client's fallback after Redis: what neither Redis nor the
        # audit-service can take waits on disk (fsync'ed), not only in memory.
        "AUDIT_CLIENT_DISK_SPOOL_DIR": str(data_dir / "audit-disk-spool"),
        # Its broker user, for AUDIT_CLIENT_TRANSPORT=amqp (the default stays grpc).
        **_publisher_env(ctx.infos.get("rabbitmq")),
    }

    def prepare() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        service_database(pg, data_dir, USERS_DATABASE, USER_ROLE)
        _migrate("user_svc", env)

    spec = ProcessSpec(
        name="user-service",
        argv=(sys.executable, "-m", "user_svc"),
        log_path=data_dir / "user-service.log",
        ready=lambda: probe_grpc(info),
        cwd=data_dir,
        env=env,
        stop_timeout=20.0,
    )
    return ServicePlan(spec=spec, info=info, prepare=prepare)


def _publisher_env(mq: Any) -> dict[str, str]:
    """The user-service's RabbitMQ URL (its own broker user), when the stack has one."""
    return (
        {"AUDIT_CLIENT_AMQP_URL": mq.url_for("user-service")} if isinstance(mq, RabbitInfo) else {}
    )


def _metrics_port_free(component: str, port: int) -> None:
    variable = PORT_VARIABLES[f"{component}_metrics"][0]
    ensure_port_free(port, f"{component} metrics", variable)


def mesh_components(settings: Settings | None = None) -> list[Component]:
    """The mesh's services; on the fixed ports of `settings`, or free ports if None."""
    user_rest = settings.port_of("user_rest") if settings else free_port()
    user_grpc = settings.port_of("user") if settings else free_port()
    user_upstream = f"{LOOPBACK}:{user_grpc}"
    metrics = {
        name: settings.port_of(f"{name}_metrics") if settings else free_port()
        for name in ("audit", "user", "gateway")
    }

    def plan_audit(ctx: ComponentContext) -> ServicePlan[Any]:
        _metrics_port_free("audit", metrics["audit"])
        return audit_plan(ctx, metrics["audit"])

    def plan_user(ctx: ComponentContext) -> ServicePlan[Any]:
        _metrics_port_free("user", metrics["user"])
        return user_plan(ctx, metrics["user"])

    def plan_gateway(ctx: ComponentContext) -> ServicePlan[Any]:
        ensure_port_free(user_rest, "user-service REST", PORT_VARIABLES["user_rest"][0])
        _metrics_port_free("gateway", metrics["gateway"])
        return gateway_plan(ctx, user_rest, user_upstream, metrics["gateway"])

    return [
        Component(
            name="audit",
            label="audit-service",
            plan=plan_audit,
            probe=probe_grpc,
            restore=restore_as(GrpcServiceInfo),
            port=settings.port_of("audit") if settings else None,
            port_env=PORT_VARIABLES["audit"][0],
            after=("postgres", "influx", "s3", "rabbitmq"),
        ),
        Component(
            name="user",
            label="user-service",
            plan=plan_user,
            probe=probe_grpc,
            restore=restore_as(GrpcServiceInfo),
            port=user_grpc,
            port_env=PORT_VARIABLES["user"][0],
            after=("postgres", "redis", "rabbitmq", "audit"),
        ),
        Component(
            name="gateway",
            label="REST gateway",
            plan=plan_gateway,
            probe=probe_gateway,
            restore=restore_as(GatewayInfo),
            port=settings.port_of("gateway") if settings else None,
            port_env=PORT_VARIABLES["gateway"][0],
            after=("audit", "user"),
        ),
    ]
