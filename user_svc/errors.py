"""Typed domain errors. The transport turns each into a google.rpc.Status in one place
(`user_svc.rpc_errors`); domain code raises these and never imports grpc."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from user_svc.model import FieldViolation

DOMAIN = "user.auditmesh.dev"


class UserError(Exception):
    """Base of the errors a caller may see; `reason` is UPPER_SNAKE_CASE."""

    reason = "INTERNAL"

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


class InvalidArgument(UserError):
    """The request is malformed; `violations` names each bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = tuple(violations)


class NotFound(UserError):
    """The account (or the role) asked for does not exist."""

    reason = "NOT_FOUND"


class AlreadyExists(UserError):
    """The user name or email is taken."""

    reason = "ALREADY_EXISTS"


class Unauthenticated(UserError):
    """Bad or missing credentials. Reasons: INVALID_CREDENTIALS, MFA_REQUIRED,
    INVALID_MFA_CODE, ACCOUNT_LOCKED, MISSING_TOKEN, INVALID_TOKEN, SESSION_ENDED,
    INVALID_REFRESH_TOKEN, INVALID_RESET_TOKEN."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(UserError):
    """Signed in, but not allowed: ROLE_REQUIRED or NOT_ACCOUNT_OWNER."""

    reason = "PERMISSION_DENIED"


class FailedPrecondition(UserError):
    """The account is not in a state that allows the call (MFA_NOT_ENABLED, LAST_ADMIN...)."""

    reason = "FAILED_PRECONDITION"


class RateLimited(UserError):
    """Too many calls; `metadata` names the limit and when to retry."""

    reason = "RATE_LIMITED"


class Unavailable(UserError):
    """A dependency (the database, or the audit trail under fail_closed) is down."""

    reason = "UNAVAILABLE"
