"""Every error a caller sees, as a google.rpc.Status, in one place.

Domain errors carry a reason; here they become a status code, an `ErrorInfo`
(reason, domain, metadata) and, for invalid arguments, a `BadRequest` with one
field violation per problem. Anything else is logged once and answered INTERNAL
with a generic message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from audit_svc import logs
from audit_svc.errors import (
    DOMAIN,
    AuditError,
    FellBehind,
    InvalidArgument,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)

_CODES: list[tuple[type[AuditError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (Unavailable, code_pb2.UNAVAILABLE),
    (FellBehind, code_pb2.RESOURCE_EXHAUSTED),
]


def to_status(exc: AuditError) -> status_pb2.Status:
    """The rich status of a domain error."""
    code = next((c for kind, c in _CODES if isinstance(exc, kind)), code_pb2.INTERNAL)
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=exc.metadata)
    details = [_pack(info)]
    if isinstance(exc, InvalidArgument):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in exc.violations
            ]
        )
        details.append(_pack(bad))
    return status_pb2.Status(code=code, message=exc.message, details=details)


def internal_status() -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)
    return status_pb2.Status(
        code=code_pb2.INTERNAL, message="internal error; see the server log", details=[_pack(info)]
    )


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, AuditError):
        status = to_status(exc)
    else:
        log.error("unhandled error", exc_info=exc)
        status = internal_status()
    await context.abort_with_status(rpc_status.to_status(status))


def _set_context(details: grpc.HandlerCallDetails, context: grpc.aio.ServicerContext) -> None:
    metadata = dict(context.invocation_metadata() or ())
    logs.request_id.set(str(metadata.get("x-request-id") or uuid.uuid4()))
    logs.method.set(details.method)
    logs.peer.set(context.peer() or "")


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every handler: call context for logs, and errors as rich statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                _set_context(details, context)
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc)

            kind = "unary_unary" if handler.unary_unary else "stream_unary"
        else:
            inner = handler.unary_stream or handler.stream_stream

            async def streaming(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                _set_context(details, context)
                try:
                    async for response in inner(request, context):
                        yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc)

            kind = "unary_stream" if handler.unary_stream else "stream_stream"
        factory = getattr(grpc, f"{kind}_rpc_method_handler")
        return factory(
            unary if kind.endswith("unary") else streaming,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
