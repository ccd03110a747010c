"""Typed domain errors, each with its gRPC code: `meshkit.rpc` turns them into a
google.rpc.Status in one place; domain code raises these and never imports grpc."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.rpc import code_pb2

from audit_svc.model import FieldViolation
from meshkit.errors import InvalidArgumentError, MeshError

DOMAIN = "audit.auditmesh.dev"


class AuditError(MeshError):
    """Base of the errors a caller may see; `reason` is UPPER_SNAKE_CASE."""

    domain = DOMAIN


class InvalidArgument(AuditError, InvalidArgumentError):
    """The request is malformed; `violations` names each bad field."""


class NotFound(AuditError):
    """The thing asked for does not exist."""

    code = code_pb2.NOT_FOUND
    reason = "NOT_FOUND"


class Unavailable(AuditError):
    """A dependency (the database) cannot be reached now; retrying later may work."""

    code = code_pb2.UNAVAILABLE
    reason = "UNAVAILABLE"


class ShuttingDown(Unavailable):
    """The service is draining and takes no new work."""

    reason = "SHUTTING_DOWN"


class DuplicateEventId(AuditError):
    """An event id is already stored: the unique index refused a write. The appender
    answers such events as duplicates; it reaches a caller only if that keeps failing."""

    code = code_pb2.ABORTED
    reason = "DUPLICATE_EVENT_ID"


class EventIdConflict(AuditError):
    """An event id is already stored for another writer or other content: an
    idempotency key names one event (audit_svc.ingest.idempotency)."""

    code = code_pb2.ALREADY_EXISTS
    reason = "EVENT_ID_CONFLICT"

    def __init__(self, message: str, *, violations: Sequence[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.violations = tuple(violations)


class FellBehind(AuditError):
    """A live-tail subscriber could not keep up and was disconnected."""

    code = code_pb2.RESOURCE_EXHAUSTED
    reason = "WATCHER_FELL_BEHIND"


class TooManyWatchers(AuditError):
    """The caller, or the service as a whole, has as many live tails open as allowed
    (AUDIT_WATCH_MAX_PER_CALLER, AUDIT_WATCH_MAX_TOTAL); metadata `limit` says which."""

    code = code_pb2.RESOURCE_EXHAUSTED
    reason = "TOO_MANY_WATCHERS"


class StorageError(Exception):
    """The database refused a statement for a reason that is not the caller's (a bug,
    a schema out of date). Not an AuditError: it is logged and answered INTERNAL."""


class ChainLockLost(Unavailable):
    """This replica does not hold its chain's advisory lock (its session was lost, e.g.
    PostgreSQL restarted): it writes nothing on the chain until it holds it again."""

    reason = "CHAIN_LOCK_LOST"


class PartitionKept(Exception):
    """The database's retention door refused to remove a partition: some of its events
    are not archived yet (another chain's, maybe), or a legal hold covers it."""


class HeadMoved(Exception):
    """The chain's head is not where a prepared group starts; prepare it again."""


class Unauthenticated(AuditError):
    """The caller has no identity we accept (no certificate, or a bad token)."""

    code = code_pb2.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(AuditError):
    """The caller is known but may not do this; `reason` says why (MISSING_ROLE,
    SERVICE_MISMATCH...), `violations` which field when an event's is at fault."""

    code = code_pb2.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = tuple(violations)


class ArchiveUnavailable(Unavailable):
    """The archive bucket cannot be read now: a query that reaches archived events
    fails rather than answer without them."""

    reason = "ARCHIVE_UNAVAILABLE"


class ArchiveNotConfigured(AuditError):
    """`include_archive` was asked of a service without an archive (no S3 settings)."""

    code = code_pb2.FAILED_PRECONDITION
    reason = "ARCHIVE_NOT_CONFIGURED"


class FailedPrecondition(AuditError):
    """The system is not in a state that allows this (e.g. a legal hold covers it);
    `reason` and `metadata` say which state."""

    code = code_pb2.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class LegalHoldActive(FailedPrecondition):
    """A legal hold covers what was asked to be erased or deleted; metadata names it."""

    reason = "LEGAL_HOLD"
