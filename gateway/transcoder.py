"""REST request in, gRPC call upstream, JSON out: the transcoding of one listener."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import grpc
from google.rpc import code_pb2, status_pb2
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from gateway import binding, errors, metrics, streaming
from gateway.config import Transcoding
from gateway.jsonout import Printer, choose_framing
from gateway.logs import request_id as request_id_var
from gateway.matcher import Match, PathMatcher
from gateway.routes import Route
from gateway.upstream import CallInfo, Upstream, call_info

log = logging.getLogger(__name__)
JSON = b"application/json"
HTTP_BODY = "google.api.HttpBody"
_INTERNAL = status_pb2.Status(
    code=code_pb2.INTERNAL, message="internal error in the gateway; see its log"
)


class ClientGone(Exception):
    """The caller disconnected before its request was complete."""


class Transcoder:
    """Serves the routes of one listener against its upstream."""

    def __init__(
        self,
        matcher: PathMatcher[Route],
        upstream: Upstream,
        printer: Printer,
        options: Transcoding,
        forwarded_headers: Sequence[str],
        closing: streaming.Closing,
    ) -> None:
        self._matcher = matcher
        self._upstream = upstream
        self._printer = printer
        self._options = options
        self._forwarded = tuple(forwarded_headers)
        self._closing = closing

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request; never raises for a bad request or a failed call."""
        began = time.perf_counter()
        headers = Headers(scope=scope)
        client = scope.get("client") or ("", 0)
        info = call_info(headers, client[0], self._forwarded, self._options.default_timeout_seconds)
        token = request_id_var.set(info.request_id)
        method = scope["method"]
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        status = 500
        responded = False
        match = self._matcher.lookup(method, path)
        route = match.route.operation_id if match is not None else metrics.UNMATCHED

        async def tracked(message: Message) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            status = await self._dispatch(
                scope, receive, tracked, headers, info, method, path, match
            )
        except ClientGone:
            status = 499
        except streaming.StreamBroken:
            status = 502  # logged where it broke; the body is left incomplete
        except Exception:
            log.exception("unhandled error in %s %s", method, path)
            if not responded:
                status = await self._status(send, _INTERNAL, info.request_id)
        finally:
            seconds = time.perf_counter() - began
            listener = self._upstream.name
            metrics.REQUESTS.labels(listener, route, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(listener, route).observe(seconds)
            log.info("%s %s -> %d in %.1f ms", method, path, status, seconds * 1000)
            request_id_var.reset(token)

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Headers,
        info: CallInfo,
        method: str,
        path: str,
        match: Match[Route] | None,
    ) -> int:
        if match is None:
            return await self._error(send, errors.no_route(method, path, self._allowed(path)), info)
        route = match.route
        try:
            body = await self._read_body(receive, headers) if route.body else b""
            request = binding.build_request(
                route, match.bindings, scope.get("query_string", b"").decode("latin-1"), body
            )
        except errors.GatewayError as exc:
            return await self._error(send, exc, info)
        if route.streaming:
            timeout = info.timeout if "grpc-timeout" in headers else None
            call = self._upstream.server_stream(route.grpc_path, route.response_class)(
                request, metadata=info.metadata, timeout=timeout
            )
            tail: streaming.Tail
            if route.response_class.DESCRIPTOR.full_name == HTTP_BODY:
                gzip = streaming.accepts_gzip(headers.get("accept-encoding", ""))
                tail = streaming.BodyTail(call, self._printer, self._closing, gzip=gzip)
            else:
                framing = choose_framing(headers.get("accept", ""), self._options.stream_format)
                tail = streaming.Tail(call, framing, self._printer, self._closing)
            return await tail.serve(receive, send, info.request_id, self._failure)
        began = time.perf_counter()
        try:
            response = await self._upstream.unary(route.grpc_path, route.response_class)(
                request, metadata=info.metadata, timeout=info.timeout
            )
        except grpc.aio.AioRpcError as exc:
            return await self._status(send, self._failure(exc), info.request_id)
        finally:
            upstream = metrics.UPSTREAM_SECONDS.labels(self._upstream.name, route.grpc_path)
            upstream.observe(time.perf_counter() - began)
        if response.DESCRIPTOR.full_name == HTTP_BODY:  # raw bytes, as Envoy sends them
            content_type = response.content_type.encode() or b"application/octet-stream"
            return await self._json(send, 200, response.data, info.request_id, content_type)
        return await self._json(send, 200, self._printer.dumps(response), info.request_id)

    def _allowed(self, path: str) -> list[str]:
        return self._matcher.methods_for(path)

    async def _read_body(self, receive: Receive, headers: Headers) -> bytes:
        limit = self._options.max_request_body_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise errors.body_too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ClientGone()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise errors.body_too_large(limit)
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    def _failure(self, exc: grpc.aio.AioRpcError) -> status_pb2.Status:
        """The status to answer for a failed upstream call."""
        rich = errors.status_of(exc)
        if rich is not None:
            return rich
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            up = self._upstream
            return errors.upstream_unavailable(up.name, up.target, exc.details() or "").status()
        if exc.code() == grpc.StatusCode.UNKNOWN and not exc.details():
            return status_pb2.Status(code=code_pb2.UNKNOWN, message="upstream failed")
        return errors.status_from_rpc_error(exc)

    async def _error(self, send: Send, exc: errors.GatewayError, info: CallInfo) -> int:
        body = self._printer.dumps_status(exc.status())
        return await self._json(send, exc.http, body, info.request_id)

    async def _status(self, send: Send, status: status_pb2.Status, request_id: str) -> int:
        body = self._printer.dumps_status(status)
        return await self._json(send, errors.http_status(status.code), body, request_id)

    async def _json(
        self, send: Send, status: int, body: bytes, request_id: str, content_type: bytes = b""
    ) -> int:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type or JSON),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return status
