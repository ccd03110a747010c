"""Elastic Common Schema (ECS 8.11) documents, one JSON object per line:
`@timestamp`, `event.*` (id, kind, category, type, action, outcome, created,
sequence, dataset), `user.id`/`user.name`, `source.ip`, `user_agent.original`,
`service.name`, `tags` (compliance tags), `labels` (chain, classification, and
`auditmesh_format`: `auditmesh.ecs/1`), and under `auditmesh` what ECS has no field
for (details, receipt hash and prev_hash, writer).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from audit_svc.formats.base import Format, json_line, register, version_tag
from audit_svc.formats.classify import outcome
from audit_svc.model import StoredEvent

ECS_VERSION = "8.11.0"
ECS_TAG = version_tag("ecs")

_CATEGORY = {"auth": "authentication", "user": "iam", "password": "iam", "mfa": "iam",
             "permission": "iam", "security": "intrusion_detection", "audit": "api"}  # fmt: skip
# Words of the action -> ECS event.type (allowed values), first match wins.
_TYPES = (
    (("logout", "logoff"), "end"),
    (("login", "logon"), "start"),
    (("created", "create", "add"), "creation"),
    (("deleted", "delete", "remove"), "deletion"),
    (("granted", "assigned", "revoked"), "change"),
    (("updated", "changed", "locked", "enabled", "disabled", "reset"), "change"),
    (("read", "query", "get", "export"), "access"),
)


def _types(family: str, name: str) -> list[str]:
    found = next((t for words, t in _TYPES if any(w in name for w in words)), "info")
    if family in ("user", "password", "mfa"):
        return [found, "user"] if found != "info" else ["user"]
    if family == "security":
        return ["indicator"]
    return [found]


def ecs_doc(s: StoredEvent) -> dict[str, Any]:
    """The ECS document of a stored event."""
    e, r = s.event, s.receipt
    family = e.event_type.split(".", 1)[0]
    name = f"{e.event_type.rpartition('.')[2]} {e.action}".lower()
    doc: dict[str, Any] = {
        "@timestamp": e.event_time.astimezone(UTC).isoformat(timespec="microseconds"),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "id": str(e.event_id),
            "kind": "alert" if family == "security" else "event",
            "category": [_CATEGORY.get(family, "api")],
            "type": _types(family, name),
            "action": e.event_type,
            "outcome": outcome(e.result),
            "created": e.receive_time.astimezone(UTC).isoformat(timespec="microseconds"),
            "sequence": r.seq,
            "dataset": "auditmesh.audit",
            "module": "auditmesh",
            "provider": e.service,
        },
        "service": {"name": e.service},
        "tags": list(e.compliance_tags),
        "labels": {
            "chain_id": r.chain_id,
            "data_classification": e.data_classification,
            "auditmesh_format": ECS_TAG,
        },  # fmt: skip
        "auditmesh": {
            "action": e.action,
            "result": e.result,
            "details": e.details,
            "hash": r.hash.hex(),
            "prev_hash": r.prev_hash.hex(),
            "principal": e.principal,
        },  # fmt: skip
    }
    user: dict[str, Any] = {}
    if e.user_id:
        user["id"] = e.user_id
    if e.username:
        user["name"] = e.username
    if user:
        doc["user"] = user
    if e.ip_address is not None:
        doc["source"] = {"ip": str(e.ip_address)}
    if e.user_agent:
        doc["user_agent"] = {"original": e.user_agent}
    return doc


ECS = register(Format("ecs", "application/x-ndjson; charset=utf-8", "ecs.ndjson",
                      json_line(ecs_doc)))  # fmt: skip
