"""The gateway's one settings object, read once from GATEWAY_* environment variables.

What both transcoders share (listeners, services, print options, limits) lives in
the config file (`gateway.config`); these are the knobs of this process only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import DEFAULT_PATH
from meshkit import SettingsError, log_problems, read_env
from meshkit.metrics import listen_problems
from meshkit.tls import PLAINTEXT, TlsFiles, tls_problems

PREFIX = "GATEWAY_"

__all__ = ["PREFIX", "Settings", "SettingsError", "default_descriptor_set"]


def default_descriptor_set() -> Path:
    """gen/auditmesh.binpb of this checkout (gen/ is an import root of the project)."""
    import audit

    return Path(next(iter(audit.__path__))).resolve().parent / "auditmesh.binpb"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the gateway process. Environment variable = GATEWAY_ + upper-case name."""

    config_path: Path = DEFAULT_PATH
    # Empty: gen/auditmesh.binpb of this checkout.
    descriptor_set: str = ""
    host: str = "127.0.0.1"
    # Per-listener overrides of the config file, as `name=value,name=value`.
    ports: str = ""
    upstreams: str = ""
    # Request headers sent upstream as gRPC metadata, besides x-request-id,
    # x-forwarded-for and the caller's user agent (always sent).
    forward_headers: str = "authorization,traceparent,tracestate"
    # gRPC channels per upstream; calls are spread over them.
    channels_per_upstream: int = 2
    # Mutual TLS to the upstreams (meshkit.tls) with the gateway's own certificate;
    # `plaintext` only when set explicitly (a loud warning at start-up).
    tls: str = "required"
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    shutdown_grace_seconds: float = 10.0
    # Open connections per listener; past it a new one gets 503 and is closed.
    max_connections: int = 2048
    # Prometheus /metrics on host:port (port 0: a free one); empty = no endpoint.
    metrics_listen: str = ""
    log_level: str = "INFO"
    log_format: str = "json"

    @property
    def tls_files(self) -> TlsFiles | None:
        """The files the upstream channels dial with; None for plaintext."""
        if self.tls == PLAINTEXT:
            return None
        return TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)

    @property
    def descriptor_set_path(self) -> Path:
        return Path(self.descriptor_set) if self.descriptor_set else default_descriptor_set()

    @property
    def port_overrides(self) -> dict[str, int]:
        return {k: int(v) for k, v in _pairs(self.ports).items()}

    @property
    def upstream_overrides(self) -> dict[str, str]:
        return _pairs(self.upstreams)

    @property
    def forwarded_headers(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.forward_headers.split(",") if h.strip())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate; raise `SettingsError` listing every bad variable."""
        return read_env(cls, PREFIX, "gateway", environ, overrides, cls._problems)

    def _problems(self) -> list[str]:
        out = []
        try:
            ports = self.port_overrides
            out += [
                f"{PREFIX}PORTS: port {p} of {n} is out of range"
                for n, p in ports.items()
                if not 0 <= p < 65536
            ]
        except ValueError:
            out.append(f"{PREFIX}PORTS must be name=port,name=port; got {self.ports!r}")
        try:
            for name, target in self.upstream_overrides.items():
                host, _, port = target.rpartition(":")
                if not host or not port.isdigit():
                    out.append(f"{PREFIX}UPSTREAMS: {name}={target!r} is not host:port")
        except ValueError:
            out.append(f"{PREFIX}UPSTREAMS must be name=host:port,...; got {self.upstreams!r}")
        if self.channels_per_upstream < 1:
            out.append(f"{PREFIX}CHANNELS_PER_UPSTREAM must be at least 1")
        if self.max_connections < 1:
            out.append(f"{PREFIX}MAX_CONNECTIONS must be at least 1")
        if self.shutdown_grace_seconds < 0:
            out.append(f"{PREFIX}SHUTDOWN_GRACE_SECONDS must not be negative")
        out += log_problems(PREFIX, self.log_level, self.log_format)
        files = TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        out += tls_problems(PREFIX, self.tls, files)
        out += listen_problems(f"{PREFIX}METRICS_LISTEN", self.metrics_listen)
        return out


def _pairs(text: str) -> dict[str, str]:
    """`a=1,b=2` as a dict; ValueError when an item has no `=`."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(item)
        out[name.strip()] = value.strip()
    return out
