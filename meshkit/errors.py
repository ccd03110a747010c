"""The one base of every error a caller of a mesh service may see.

As googleapis/python-api-core's exceptions carry their gRPC code, each `MeshError`
subclass names its `code` (a google.rpc.Code), its ErrorInfo `reason` (UPPER_SNAKE)
and its `domain`; `meshkit.rpc` turns any of them into a `google.rpc.Status` in one
place, so a service declares its errors and writes no table of its own. Plain data:
no grpc here, so domain code may raise these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from google.protobuf.message import Message
from google.rpc import code_pb2


class Violation(Protocol):
    """One bad field of a request (each service's `FieldViolation`)."""

    @property
    def field(self) -> str: ...

    @property
    def description(self) -> str: ...


class MeshError(Exception):
    """Base of the errors a caller may see: `code` is the gRPC status code, `reason`
    the ErrorInfo reason, `domain` the ErrorInfo domain, `metadata` its metadata."""

    code: int = code_pb2.INTERNAL
    reason = "INTERNAL"
    domain = "auditmesh.dev"
    # The bad fields, for a BadRequest detail (set by INVALID_ARGUMENT errors).
    violations: tuple[Violation, ...] = ()

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
