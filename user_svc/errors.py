"""Typed domain errors, each with its gRPC code: `meshkit.rpc` turns them into a
google.rpc.Status in one place; domain code raises these and never imports grpc."""

from __future__ import annotations

from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2

from meshkit.errors import InvalidArgumentError, MeshError

DOMAIN = "user.auditmesh.dev"


class UserError(MeshError):
    """Base of the errors a caller may see; `reason` is UPPER_SNAKE_CASE."""

    domain = DOMAIN


class InvalidArgument(UserError, InvalidArgumentError):
    """The request is malformed; `violations` names each bad field."""


class NotFound(UserError):
    """The account (or the role) asked for does not exist."""

    code = code_pb2.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(UserError):
    """The user name or email is taken."""

    code = code_pb2.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class Unauthenticated(UserError):
    """Bad or missing credentials. Reasons: INVALID_CREDENTIALS, MFA_REQUIRED,
    INVALID_MFA_CODE, ACCOUNT_LOCKED, MISSING_TOKEN, INVALID_TOKEN, SESSION_ENDED,
    INVALID_REFRESH_TOKEN, INVALID_RESET_TOKEN."""

    code = code_pb2.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(UserError):
    """Signed in, but not allowed: ROLE_REQUIRED or NOT_ACCOUNT_OWNER."""

    code = code_pb2.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class FailedPrecondition(UserError):
    """The account is not in a state that allows the call (MFA_NOT_ENABLED, LAST_ADMIN...)."""

    code = code_pb2.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class RateLimited(UserError):
    """Too many calls (RATE_LIMITED), or sign-ins after failures (LOGIN_THROTTLED);
    `metadata` names the limit and when to retry."""

    code = code_pb2.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"

    def extra_details(self) -> list[Message]:
        """A RetryInfo saying when to try again, when the limit says so."""
        after = self.metadata.get("retry_after_seconds")
        if not after:
            return []
        return [error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(after)))]


class Unavailable(UserError):
    """A dependency (the database, or the audit trail under fail_closed) is down."""

    code = code_pb2.UNAVAILABLE
    reason = "UNAVAILABLE"
