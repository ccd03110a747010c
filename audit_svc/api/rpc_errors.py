"""The audit-service's domain errors as google.rpc.Status (see meshkit.rpc)."""

from __future__ import annotations

from google.rpc import code_pb2, status_pb2

from audit_svc.errors import (
    DOMAIN,
    AuditError,
    DuplicateEventId,
    FellBehind,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from meshkit.rpc import ErrorInterceptor, rich_status

_CODES: list[tuple[type[AuditError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (Unavailable, code_pb2.UNAVAILABLE),
    (FellBehind, code_pb2.RESOURCE_EXHAUSTED),
    (DuplicateEventId, code_pb2.ABORTED),
]


def to_status(exc: Exception) -> status_pb2.Status | None:
    """The rich status of a domain error; None for any other exception."""
    if not isinstance(exc, AuditError):
        return None
    code = next((c for kind, c in _CODES if isinstance(exc, kind)), code_pb2.INTERNAL)
    violations = exc.violations if isinstance(exc, InvalidArgument) else ()
    return rich_status(
        code,
        exc.message,
        reason=exc.reason,
        domain=DOMAIN,
        metadata=exc.metadata,
        violations=[(v.field, v.description) for v in violations],
    )


def interceptor() -> ErrorInterceptor:
    """The interceptor every audit-service handler runs under."""
    return ErrorInterceptor(to_status, DOMAIN)
