"""JSON-lines logging; each record carries the call context kept in contextvars:
request id, gRPC method and peer (set by `meshkit.rpc.ErrorInterceptor`), and any
variables a service adds (the gateway's listener)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
method: contextvars.ContextVar[str] = contextvars.ContextVar("method", default="")
peer: contextvars.ContextVar[str] = contextvars.ContextVar("peer", default="")
CALL_CONTEXT = (request_id, method, peer)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the non-empty context variables as extra keys."""

    def __init__(self, context: Sequence[contextvars.ContextVar[str]] = CALL_CONTEXT) -> None:
        super().__init__()
        self._context = tuple(context)

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for var in self._context:
            if value := var.get():
                doc[var.name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(
    level: str, fmt: str, context: Sequence[contextvars.ContextVar[str]] = CALL_CONTEXT
) -> None:
    """Send every record to stderr as JSON lines (`fmt` "json") or plain text ("text")."""
    handler = logging.StreamHandler(sys.stderr)
    text = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonFormatter(context) if fmt == "json" else text)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
