"""Wiring and lifecycle: one process, one HTTP server per listener, pooled upstreams.

`async with Gateway(settings) as gateway:` binds every listener's port (all taken
ports reported together), serves until the block ends, then shuts down: live streams
end first, servers stop accepting and drain, upstream channels close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from dataclasses import dataclass
from types import TracebackType

import uvicorn
from starlette.types import Receive, Scope, Send

from gateway import config, logs, openapi, protocol, routes
from gateway.descriptors import Descriptors
from gateway.docs import Docs
from gateway.jsonout import Printer
from gateway.settings import Settings
from gateway.streaming import Closing
from gateway.transcoder import Transcoder
from gateway.upstream import Upstream
from meshkit.metrics import MetricsEndpoint
from meshkit.server import ServiceApp
from meshkit.tls import warn_plaintext

log = logging.getLogger(__name__)


class ListenerApp:
    """The ASGI application of one listener: docs, then transcoded routes."""

    def __init__(self, name: str, docs: Docs, transcoder: Transcoder) -> None:
        self.name = name
        self._docs = docs
        self._transcoder = transcoder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        token = logs.listener.set(self.name)
        try:
            if scope["method"] in ("GET", "HEAD") and self._docs.handles(scope["path"]):
                await self._docs(scope, receive, send)
            else:
                await self._transcoder.handle(scope, receive, send)
        finally:
            logs.listener.reset(token)


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything built before any socket opens: routes and docs per listener."""

    mesh: config.MeshConfig
    descriptors: Descriptors
    routes: dict[str, list[routes.Route]]


def plan(settings: Settings, mesh: config.MeshConfig | None = None) -> Plan:
    """Load config and descriptors and build every route; raises on any problem."""
    if mesh is None:
        mesh = config.load(settings.config_path)
    mesh = mesh.with_overrides(settings.port_overrides, settings.upstream_overrides)
    descriptors = Descriptors.load(settings.descriptor_set_path)
    built = {x.name: routes.build_routes(descriptors, x.services) for x in mesh.listeners}
    for listener in mesh.listeners:
        routes.build_matcher(built[listener.name])  # duplicates fail here, before serving
    return Plan(mesh, descriptors, built)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the gateway (it runs several)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Gateway(ServiceApp):
    """The running gateway; `ports` maps listener name to the port it listens on."""

    def __init__(self, settings: Settings, mesh: config.MeshConfig | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.plan = plan(settings, mesh)
        self.ports: dict[str, int] = {}
        self.closing: Closing = asyncio.Event()
        self._servers: list[_Server] = []
        self._serving: list[asyncio.Task[None]] = []
        self._stopped = False
        self.metrics_port = 0

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Shut down now (what leaving the `async with` block does; later calls do nothing)."""
        if not self._stopped:
            self._stopped = True
            await self._stop()

    async def _start(self) -> None:
        if self.settings.tls_files is None:
            warn_plaintext("the gateway's upstream links", "GATEWAY_TLS")
        sockets = self._bind()
        if self.settings.metrics_listen:
            try:
                endpoint = MetricsEndpoint(self.settings.metrics_listen, "GATEWAY_METRICS_LISTEN")
            except OSError:
                for unused in sockets.values():
                    unused.close()
                raise
            self._stack.callback(endpoint.close)
            self.metrics_port = endpoint.port
        printer = Printer(self.plan.mesh.transcoding, self.plan.descriptors.pool)
        try:  # every app (and its upstream) before the first server runs
            apps = [
                (listener, self._app(listener, printer)) for listener in self.plan.mesh.listeners
            ]
        except BaseException:
            for unused in sockets.values():
                unused.close()
            raise
        for listener, app in apps:
            server = _Server(self._config(app, listener.name))
            self._servers.append(server)
            serving = server.serve(sockets=[sockets.pop(listener.name)])
            self._serving.append(await self.start_task(serving, name=f"http-{listener.name}"))
            log.info(
                "listener %s on %s:%d -> %s (%s)",
                listener.name,
                self.settings.host,
                self.ports[listener.name],
                listener.upstream,
                ", ".join(listener.services),
            )
        while not all(server.started for server in self._servers):
            if any(task.done() for task in self._serving):
                raise RuntimeError("a listener stopped while starting; see the log above")
            await asyncio.sleep(0.01)

    def _app(self, listener: config.Listener, printer: Printer) -> ListenerApp:
        """The ASGI app of one listener, with its own upstream channels."""
        s, mesh = self.settings, self.plan.mesh
        upstream = Upstream(
            listener.display_name, listener.upstream, s.channels_per_upstream, s.tls_files
        )
        self._stack.push_async_callback(upstream.close)  # after the servers have stopped
        built = self.plan.routes[listener.name]
        spec = openapi.document(listener, built, self.plan.descriptors, mesh.transcoding)
        transcoder = Transcoder(
            routes.build_matcher(built),
            upstream,
            printer,
            mesh.transcoding,
            s.forwarded_headers,
            self.closing,
        )
        return ListenerApp(listener.name, Docs(spec["info"]["title"], spec), transcoder)

    def _config(self, app: ListenerApp, name: str) -> uvicorn.Config:
        t = self.plan.mesh.transcoding
        return uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,  # the transcoder logs each request, with its request id
            proxy_headers=False,  # x-forwarded-for is extended, not trusted
            server_header=False,
            # The C parser (h11, pure Python, cost ~0.3 ms a request), with the header
            # timeout, header size and connection limits uvicorn lacks.
            http=protocol.limited(
                name,
                t.header_timeout_seconds,
                t.max_request_headers_kb * 1024,
                self.settings.max_connections,
            ),
            timeout_graceful_shutdown=max(int(self.settings.shutdown_grace_seconds), 1),
        )

    def _bind(self) -> dict[str, socket.socket]:
        """Open every listener's socket first, so a taken port fails before anything runs."""
        sockets: dict[str, socket.socket] = {}
        problems: list[str] = []
        for listener in self.plan.mesh.listeners:
            try:
                sock = _listen(self.settings.host, listener.port)
            except OSError as exc:
                problems.append(
                    f"listener {listener.name} cannot listen on {self.settings.host}:"
                    f"{listener.port} ({exc.strerror}); set GATEWAY_PORTS={listener.name}=<port>"
                )
                continue
            sockets[listener.name] = sock
            self.ports[listener.name] = sock.getsockname()[1]
        if problems:
            for sock in sockets.values():
                sock.close()
            raise OSError("\n".join(problems))
        return sockets

    async def _stop(self) -> None:
        """End live streams, stop the servers (they drain), close the channels."""
        self.closing.set()
        for server in self._servers:
            server.should_exit = True
        await self._stack.aclose()  # the servers drain, then the channels close
        log.info("gateway stopped")


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Created with an explicit IPPROTO_TCP: asyncio turns Nagle
    off only on sockets whose proto says TCP, and `socket.create_server` leaves it 0,
    which would delay every second response on a kept-alive connection by ~40 ms."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock
