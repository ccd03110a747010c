"""Typed errors of the audit client. Callers match on the type and `reason`, never on text."""

from __future__ import annotations

from collections.abc import Sequence


class AuditClientError(Exception):
    """Base of every error the client raises; `reason` is UPPER_SNAKE_CASE."""

    reason = "AUDIT_CLIENT_ERROR"


class SettingsError(AuditClientError, ValueError):
    """Invalid settings; `problems` lists each one, naming its environment variable."""

    reason = "INVALID_SETTINGS"

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid audit client settings:\n  " + "\n  ".join(problems))
        self.problems = list(problems)


class AuditUnavailable(AuditClientError):
    """fail_closed: the event can be neither delivered nor spooled, so the action must fail.

    `reason` is AUDIT_AND_SPOOL_UNAVAILABLE (the audit-service and Redis are both down)
    or BUFFER_FULL (the in-memory bound is reached).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ClientClosed(AuditClientError):
    """emit() or flush() on a client that is not started or already closed."""

    reason = "CLIENT_CLOSED"


class InvalidEvent(AuditClientError, ValueError):
    """The event cannot be sent at all (not an AuditEvent, or larger than a batch may be)."""

    reason = "INVALID_EVENT"


class TransportError(AuditClientError):
    """The stream to the audit-service failed; raised by the transport, handled inside."""

    reason = "TRANSPORT_ERROR"


class SpoolUnavailable(AuditClientError):
    """Redis did not answer, or the spool is full; handled inside the client."""

    reason = "SPOOL_UNAVAILABLE"
