"""The gateway's one settings object, read once from GATEWAY_* environment variables.

What both transcoders share (listeners, services, print options, limits) lives in
the config file (`gateway.config`); these are the knobs of this process only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gateway.config import DEFAULT_PATH

PREFIX = "GATEWAY_"


def default_descriptor_set() -> Path:
    """gen/auditmesh.binpb of this checkout (gen/ is an import root of the project)."""
    import audit

    return Path(next(iter(audit.__path__))).resolve().parent / "auditmesh.binpb"


class SettingsError(ValueError):
    """Raised with every problem found, one per line, naming each variable."""


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
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "json"

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
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            if f.name in overrides:
                values[f.name] = overrides[f.name]
            elif name in env:
                parse: Callable[[str], Any] = _PARSERS[type(f.default)]
                try:
                    values[f.name] = parse(env[name])
                except ValueError:
                    kind = type(f.default).__name__
                    problems.append(f"{name}={env[name]!r} is not a valid {kind}")
        settings = cls(**values)
        problems += settings._problems()
        if problems:
            raise SettingsError("invalid gateway settings:\n  " + "\n  ".join(problems))
        return settings

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
        if self.shutdown_grace_seconds < 0:
            out.append(f"{PREFIX}SHUTDOWN_GRACE_SECONDS must not be negative")
        if self.log_format not in ("json", "text"):
            out.append(f"{PREFIX}LOG_FORMAT must be json or text")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            out.append(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
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


_PARSERS: dict[type, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: float,
    type(DEFAULT_PATH): Path,
}
