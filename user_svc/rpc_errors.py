"""The user-service's domain errors as google.rpc.Status (see meshkit.rpc): an
ErrorInfo, a BadRequest for invalid arguments, and a RetryInfo for rate limits."""

from __future__ import annotations

from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from meshkit.rpc import ErrorInterceptor, rich_status
from user_svc.errors import (
    DOMAIN,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UserError,
)

_CODES: list[tuple[type[UserError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (AlreadyExists, code_pb2.ALREADY_EXISTS),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (RateLimited, code_pb2.RESOURCE_EXHAUSTED),
    (Unavailable, code_pb2.UNAVAILABLE),
]


def to_status(exc: Exception) -> status_pb2.Status | None:
    """The rich status of a domain error; None for any other exception."""
    if not isinstance(exc, UserError):
        return None
    code = next((c for kind, c in _CODES if isinstance(exc, kind)), code_pb2.INTERNAL)
    violations = exc.violations if isinstance(exc, InvalidArgument) else ()
    extra = []
    if isinstance(exc, RateLimited) and (after := exc.metadata.get("retry_after_seconds")):
        extra.append(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(after)))
        )
    return rich_status(
        code,
        exc.message,
        reason=exc.reason,
        domain=DOMAIN,
        metadata=exc.metadata,
        violations=[(v.field, v.description) for v in violations],
        extra=extra,
    )


def interceptor() -> ErrorInterceptor:
    """The interceptor every user-service handler runs under."""
    return ErrorInterceptor(to_status, DOMAIN)
