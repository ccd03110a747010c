"""The request context every log record of the gateway carries."""

from __future__ import annotations

import contextvars

from meshkit.logs import configure_logging, request_id

listener: contextvars.ContextVar[str] = contextvars.ContextVar("listener", default="")

__all__ = ["configure", "listener", "request_id"]


def configure(level: str, fmt: str) -> None:
    """JSON lines (or text) on stderr, with request id and listener."""
    configure_logging(level, fmt, (request_id, listener))
