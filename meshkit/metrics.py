"""Prometheus metrics every service shares: one `/metrics` endpoint per process, and
gRPC server metrics per method and status code.

Metrics live in prometheus-client's default registry, one per process. A service
opens the endpoint with `MetricsEndpoint(listen)` when its `*_METRICS_LISTEN`
setting is not empty; the endpoint serves from its own thread, so a scrape never
waits on the event loop. Values that already exist in a service's state (queue
depths, the client's counters) are read at scrape time by collectors instead of
being counted again on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server

from meshkit.rpc import Streaming, Unary, rewrap

log = logging.getLogger(__name__)

# Latency buckets in seconds, from a cached read to a slow statistics query.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRPC_HANDLED = Counter(
    "auditmesh_grpc_server_handled_total",
    "gRPC calls finished by the server, by method and status code.",
    ["service", "method", "code"],
)
GRPC_SECONDS = Histogram(
    "auditmesh_grpc_server_handling_seconds",
    "Time from a gRPC call's start to its end (streams: the stream's life).",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)


def listen_problems(variable: str, listen: str) -> list[str]:
    """The problem of a `host:port` metrics setting, if any ('' = off is fine)."""
    if not listen:
        return []
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        return [f"{variable} must be host:port (or empty: no metrics endpoint), got {listen!r}"]
    return []


class MetricsEndpoint:
    """`GET /metrics` of this process on `listen` (host:port; port 0 = a free one).
    A taken port is an OSError naming `variable`. `close()` stops it."""

    def __init__(self, listen: str, variable: str) -> None:
        host, _, port = listen.rpartition(":")
        try:
            server, thread = start_http_server(int(port), addr=host, registry=REGISTRY)
        except OSError as exc:
            raise OSError(
                f"cannot serve metrics on {listen} ({exc.strerror}); set {variable} "
                "to another host:port, or to an empty value to turn metrics off"
            ) from exc
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.host = host
        self.port: int = server.server_port
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _names(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def _code(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The call's final status code: the one set on the context (an abort sets it),
    else OK for a normal end, CANCELLED for a cancelled call, UNKNOWN for an error."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if error is None:
        return "OK"
    return "CANCELLED" if isinstance(error, asyncio.CancelledError) else "UNKNOWN"


class _ByCode(dict[str, Any]):
    """A method's counter per status code, each made when first needed."""

    def __init__(self, service: str, method: str) -> None:
        super().__init__()
        self._labels = (service, method)

    def __missing__(self, code: str) -> Any:
        child = self[code] = GRPC_HANDLED.labels(*self._labels, code)
        return child


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts every call by method and final status code, and times it. Put it
    before the error interceptor, so it sees the status that interceptor sets."""

    def __init__(self) -> None:
        self._by_method: dict[str, tuple[dict[str, Any], Any]] = {}

    def _children(self, full_method: str) -> tuple[dict[str, Any], Any]:
        """The labelled counters (by code) and histogram of a method, made once."""
        found = self._by_method.get(full_method)
        if found is None:
            service, method = _names(full_method)
            handled = _ByCode(service, method)
            found = self._by_method[full_method] = (handled, GRPC_SECONDS.labels(service, method))
        return found

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        handled, seconds = self._children(details.method)

        def done(
            context: grpc.aio.ServicerContext, began: float, error: BaseException | None
        ) -> None:
            seconds.observe(time.perf_counter() - began)
            handled[_code(context, error)].inc()

        def unary(inner: Unary) -> Unary:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                began, error = time.perf_counter(), None
                try:
                    return await inner(request, context)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    done(context, began, error)

            return call

        def streaming(inner: Streaming) -> Streaming:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                began, error = time.perf_counter(), None
                try:
                    async for response in inner(request, context):
                        yield response
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    done(context, began, error)

            return call

        return rewrap(handler, unary, streaming)
