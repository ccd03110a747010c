"""Every gRPC error a caller sees, as a google.rpc.Status, built in one place.

Every service's domain errors are `meshkit.errors.MeshError`s, each carrying its gRPC
code, reason and domain: `to_status` is the one table from them to statuses, used by
the `ErrorInterceptor` of every service. Unknown exceptions are logged once and
answered INTERNAL with a generic message. The interceptor also puts the request id,
method and peer of each call into the logging context.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from meshkit import logs
from meshkit.errors import MeshError

log = logging.getLogger(__name__)

ToStatus = Callable[[Exception], status_pb2.Status | None]


def to_status(exc: Exception) -> status_pb2.Status | None:
    """The rich status of a domain error (ErrorInfo; BadRequest for its violations;
    its extra details); None for any other exception."""
    if not isinstance(exc, MeshError):
        return None
    return rich_status(
        exc.code,
        exc.message,
        reason=exc.reason,
        domain=exc.domain,
        metadata=exc.metadata,
        violations=[(v.field, v.description) for v in exc.violations],
        extra=exc.extra_details(),
    )


def rich_status(
    code: int,
    message: str,
    *,
    reason: str,
    domain: str,
    metadata: Mapping[str, str] | None = None,
    violations: Iterable[tuple[str, str]] = (),
    extra: Iterable[Message] = (),
) -> status_pb2.Status:
    """A status with an ErrorInfo, a BadRequest when there are (field, description)
    violations, and any `extra` detail messages (RetryInfo...)."""
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata))]
    fields = [
        error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
        for field, description in violations
    ]
    if fields:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=fields)))
    details += [_pack(message) for message in extra]
    return status_pb2.Status(code=code, message=message, details=details)


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every handler: call context for logs, and errors as rich statuses."""

    def __init__(self, domain: str, to_status: ToStatus = to_status) -> None:
        self._to_status = to_status
        self._internal = rich_status(
            code_pb2.INTERNAL,
            "internal error; see the server log",
            reason="INTERNAL",
            domain=domain,
        )

    async def _abort(self, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        status = self._to_status(exc)
        if status is None:
            log.error("unhandled error", exc_info=exc)
            status = self._internal
        await context.abort_with_status(rpc_status.to_status(status))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None

        def unary(inner: Unary) -> Unary:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                _set_context(details, context)
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await self._abort(context, exc)

            return call

        def streaming(inner: Streaming) -> Streaming:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                _set_context(details, context)
                try:
                    async for response in inner(request, context):
                        yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await self._abort(context, exc)

            return call

        return rewrap(handler, unary, streaming)


Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


def rewrap(
    handler: grpc.RpcMethodHandler,
    unary: Callable[[Unary], Unary],
    streaming: Callable[[Streaming], Streaming],
) -> grpc.RpcMethodHandler:
    """The same kind of handler as `handler`, its behaviour wrapped by `unary` (for
    unary responses) or `streaming` (for streamed responses): what an interceptor
    returns."""
    if handler.unary_unary or handler.stream_unary:
        kind = "unary_unary" if handler.unary_unary else "stream_unary"
        wrapped: Any = unary(handler.unary_unary or handler.stream_unary)
    else:
        kind = "unary_stream" if handler.unary_stream else "stream_stream"
        wrapped = streaming(handler.unary_stream or handler.stream_stream)
    factory = getattr(grpc, f"{kind}_rpc_method_handler")
    return factory(
        wrapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _set_context(details: grpc.HandlerCallDetails, context: grpc.aio.ServicerContext) -> None:
    metadata = dict(context.invocation_metadata() or ())
    logs.request_id.set(str(metadata.get("x-request-id") or uuid.uuid4()))
    logs.method.set(details.method)
    logs.peer.set(context.peer() or "")
