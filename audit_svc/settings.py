"""The audit-service's one settings object, read once from AUDIT_* environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

PREFIX = "AUDIT_"


class SettingsError(ValueError):
    """Raised with every problem found, one per line, naming each variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the audit-service. Environment variable = AUDIT_ + upper-case name."""

    database_url: str = "postgresql://postgres@127.0.0.1:5434/audit"
    grpc_listen: str = "127.0.0.1:50052"
    # Chain this replica appends to; empty takes the first free one of chain-1, chain-2...
    chain_id: str = ""
    pool_min_size: int = 2
    pool_max_size: int = 10
    # Most events one group commit writes; more waiting batches go in the next one.
    max_group_events: int = 5000
    # Events accepted but not yet committed; callers wait beyond it (back-pressure).
    max_queue_events: int = 50_000
    max_clock_skew_seconds: float = 300.0
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "json"
    # Signs page tokens. Random per process when empty: tokens then expire on restart.
    page_token_key: str = field(default="", repr=False)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown.append(f"{f.name}={_mask(value) if f.name in _SECRETS else repr(value)}")
        return f"Settings({', '.join(shown)})"

    @property
    def page_token_secret(self) -> bytes:
        return self.page_token_key.encode() if self.page_token_key else _PROCESS_KEY

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
                    problems.append(
                        f"{name}={env[name]!r} is not a valid {type(f.default).__name__}"
                    )
        settings = cls(**values)
        problems += settings._problems()
        if problems:
            raise SettingsError("invalid audit-service settings:\n  " + "\n  ".join(problems))
        return settings

    def _problems(self) -> list[str]:
        out = []
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            out.append(f"{PREFIX}DATABASE_URL must start with postgresql://")
        host, _, port = self.grpc_listen.rpartition(":")
        if not host or not port.isdigit():
            out.append(f"{PREFIX}GRPC_LISTEN must be host:port, got {self.grpc_listen!r}")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            out.append(f"{PREFIX}POOL_MIN_SIZE must be between 1 and {PREFIX}POOL_MAX_SIZE")
        if self.max_group_events < 1 or self.max_queue_events < self.max_group_events:
            out.append(f"{PREFIX}MAX_QUEUE_EVENTS must be >= {PREFIX}MAX_GROUP_EVENTS >= 1")
        if self.log_format not in ("json", "text"):
            out.append(f"{PREFIX}LOG_FORMAT must be json or text")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            out.append(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return out


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _mask(value: str) -> str:
    """'***' for a secret; a URL keeps everything but its password."""
    if not value:
        return "''"
    parts = urlsplit(value)
    if parts.scheme and parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return repr(parts._replace(netloc=netloc).geturl())
    return repr(value) if parts.scheme else "'***'"


_PARSERS: dict[type, Callable[[str], Any]] = {str: str, int: int, float: float, bool: _bool}
_SECRETS = frozenset({"page_token_key", "database_url"})
_PROCESS_KEY = secrets.token_bytes(32)
