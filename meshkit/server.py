"""What every gRPC service of the mesh does the same way: a server with health and
reflection that refuses a taken port, and running until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)
T = TypeVar("T")


def new_server(
    interceptors: Sequence[grpc.aio.ServerInterceptor],
    service_names: Sequence[str],
    health_servicer: health.aio.HealthServicer,
    listen: str,
    listen_variable: str,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A server bound to `listen`, with grpc.health.v1 and reflection of
    `service_names`; add the service's servicers, then start it. It serves TLS with
    `credentials` (meshkit.tls.server_credentials), plaintext when None. A taken port
    is an OSError naming `listen_variable`."""
    # so_reuseport off: a second process on a taken port must fail, not share it.
    server = grpc.aio.server(interceptors=list(interceptors), options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port: int = (
            server.add_insecure_port(listen)
            if credentials is None
            else server.add_secure_port(listen, credentials)
        )
    except RuntimeError as exc:
        raise OSError(
            f"cannot listen on {listen}: the port is taken or the address is not local; "
            f"set {listen_variable} to another host:port"
        ) from exc
    return server, port


async def serve_until_signal(app: AbstractAsyncContextManager[Any]) -> None:
    """Enter `app` (which serves while entered) and leave it on SIGTERM or SIGINT,
    so its graceful shutdown runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with app:
        await stop.wait()
        log.info("signal received; shutting down")


class ServiceApp:
    """The lifecycle every service's app shares: `async with App(settings) as app:`
    runs `_start`, which registers what it opens on `self._stack` and starts its
    background workers with `start_task`; if `_start` fails, the workers are cancelled
    and what it opened is closed again; leaving the block runs `_stop` (graceful
    shutdown: tell the workers to end, then `self._stack.aclose()`, which waits for
    them and closes the rest in reverse)."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._tasks: asyncio.TaskGroup | None = None
        self._workers: list[asyncio.Task[Any]] = []

    async def start_task(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run `coro` in the app's one TaskGroup, entered through the exit stack on
        first use: it is left, waiting for every worker, before anything opened
        earlier is closed; a worker that fails cancels the app's task."""
        if self._tasks is None:
            self._tasks = await self._stack.enter_async_context(asyncio.TaskGroup())
        task = self._tasks.create_task(coro, name=name)
        self._workers.append(task)
        return task

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            for task in self._workers:
                task.cancel()
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()
