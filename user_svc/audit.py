"""Audit events of the user-service: one place that builds them, tags them, and hands
them to the audit client.

Compliance tags and data classification by event family:

| event types                                   | compliance_tags | data_classification |
|-----------------------------------------------|-----------------|---------------------|
| auth.* (login_success/failed, logout, refresh) | SOX, GDPR       | internal            |
| user.user_created, user_updated, user_deleted | GDPR            | confidential        |
| user.user_locked                              | SOX, GDPR       | confidential        |
| password.*                                    | SOX             | confidential        |
| mfa.*                                         | SOX             | confidential        |
| permission.*                                  | SOX             | confidential        |
| security.*                                    | SOX, GDPR       | restricted          |

SOX: access to and control of accounts (sign-in, credentials, roles, lockouts).
GDPR: processing of a person's data (the account record, addresses of a person).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from audit.v2 import event_pb2
from audit_client import AuditUnavailable
from user_svc.errors import Unavailable
from user_svc.model import Caller

log = logging.getLogger(__name__)

SERVICE = "user-service"
SUCCESS, FAILURE, DENIED = "success", "failure", "denied"

EVENT_TYPES = (
    "auth.login_success",
    "auth.login_failed",
    "auth.logout",
    "auth.token_refresh",
    "user.user_created",
    "user.user_updated",
    "user.user_deleted",
    "user.user_locked",
    "password.password_changed",
    "password.password_reset_requested",
    "mfa.mfa_enabled",
    "mfa.mfa_disabled",
    "mfa.mfa_verified",
    "permission.permission_granted",
    "permission.role_assigned",
    "permission.role_removed",
    "security.suspicious_activity",
    "security.rate_limit_exceeded",
)
_FAMILY_POLICY: Mapping[str, tuple[tuple[str, ...], str]] = {
    "auth": (("SOX", "GDPR"), "internal"),
    "user": (("GDPR",), "confidential"),
    "password": (("SOX",), "confidential"),
    "mfa": (("SOX",), "confidential"),
    "permission": (("SOX",), "confidential"),
    "security": (("SOX", "GDPR"), "restricted"),
}
_TYPE_POLICY: Mapping[str, tuple[tuple[str, ...], str]] = {
    "user.user_locked": (("SOX", "GDPR"), "confidential"),
}
# A detail key naming a secret is a programming error: events never carry secrets.
_SECRET_WORDS = ("password", "secret", "token", "code", "hash")


def policy(event_type: str) -> tuple[tuple[str, ...], str]:
    """(compliance_tags, data_classification) of an event type."""
    return _TYPE_POLICY.get(event_type) or _FAMILY_POLICY[event_type.split(".", 1)[0]]


class EventSink(Protocol):
    """What the auditor sends through: the audit client's `emit`."""

    async def emit(self, event: event_pb2.AuditEvent) -> str: ...


class Auditor:
    """Builds and emits the user-service's audit events; `sink=None` turns auditing off."""

    def __init__(self, sink: EventSink | None) -> None:
        self._sink = sink

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    async def record(
        self,
        event_type: str,
        result: str,
        caller: Caller,
        *,
        user_id: str = "",
        username: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Emit one event; raises Unavailable (AUDIT_UNAVAILABLE) only when the audit
        client runs fail_closed and can neither deliver nor spool it."""
        if self._sink is None:
            return
        event = build(event_type, result, caller, user_id, username, details or {})
        try:
            await self._sink.emit(event)
        except AuditUnavailable as exc:
            raise Unavailable(
                "the audit trail cannot record this action now", reason="AUDIT_UNAVAILABLE"
            ) from exc


def build(
    event_type: str,
    result: str,
    caller: Caller,
    user_id: str,
    username: str,
    details: Mapping[str, Any],
) -> event_pb2.AuditEvent:
    """The audit.v2 event of an action, with the caller's address and user agent."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    for key in details:
        if any(word in key for word in _SECRET_WORDS):
            raise ValueError(f"audit detail {key!r} names a secret")
    tags, classification = policy(event_type)
    event = event_pb2.AuditEvent(
        event_type=event_type,
        user_id=user_id,
        username=username,
        ip_address=caller.ip_address,
        user_agent=caller.user_agent,
        service=SERVICE,
        action=event_type.split(".", 1)[1],
        result=result,
        compliance_tags=tags,
        data_classification=classification,
    )
    event.details.update(dict(details))
    return event
