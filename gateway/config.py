"""The listener and transcoding config shared by the gateway and envoy/envoy.yaml.

One TOML file (`gateway/listeners.toml`) says which listeners exist, which gRPC
services each one transcodes, where the upstream is, and how JSON is printed. The
gateway serves it; `scripts/gen_envoy.py` renders the same data as Envoy config, so
the two cannot drift.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).resolve().parent / "listeners.toml"
STREAM_FORMATS = ("array", "ndjson", "sse")


class ConfigError(ValueError):
    """The config file is invalid; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Transcoding:
    """How requests and responses are transcoded (Envoy's print options and limits)."""

    preserve_proto_field_names: bool = True
    always_print_primitive_fields: bool = False
    always_print_enums_as_ints: bool = False
    stream_format: str = "array"
    max_request_body_bytes: int = 1 << 20
    default_timeout_seconds: float = 30.0
    # A request's line and headers must arrive within this (Envoy's
    # request_headers_timeout) and fit in this many KiB (max_request_headers_kb).
    header_timeout_seconds: float = 10.0
    max_request_headers_kb: int = 16


@dataclass(frozen=True, slots=True)
class EnvoyOptions:
    """What only envoy.yaml needs: paths inside the Envoy container, its admin port."""

    descriptor_path: str = "/etc/envoy/auditmesh.binpb"
    openapi_dir: str = "/etc/envoy/openapi"
    listen_address: str = "0.0.0.0"
    admin_port: int = 9901
    connect_timeout_seconds: float = 1.0
    # Envoy dials the services with mutual TLS as the `gateway` identity: ca.pem,
    # gateway.pem and gateway-key.pem in this folder (compose's secrets of Envoy).
    tls_dir: str = "/run/secrets"


@dataclass(frozen=True, slots=True)
class Listener:
    """One REST port in front of one gRPC upstream."""

    name: str
    port: int
    upstream: str
    services: tuple[str, ...]
    title: str = ""
    envoy_upstream: str = ""

    @property
    def display_name(self) -> str:
        return self.title or self.name

    @property
    def envoy_target(self) -> str:
        """host:port Envoy connects to."""
        return self.envoy_upstream or self.upstream


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """Every listener and the shared transcoding options."""

    listeners: tuple[Listener, ...]
    transcoding: Transcoding = field(default_factory=Transcoding)
    envoy: EnvoyOptions = field(default_factory=EnvoyOptions)

    def listener(self, name: str) -> Listener:
        for listener in self.listeners:
            if listener.name == name:
                return listener
        raise KeyError(name)

    def with_overrides(
        self, ports: Mapping[str, int] | None = None, upstreams: Mapping[str, str] | None = None
    ) -> MeshConfig:
        """The same config with some listeners' ports or upstream addresses replaced."""
        ports, upstreams = ports or {}, upstreams or {}
        unknown = sorted((set(ports) | set(upstreams)) - {x.name for x in self.listeners})
        if unknown:
            raise ConfigError(f"no listener named {', '.join(unknown)}")
        return dataclasses.replace(
            self,
            listeners=tuple(
                dataclasses.replace(
                    x,
                    port=ports.get(x.name, x.port),
                    upstream=upstreams.get(x.name, x.upstream),
                )
                for x in self.listeners
            ),
        )


def load(path: Path = DEFAULT_PATH) -> MeshConfig:
    """Read and validate a config file; `ConfigError` lists every problem."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read gateway config {path}: {exc}") from exc
    return parse(raw, source=str(path))


def parse(raw: Mapping[str, Any], source: str = "<config>") -> MeshConfig:
    """Build a `MeshConfig` from the TOML document's data."""
    problems: list[str] = []
    known = {"transcoding", "envoy", "listeners"}
    problems += [f"unknown section [{k}]" for k in raw if k not in known]
    transcoding = _section(Transcoding, raw.get("transcoding", {}), "transcoding", problems)
    envoy = _section(EnvoyOptions, raw.get("envoy", {}), "envoy", problems)
    listeners: list[Listener] = []
    for i, item in enumerate(raw.get("listeners", [])):
        listener = _section(Listener, item, f"listeners[{i}]", problems)
        if listener is not None:
            listeners.append(listener)
    if not listeners:
        problems.append("at least one [[listeners]] entry is needed")
    if transcoding is not None:
        problems += _transcoding_problems(transcoding)
    problems += _listener_problems(listeners)
    if problems or transcoding is None or envoy is None:
        raise ConfigError(f"invalid gateway config {source}:\n  " + "\n  ".join(problems))
    return MeshConfig(tuple(listeners), transcoding, envoy)


def _section(cls: type[Any], values: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(values, Mapping):
        problems.append(f"{where} must be a table")
        return None
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            problems.append(f"{where}: unknown key {key!r}")
            continue
        wanted = names[key].type
        if wanted in ("tuple[str, ...]",):
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                problems.append(f"{where}.{key} must be a list of strings")
                continue
            value = tuple(value)
        elif not _fits(value, str(wanted)):
            problems.append(f"{where}.{key} must be {wanted}, got {value!r}")
            continue
        kwargs[key] = float(value) if wanted == "float" else value
    required = [
        n
        for n, f in names.items()
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and n not in kwargs
    ]
    if required:
        problems.append(f"{where}: missing {', '.join(required)}")
        return None
    return cls(**kwargs)


def _fits(value: Any, wanted: str) -> bool:
    if wanted == "bool":
        return isinstance(value, bool)
    if wanted == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if wanted == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _transcoding_problems(t: Transcoding) -> list[str]:
    out = []
    if t.stream_format not in STREAM_FORMATS:
        out.append(f"transcoding.stream_format must be one of {', '.join(STREAM_FORMATS)}")
    if t.max_request_body_bytes < 1:
        out.append("transcoding.max_request_body_bytes must be positive")
    if t.default_timeout_seconds <= 0:
        out.append("transcoding.default_timeout_seconds must be positive")
    if t.header_timeout_seconds <= 0:
        out.append("transcoding.header_timeout_seconds must be positive")
    if not 1 <= t.max_request_headers_kb <= 8192:
        out.append("transcoding.max_request_headers_kb must be between 1 and 8192 (Envoy's range)")
    return out


def _listener_problems(listeners: list[Listener]) -> list[str]:
    out = []
    names = [x.name for x in listeners]
    out += [f"listener name {n!r} is used twice" for n in sorted(set(names)) if names.count(n) > 1]
    ports = [x.port for x in listeners if x.port]
    out += [f"port {p} is used twice" for p in sorted(set(ports)) if ports.count(p) > 1]
    for x in listeners:
        if not x.name.isidentifier():
            out.append(f"listener name {x.name!r} must be an identifier")
        if not 0 <= x.port < 65536:
            out.append(f"listener {x.name}: port {x.port} is out of range")
        for target in (x.upstream, x.envoy_target):
            host, _, port = target.rpartition(":")
            if not host or not port.isdigit():
                out.append(f"listener {x.name}: upstream {target!r} must be host:port")
        if not x.services:
            out.append(f"listener {x.name}: services must name at least one gRPC service")
    return out
