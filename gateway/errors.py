"""Every error a REST caller sees, as an HTTP status and a JSON google.rpc.Status.

Upstream errors keep the status the service sent (with its ErrorInfo, BadRequest and
other details, read from `grpc-status-details-bin`), as Envoy's
`convert_grpc_status` does. Errors the gateway itself raises (no route, bad query
parameter, malformed JSON, body too large, upstream down) carry an ErrorInfo in the
gateway's domain and, for bad input, a BadRequest naming each field. The HTTP status
follows grpc-gateway's `HTTPStatusFromCode`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import any_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2

DOMAIN = "gateway.auditmesh.dev"
_DETAILS_KEY = "grpc-status-details-bin"

HTTP_STATUS: Mapping[int, int] = {
    code_pb2.OK: 200,
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
}


def http_status(code: int) -> int:
    """grpc-gateway's HTTPStatusFromCode; 500 for a code it does not know."""
    return HTTP_STATUS.get(code, 500)


class GatewayError(Exception):
    """An error answered by the gateway without (or instead of) the upstream's reply."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        violations: Sequence[tuple[str, str]] = (),
        metadata: Mapping[str, str] | None = None,
        http: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})
        self.http = http if http is not None else http_status(code)

    def status(self) -> status_pb2.Status:
        """The google.rpc.Status the caller receives as JSON."""
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=self.metadata
        )
        details = [_pack(info)]
        if self.violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in self.violations
                ]
            )
            details.append(_pack(bad))
        return status_pb2.Status(code=self.code, message=self.message, details=details)


def bad_request(reason: str, violations: Sequence[tuple[str, str]]) -> GatewayError:
    """INVALID_ARGUMENT (400) naming every bad field."""
    text = "; ".join(f"{field}: {why}" for field, why in violations)
    return GatewayError(code_pb2.INVALID_ARGUMENT, reason, text, violations=violations)


def no_route(method: str, path: str, allowed: Sequence[str]) -> GatewayError:
    """NOT_FOUND (404) for a path no rule matches (Envoy's reject_unknown_method)."""
    hint = f"; this path takes {', '.join(allowed)}" if allowed else ""
    return GatewayError(
        code_pb2.NOT_FOUND,
        "NO_ROUTE",
        f"no REST route for {method} {path}{hint}",
        metadata={"method": method, "path": path},
    )


def body_too_large(limit: int) -> GatewayError:
    """413 for a request body over the configured limit."""
    return GatewayError(
        code_pb2.RESOURCE_EXHAUSTED,
        "REQUEST_BODY_TOO_LARGE",
        f"the request body is larger than {limit} bytes",
        metadata={"limit_bytes": str(limit)},
        http=413,
    )


def upstream_unavailable(name: str, target: str, detail: str) -> GatewayError:
    """503 when the upstream service cannot be reached."""
    return GatewayError(
        code_pb2.UNAVAILABLE,
        "UPSTREAM_UNAVAILABLE",
        f"the {name} at {target} cannot be reached; retry later ({detail})",
        metadata={"upstream": name, "target": target},
    )


def status_of(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The rich status an upstream sent in `grpc-status-details-bin`, if any."""
    for key, value in err.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:  # a malformed header is treated as absent
                return None
            if status.code == err.code().value[0]:
                return status
    return None


def status_from_rpc_error(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The status of a failed upstream call: the rich one, or code and message."""
    return status_of(err) or status_pb2.Status(
        code=err.code().value[0], message=err.details() or ""
    )


def _pack(msg: message.Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed
