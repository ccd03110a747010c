"""OCSF 1.5.0 events (schema.ocsf.io), one class per kind of event:

- `auth.*`: Authentication (3002); Logon 1 (login), Logoff 2 (logout), else Other 99.
- `user.*`, `password.*`, `mfa.*`: Account Change (3001); Create 1, Password Change 3,
  Password Reset 4, Delete 6, Lock 9, MFA Factor Enable 10 / Disable 11, Unlock 12,
  else Other 99.
- `permission.*`: User Access Management (3005); Assign Privileges 1 (granted,
  assigned), Revoke Privileges 2 (revoked, removed), else Other 99.
- `security.*`: Detection Finding (2004), Create 1: a finding the service reports.
- anything else (`audit.read`, other services' types): API Activity (6003), by the
  action's verb: Create 1, Read 2, Update 3, Delete 4, else Other 99.

`metadata.uid` is the event id, `metadata.sequence` its seq; the receipt (chain,
seq, hash, prev_hash) and what OCSF has no place for (details, tags,
classification, writer) are kept under `unmapped.auditmesh`, with `format`:
`auditmesh.ocsf/1`.
"""

from __future__ import annotations

from typing import Any

from audit_svc import __version__
from audit_svc.formats.base import Format, json_line, register, version_tag
from audit_svc.formats.classify import FAILURE, SEVERITY_NAMES, SUCCESS, millis, outcome, severity
from audit_svc.model import StoredEvent

OCSF_VERSION = "1.5.0"
OCSF_TAG = version_tag("ocsf")
PRODUCT = {"name": "auditmesh", "vendor_name": "auditmesh", "version": __version__}

# class_uid: (class name, category_uid, category name)
CLASSES = {
    2004: ("Detection Finding", 2, "Findings"),
    3001: ("Account Change", 3, "Identity & Access Management"),
    3002: ("Authentication", 3, "Identity & Access Management"),
    3005: ("User Access Management", 3, "Identity & Access Management"),
    6003: ("API Activity", 6, "Application Activity"),
}
OTHER = 99
# Per class: (words in the action, activity_id, activity name), first match wins.
_ACTIVITIES: dict[int, tuple[tuple[tuple[str, ...], int, str], ...]] = {
    3002: ((("logout", "logoff"), 2, "Logoff"), (("login", "logon"), 1, "Logon")),
    3001: (
        (("password_reset",), 4, "Password Reset"),
        (("password_changed", "password_change"), 3, "Password Change"),
        (("mfa_enabled",), 10, "MFA Factor Enable"),
        (("mfa_disabled",), 11, "MFA Factor Disable"),
        (("unlocked",), 12, "Unlock"),
        (("locked",), 9, "Lock"),
        (("created",), 1, "Create"),
        (("deleted",), 6, "Delete"),
        (("enabled",), 2, "Enable"),
        (("disabled",), 5, "Disable"),
    ),
    3005: (
        (("revoked", "removed", "revoke", "remove"), 2, "Revoke Privileges"),
        (("granted", "assigned", "grant", "assign"), 1, "Assign Privileges"),
    ),
    2004: ((("",), 1, "Create"),),
    6003: (
        (("read", "query", "get", "list", "export", "search", "watch", "verify"), 2, "Read"),
        (("create", "add", "ingest"), 1, "Create"),
        (("update", "change", "set"), 3, "Update"),
        (("delete", "remove", "erase"), 4, "Delete"),
    ),
}


def class_of(event_type: str) -> int:
    """The OCSF class_uid of an event type."""
    family = event_type.split(".", 1)[0]
    if family == "auth":
        return 3002
    if family in ("user", "password", "mfa"):
        return 3001
    if family == "permission":
        return 3005
    if family == "security":
        return 2004
    return 6003


def activity_of(class_uid: int, event_type: str, action: str) -> tuple[int, str]:
    name = f"{event_type.rpartition('.')[2]} {action}".lower()
    for words, activity, label in _ACTIVITIES[class_uid]:
        if any(w in name for w in words):
            return activity, label
    return OTHER, "Other"


def ocsf_doc(s: StoredEvent) -> dict[str, Any]:
    """The OCSF event of a stored event."""
    e, r = s.event, s.receipt
    class_uid = class_of(e.event_type)
    class_name, category_uid, category_name = CLASSES[class_uid]
    activity_id, activity_name = activity_of(class_uid, e.event_type, e.action)
    sev = severity(e)
    result = outcome(e.result)
    status_id = 1 if result == SUCCESS else 2 if result == FAILURE else 0
    user: dict[str, Any] = {}
    if e.user_id:
        user["uid"] = e.user_id
    if e.username:
        user["name"] = e.username
    endpoint: dict[str, Any] = {} if e.ip_address is None else {"ip": str(e.ip_address)}
    doc: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": sev,
        "severity": SEVERITY_NAMES[sev],
        "time": millis(e.event_time),
        "status_id": status_id,
        "status": {1: "Success", 2: "Failure"}.get(status_id, "Unknown"),
        "status_detail": e.result,
        "message": f"{e.event_type} {e.result}".strip(),
        "actor": {"user": dict(user), "app_name": e.service} if user else {"app_name": e.service},
        "src_endpoint": endpoint,
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": str(e.event_id),
            "sequence": r.seq,
            "log_name": r.chain_id,
            "logged_time": millis(e.receive_time),
            "event_code": e.event_type,
            "labels": list(e.compliance_tags),
        },
        "unmapped": {
            "auditmesh": {
                "format": OCSF_TAG,
                "chain_id": r.chain_id,
                "seq": r.seq,
                "hash": r.hash.hex(),
                "prev_hash": r.prev_hash.hex(),
                "event_type": e.event_type,
                "action": e.action,
                "details": e.details,
                "compliance_tags": list(e.compliance_tags),
                "data_classification": e.data_classification,
                "principal": e.principal,
            }
        },
    }
    if e.user_agent:
        doc["http_request"] = {"user_agent": e.user_agent}
    if class_uid != 2004:
        doc["user"] = user
    if class_uid == 3002:
        doc["is_mfa"] = bool(e.details.get("mfa_used", False))
        session = e.details.get("session_id")
        if isinstance(session, str) and session:
            doc["session"] = {"uid": session}
        doc["service"] = {"name": e.service}
    elif class_uid == 3005:
        doc["privileges"] = _privileges(e.details, e.action)
    elif class_uid == 2004:
        doc["finding_info"] = {"uid": str(e.event_id), "title": e.event_type,
                               "types": [e.action or e.event_type]}  # fmt: skip
    elif class_uid == 6003:
        doc["api"] = {"operation": e.action or e.event_type, "service": {"name": e.service}}
    return doc


def _privileges(details: dict[str, Any], action: str) -> list[str]:
    """What was granted or revoked: details' permission(s)/role(s), else the action."""
    found: list[str] = []
    for key in ("permission", "permissions", "role", "roles", "privileges"):
        value = details.get(key)
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, str) and v)
    return found or [action or "unknown"]


OCSF = register(Format("ocsf", "application/x-ndjson; charset=utf-8", "ocsf.ndjson",
                       json_line(ocsf_doc)))  # fmt: skip
