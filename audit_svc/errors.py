"""Typed domain errors. The transport turns each into a google.rpc.Status in one place
(`audit_svc.api.rpc_errors`); domain code raises these and never imports grpc."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from audit_svc.model import FieldViolation

DOMAIN = "audit.auditmesh.dev"


class AuditError(Exception):
    """Base of the errors a caller may see; `reason` is UPPER_SNAKE_CASE."""

    reason = "INTERNAL"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})


class InvalidArgument(AuditError):
    """The request is malformed; `violations` names each bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(
        self, violations: Sequence[FieldViolation], *, reason: str = "INVALID_ARGUMENT"
    ) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = tuple(violations)
        self.reason = reason


class NotFound(AuditError):
    """The thing asked for does not exist."""

    reason = "NOT_FOUND"


class Unavailable(AuditError):
    """A dependency (the database) cannot be reached now; retrying later may work."""

    reason = "UNAVAILABLE"


class ShuttingDown(Unavailable):
    """The service is draining and takes no new work."""

    reason = "SHUTTING_DOWN"


class DuplicateEventId(AuditError):
    """An event id is already stored: the unique index refused a write. The appender
    answers such events as duplicates; it reaches a caller only if that keeps failing."""

    reason = "DUPLICATE_EVENT_ID"


class FellBehind(AuditError):
    """A live-tail subscriber could not keep up and was disconnected."""

    reason = "WATCHER_FELL_BEHIND"


class StorageError(Exception):
    """The database refused a statement for a reason that is not the caller's (a bug,
    a schema out of date). Not an AuditError: it is logged and answered INTERNAL."""


class HeadMoved(Exception):
    """The chain's head is not where a prepared group starts; prepare it again."""
