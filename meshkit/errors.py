"""The one base of every error a caller of a mesh service may see.

As googleapis/python-api-core's exceptions carry their gRPC code, each `MeshError`
subclass names its `code` (a google.rpc.Code), its ErrorInfo `reason` (UPPER_SNAKE)
and its `domain`; `meshkit.rpc` turns any of them into a `google.rpc.Status` in one
place, so a service declares its errors and writes no table of its own. Plain data:
no grpc here, so domain code may raise these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import Message
from google.rpc import code_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One reason a request is invalid: the field path (proto names) and what is wrong."""

    field: str
    description: str


class MeshError(Exception):
    """Base of the errors a caller may see: `code` is the gRPC status code, `reason`
    the ErrorInfo reason, `domain` the ErrorInfo domain, `metadata` its metadata."""

    code: int = code_pb2.INTERNAL
    reason = "INTERNAL"
    domain = "auditmesh.dev"
    # The bad fields, for a BadRequest detail (set by INVALID_ARGUMENT errors).
    violations: tuple[FieldViolation, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})

    def extra_details(self) -> list[Message]:
        """More detail messages for the status (a RetryInfo, say); none by default."""
        return []


class InvalidArgumentError(MeshError):
    """The request is malformed; `violations` names each bad field (a BadRequest)."""

    code = code_pb2.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation], *, reason: str | None = None) -> None:
        super().__init__(
            "; ".join(f"{v.field}: {v.description}" for v in violations), reason=reason
        )
        self.violations = tuple(violations)
