"""Real receivers the forwarders deliver to, started in the test on free ports and
stoppable mid-stream: a TCP syslog listener (RFC 6587 octet counting, TLS optional)
and an aiohttp HTTP receiver that checks the webhook signature."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import ssl
from collections import defaultdict
from typing import Self

from aiohttp import web

from tests.testkit.siem import octet_frames

EVENT_ID = re.compile(rb'eventId="([0-9a-f-]+)"')


class Receiver:
    """Started on entering, stopped (whatever happened) on leaving."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SyslogReceiver(Receiver):
    """Keeps every frame it reads; `stop` drops its connections as a crash would."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = 0
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.frames: list[bytes] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self._tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # unread bytes are lost, as with a crashed receiver
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        buffer = b""
        try:
            while data := await reader.read(65536):
                frames, buffer = octet_frames(buffer + data)
                self.frames += frames
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def by_event(self) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = defaultdict(list)
        for frame in self.frames:
            match = EVENT_ID.search(frame)
            assert match, frame
            out[match.group(1).decode()].append(frame)
        return out


class WebhookReceiver(Receiver):
    """Answers `status` (200 by default; 0 holds requests until it changes) to each
    correctly signed POST and keeps the events of the accepted ones; a bad signature
    is a 401."""

    def __init__(self, secret: bytes, tls: ssl.SSLContext | None = None) -> None:
        self.port = 0
        self.secret = secret
        self._tls = tls
        self.status = 200
        self.requests = 0
        self.bodies: list[tuple[str, bytes]] = []  # (content type, body) accepted
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._tls)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        while self.status == 0:  # held: the caller waits (and may time out)
            await asyncio.sleep(0.02)
        self.requests += 1
        body = await request.read()
        stamp = request.headers.get("X-Auditmesh-Timestamp", "")
        mac = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Auditmesh-Signature", ""), "v1=" + mac):
            return web.Response(status=401)
        if self.status == 200:
            self.bodies.append((request.content_type, body))
        return web.Response(status=self.status)

    def events(self) -> list[dict[str, object]]:
        """Every event of every accepted body, in arrival order."""
        out: list[dict[str, object]] = []
        for content_type, body in self.bodies:
            if content_type == "application/json":
                out += json.loads(body)["events"]
            else:
                out += [json.loads(line) for line in body.splitlines()]
        return out
