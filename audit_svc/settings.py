"""The audit-service's one settings object, read once from AUDIT_* environment variables."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from meshkit import SettingsError, log_problems, mask_url, read_env

PREFIX = "AUDIT_"

__all__ = ["PREFIX", "Settings", "SettingsError"]


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
            if f.name == "database_url":
                value = mask_url(value)
            elif f.name == "page_token_key" and value:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def page_token_secret(self) -> bytes:
        return self.page_token_key.encode() if self.page_token_key else _PROCESS_KEY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate; raise `SettingsError` listing every bad variable."""
        return read_env(cls, PREFIX, "audit-service", environ, overrides, cls._problems)

    def _problems(self) -> list[str]:
        out = log_problems(PREFIX, self.log_level, self.log_format)
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            out.append(f"{PREFIX}DATABASE_URL must start with postgresql://")
        host, _, port = self.grpc_listen.rpartition(":")
        if not host or not port.isdigit():
            out.append(f"{PREFIX}GRPC_LISTEN must be host:port, got {self.grpc_listen!r}")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            out.append(f"{PREFIX}POOL_MIN_SIZE must be between 1 and {PREFIX}POOL_MAX_SIZE")
        if self.max_group_events < 1 or self.max_queue_events < self.max_group_events:
            out.append(f"{PREFIX}MAX_QUEUE_EVENTS must be >= {PREFIX}MAX_GROUP_EVENTS >= 1")
        return out


_PROCESS_KEY = secrets.token_bytes(32)
