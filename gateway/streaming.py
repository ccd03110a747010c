"""Server-streaming calls as a live HTTP body (`curl -N` shows each message as it comes).

Headers go out with the first message, so an upstream error before it is still a
proper HTTP error. Each message is written and flushed as soon as it arrives, in the
chosen framing (JSON array, NDJSON or SSE). The caller hanging up cancels the
upstream call at once; so does the gateway shutting down, which ends the body
cleanly (the array is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable
from typing import Any

import grpc
from google.rpc import status_pb2
from starlette.types import Receive, Send

from gateway import errors
from gateway.jsonout import FRAMINGS, Printer, StreamFraming

log = logging.getLogger(__name__)
Closing = asyncio.Event
Failure = Callable[[grpc.aio.AioRpcError], status_pb2.Status]


class Tail:
    """One streamed response: an upstream call relayed to one HTTP caller."""

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall,
        framing: StreamFraming,
        printer: Printer,
        closing: Closing,
    ) -> None:
        self._call = call
        self._framing = framing
        self._printer = printer
        self._closing = closing
        self._started = False
        self._first = True

    async def serve(self, receive: Receive, send: Send, request_id: str, failure: Failure) -> int:
        """Relay until the stream ends, fails, the caller leaves or the gateway stops;
        the HTTP status sent."""
        hung_up = asyncio.ensure_future(_disconnect(receive))
        stopping = asyncio.ensure_future(self._closing.wait())
        try:
            return await self._relay(send, request_id, failure, hung_up, stopping)
        finally:
            self._call.cancel()
            for task in (hung_up, stopping):
                task.cancel()
            await asyncio.gather(hung_up, stopping, return_exceptions=True)

    async def _relay(
        self,
        send: Send,
        request_id: str,
        failure: Failure,
        hung_up: asyncio.Future[None],
        stopping: asyncio.Future[Any],
    ) -> int:
        while True:
            reading = asyncio.ensure_future(self._call.read())
            done, _ = await asyncio.wait(
                {reading, hung_up, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            if reading not in done:
                self._call.cancel()
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await reading
                if hung_up in done:
                    log.info("caller hung up; upstream stream cancelled")
                    return 499
                await self._finish(send, request_id)
                return 200
            try:
                item = reading.result()
            except grpc.aio.AioRpcError as exc:
                return await self._failed(send, request_id, failure(exc))
            if item is grpc.aio.EOF:
                await self._finish(send, request_id)
                return 200
            await self._write(send, request_id, item)

    async def _write(self, send: Send, request_id: str, item: Any) -> None:
        await self._start(send, request_id)
        chunk = self._framing.item(self._printer.dumps(item), first=self._first)
        self._first = False
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _start(self, send: Send, request_id: str) -> None:
        if self._started:
            return
        self._started = True
        headers = [
            (b"content-type", self._framing.content_type.encode()),
            (b"x-request-id", request_id.encode()),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def _finish(self, send: Send, request_id: str) -> None:
        await self._start(send, request_id)
        end = self._framing.end(empty=self._first)
        await send({"type": "http.response.body", "body": end, "more_body": False})

    async def _failed(self, send: Send, request_id: str, status: status_pb2.Status) -> int:
        body = self._printer.dumps_status(status)
        if not self._started:
            code = errors.http_status(status.code)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ]
            await send({"type": "http.response.start", "status": code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return code
        log.warning("stream failed after it started: %s", status.message)
        tail = self._framing.error(body) + self._framing.end(empty=False)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        return 200


class BodyTail(Tail):
    """A server stream of `google.api.HttpBody`: the body is the messages' bytes as
    they come, with the first one's content type, as Envoy streams it; gzip (each
    message flushed) when the caller accepts it. A failure after the first bytes
    cuts the body off (no final chunk), so the caller sees an incomplete transfer
    rather than a short file that looks whole."""

    def __init__(
        self, call: grpc.aio.UnaryStreamCall, printer: Printer, closing: Closing, *, gzip: bool
    ) -> None:
        super().__init__(call, FRAMINGS["ndjson"], printer, closing)
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
        self._content_type = b"application/octet-stream"

    async def _write(self, send: Send, request_id: str, item: Any) -> None:
        if not self._started:
            self._content_type = item.content_type.encode() or self._content_type
        await self._start(send, request_id)
        data = item.data
        if self._gzip is not None and data:
            data = self._gzip.compress(data) + self._gzip.flush(zlib.Z_SYNC_FLUSH)
        if data:
            await send({"type": "http.response.body", "body": data, "more_body": True})

    async def _start(self, send: Send, request_id: str) -> None:
        if self._started:
            return
        self._started = True
        headers = [
            (b"content-type", self._content_type),
            (b"x-request-id", request_id.encode()),
            (b"cache-control", b"no-cache"),
            (b"vary", b"accept-encoding"),
        ]
        if self._gzip is not None:
            headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def _finish(self, send: Send, request_id: str) -> None:
        await self._start(send, request_id)
        end = self._gzip.flush(zlib.Z_FINISH) if self._gzip is not None else b""
        await send({"type": "http.response.body", "body": end, "more_body": False})

    async def _failed(self, send: Send, request_id: str, status: status_pb2.Status) -> int:
        if not self._started:
            return await super()._failed(send, request_id, status)
        log.warning("body stream failed after it started (body cut off): %s", status.message)
        raise StreamBroken(status.message)


class StreamBroken(Exception):
    """An HttpBody stream failed after its first bytes: the response is abandoned."""


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (and not with q=0)."""
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().removeprefix("q=").strip()
            try:
                return not params or float(q) > 0
            except ValueError:
                return True
    return False


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
