"""The integration guide's event, as users send it."""

from __future__ import annotations

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
