"""The events tests and benchmarks send: the integration guide's event (`GUIDE_EVENT`,
`guide_event`) and many guide-shaped ones over the common types (`wire_events`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from audit.v2 import event_pb2

GUIDE_EVENT: dict[str, Any] = {
    "event_type": "auth.login_success",
    "user_id": "user123",
    "username": "johndoe",
    "ip_address": "192.168.1.100",
    "user_agent": "Mozilla/5.0...",
    "service": "user-service",
    "action": "login_success",
    "result": "success",
    "details": {"mfa_used": False, "session_id": "sess_123"},
    "compliance_tags": ["SOX", "GDPR"],
    "data_classification": "internal",
}


def guide_event(**changes: Any) -> event_pb2.AuditEvent:
    """The guide's event with some fields changed, as a proto message."""
    return json_format.ParseDict({**GUIDE_EVENT, **changes}, event_pb2.AuditEvent())


EVENT_TYPES = [
    ("auth.login_success", "login_success", "success"),
    ("auth.login_failed", "login_failed", "failure"),
    ("auth.logout", "logout", "success"),
    ("auth.token_refresh", "token_refresh", "success"),
    ("user.user_updated", "user_updated", "success"),
    ("mfa.mfa_verified", "mfa_verified", "success"),
    ("permission.role_assigned", "role_assigned", "success"),
    ("security.rate_limit_exceeded", "rate_limit_exceeded", "denied"),
]


def wire_events(
    count: int, users: int = 1000, new_id: Callable[[], object] = uuid.uuid4
) -> list[event_pb2.AuditEvent]:
    """Guide-shaped events over `users` accounts and the common types, each with an
    id from `new_id` (random UUIDs; `meshkit.ids.new_id` for UUIDv7 as clients stamp)."""
    out = []
    for i in range(count):
        event_type, action, result = EVENT_TYPES[i % len(EVENT_TYPES)]
        event = event_pb2.AuditEvent(
            event_id=str(new_id()),
            event_type=event_type,
            user_id=f"user{i % users}",
            username=f"name{i % users}",
            ip_address=f"10.0.{i % 250}.{i % 200}",
            user_agent="Mozilla/5.0 (bench)",
            service="user-service",
            action=action,
            result=result,
            compliance_tags=["SOX", "GDPR"] if i % 3 == 0 else ["GDPR"],
            data_classification="internal",
        )
        event.details.update({"mfa_used": i % 2 == 0, "session_id": f"sess_{i}"})
        out.append(event)
    return out
