"""uvicorn's HTTP/1.1 protocol (httptools) with the limits a public listener needs.

uvicorn bounds neither how long a request's headers may take nor how large they may
be, so sockets sending a few header bytes now and then stay open for ever (500 of them
did). Here, as Envoy's `request_headers_timeout` and `max_request_headers_kb` (both
from `[transcoding]` in gateway/listeners.toml):
- a connection that has not finished a request's headers within `header_timeout`
  seconds of opening (or of the request's first byte, on a kept-alive connection) gets
  408 and is closed;
- request line plus headers over `max_header_bytes` get 431 and the connection closes;
- past `max_connections` open connections on a listener, a new one gets 503 and is
  closed at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway import metrics


class _HeadersTooLarge(Exception):
    """Raised inside a parser callback to stop parsing (uvicorn answers through
    `send_400_response`, which turns it into a 431)."""


def _refuse(transport: asyncio.Transport, status: bytes) -> None:
    if not transport.is_closing():
        transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        transport.close()


class LimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header-read timeout, a header size cap and a
    connection cap; `limited()` makes a subclass with a listener's values."""

    listener = ""
    header_timeout = 10.0
    max_header_bytes = 16 * 1024
    max_connections = 2048

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            metrics.REFUSED_CONNECTIONS.labels(self.listener, "too_many_connections").inc()
            _refuse(transport, b"503 Service Unavailable")
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            metrics.REFUSED_CONNECTIONS.labels(self.listener, "headers_too_large").inc()
            _refuse(self.transport, b"431 Request Header Fields Too Large")
            return
        super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._too_large = True
            raise _HeadersTooLarge

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        metrics.REFUSED_CONNECTIONS.labels(self.listener, "header_timeout").inc()
        _refuse(self.transport, b"408 Request Timeout")


def limited(
    listener: str, header_timeout: float, max_header_bytes: int, max_connections: int
) -> type[LimitedProtocol]:
    """The protocol class of one listener's server."""
    return type(
        "LimitedProtocol",
        (LimitedProtocol,),
        {
            "listener": listener,
            "header_timeout": header_timeout,
            "max_header_bytes": max_header_bytes,
            "max_connections": max_connections,
        },
    )
