"""The one place devstack reads its environment: MESH_* variables, validated once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack.errors import SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]

PORT_VARIABLES: Mapping[str, tuple[str, int]] = {
    "postgres": ("MESH_POSTGRES_PORT", 5434),
    "redis": ("MESH_REDIS_PORT", 6379),
    "influx": ("MESH_INFLUX_PORT", 8086),
    "s3": ("MESH_S3_PORT", 9000),
    "rabbitmq": ("MESH_RABBITMQ_PORT", 5672),
    "audit": ("MESH_AUDIT_GRPC_PORT", 50052),
    "user": ("MESH_USER_GRPC_PORT", 50051),
    "gateway": ("MESH_AUDIT_REST_PORT", 8002),
    "user_rest": ("MESH_USER_REST_PORT", 8001),
    "user_metrics": ("MESH_USER_METRICS_PORT", 9461),
    "audit_metrics": ("MESH_AUDIT_METRICS_PORT", 9462),
    "gateway_metrics": ("MESH_GATEWAY_METRICS_PORT", 9463),
    "prometheus": ("MESH_PROMETHEUS_PORT", 9090),
}
"""Component name -> (environment variable, default port), as in the integration guide."""

DEFAULT_S3_ACCESS_KEY = "auditmesh"
DEFAULT_S3_SECRET_KEY = "auditmesh-dev-secret"
DEFAULT_PG_BINDIR = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Settings:
    """Where `python -m devstack up` puts each server and its data."""

    ports: Mapping[str, int] = field(
        default_factory=lambda: {name: port for name, (_, port) in PORT_VARIABLES.items()}
    )
    run_dir: Path = REPO_ROOT / ".run"
    pg_bindir: Path = DEFAULT_PG_BINDIR
    s3_access_key: str = DEFAULT_S3_ACCESS_KEY
    s3_secret_key: str = field(default=DEFAULT_S3_SECRET_KEY, repr=False)

    def port_of(self, component: str) -> int:
        """The configured fixed port of a component."""
        return self.ports[component]

    @property
    def state_file(self) -> Path:
        """The file `up` writes and `down`/`status` read."""
        return self.run_dir / "stack.json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read MESH_* variables; raise SettingsError listing every invalid one."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        ports: dict[str, int] = {}
        for component, (variable, default) in PORT_VARIABLES.items():
            count = len(problems)
            ports[component] = _port(env, variable, default, problems)
            if len(problems) > count:
                del ports[component]  # invalid: already reported, not compared below

        seen: dict[int, str] = {}
        for component, port in ports.items():
            variable = PORT_VARIABLES[component][0]
            if port in seen:
                problems.append(f"{variable}={port} is also used by {seen[port]}")
            else:
                seen[port] = variable

        run_dir = Path(env.get("MESH_RUN_DIR", "") or REPO_ROOT / ".run")
        if not run_dir.is_absolute():
            problems.append(f"MESH_RUN_DIR={str(run_dir)!r} must be an absolute path")
        pg_bindir = Path(env.get("MESH_PG_BINDIR", "") or DEFAULT_PG_BINDIR)
        access_key = env.get("MESH_S3_ACCESS_KEY", DEFAULT_S3_ACCESS_KEY)
        secret_key = env.get("MESH_S3_SECRET_KEY", DEFAULT_S3_SECRET_KEY)
        if len(access_key) < 3:
            problems.append("MESH_S3_ACCESS_KEY must be at least 3 characters")
        if len(secret_key) < 8:
            problems.append("MESH_S3_SECRET_KEY must be at least 8 characters")

        if problems:
            raise SettingsError(problems)
        return cls(
            ports=ports,  # all present: no problems were found
            run_dir=run_dir,
            pg_bindir=pg_bindir,
            s3_access_key=access_key,
            s3_secret_key=secret_key,
        )


def _port(env: Mapping[str, str], variable: str, default: int, problems: list[str]) -> int:
    raw = env.get(variable, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        problems.append(f"{variable}={raw!r} is not an integer port")
        return default
    if not 1 <= port <= 65535:
        problems.append(f"{variable}={port} is outside 1-65535")
    return port
