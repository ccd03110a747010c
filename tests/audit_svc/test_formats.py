"""The SIEM formats of stored events: OCSF documents valid against the OCSF 1.5.0
schema for every family of event type, CEF escaping on hostile input, ECS field
names, CSV cells, and a format version in each output."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from audit_svc.formats import by_name, cef_line, ecs_doc, ocsf_doc
from audit_svc.model import Event, Receipt, StoredEvent
from tests.testkit.siem import check_ocsf, split_cef

WHEN = datetime(2026, 12, 3, 6, 0, 0, 123456, tzinfo=UTC)


def stored(**changes: Any) -> StoredEvent:
    fields: dict[str, Any] = {
        "event_id": uuid.UUID("01938a3e-0000-7000-8000-000000000001"),
        "event_type": "auth.login_success", "user_id": "user123", "username": "johndoe",
        "ip_address": ipaddress.ip_address("192.168.1.100"), "user_agent": "Mozilla/5.0",
        "service": "user-service", "action": "login_success", "result": "success",
        "details": {"mfa_used": True, "session_id": "sess_123"},
        "compliance_tags": ("SOX", "GDPR"), "data_classification": "internal",
        "event_time": WHEN, "receive_time": WHEN, "principal": "spiffe://auditmesh.local/u",
    }  # fmt: skip
    fields.update(changes)
    return StoredEvent(Event(**fields), Receipt("chain-1", 42, b"\x01" * 32, b"\x02" * 32))


# (event_type, action, result) -> (class_uid, activity_id)
CASES = [
    ("auth.login_success", "login_success", "success", 3002, 1),
    ("auth.login_failed", "login_failed", "failure", 3002, 1),
    ("auth.logout", "logout", "success", 3002, 2),
    ("auth.token_refresh", "token_refresh", "success", 3002, 99),
    ("user.user_created", "user_created", "success", 3001, 1),
    ("user.user_updated", "user_updated", "success", 3001, 99),
    ("user.user_deleted", "user_deleted", "success", 3001, 6),
    ("user.user_locked", "user_locked", "success", 3001, 9),
    ("password.password_changed", "password_changed", "success", 3001, 3),
    ("password.password_reset_requested", "password_reset_requested", "success", 3001, 4),
    ("mfa.mfa_enabled", "mfa_enabled", "success", 3001, 10),
    ("mfa.mfa_disabled", "mfa_disabled", "success", 3001, 11),
    ("mfa.mfa_verified", "mfa_verified", "success", 3001, 99),
    ("permission.permission_granted", "permission_granted", "success", 3005, 1),
    ("permission.role_assigned", "role_assigned", "success", 3005, 1),
    ("permission.role_removed", "role_removed", "success", 3005, 2),
    ("security.suspicious_activity", "suspicious_activity", "detected", 2004, 1),
    ("security.rate_limit_exceeded", "rate_limit_exceeded", "blocked", 2004, 1),
    ("audit.read", "Query", "success", 6003, 2),
    ("billing.invoice_paid", "invoice_paid", "success", 6003, 99),
]


@pytest.mark.parametrize(("event_type", "action", "result", "class_uid", "activity"), CASES)
def test_ocsf_class_per_event_type_is_valid_ocsf(
    event_type: str, action: str, result: str, class_uid: int, activity: int
) -> None:
    doc = ocsf_doc(stored(event_type=event_type, action=action, result=result))
    check_ocsf(doc)  # the OCSF 1.5.0 schema of the class
    assert (doc["class_uid"], doc["activity_id"]) == (class_uid, activity)
    assert doc["type_uid"] == class_uid * 100 + activity
    assert doc["metadata"]["uid"] == "01938a3e-0000-7000-8000-000000000001"
    assert doc["metadata"]["product"]["name"] == "auditmesh"
    receipt = doc["unmapped"]["auditmesh"]
    assert (receipt["seq"], receipt["hash"]) == (42, "01" * 32)
    assert receipt["format"] == "auditmesh.ocsf/1"
    assert doc["time"] == int(WHEN.timestamp() * 1000)


def test_ocsf_fields_of_a_login() -> None:
    doc = ocsf_doc(stored(ip_address=ipaddress.ip_address("2001:db8::1"), result="failure"))
    assert doc["src_endpoint"] == {"ip": "2001:db8::1"}
    assert doc["user"] == {"uid": "user123", "name": "johndoe"}
    assert doc["actor"]["user"] == {"uid": "user123", "name": "johndoe"}
    assert (doc["status_id"], doc["status"], doc["severity_id"]) == (2, "Failure", 2)
    assert doc["is_mfa"] is True and doc["session"] == {"uid": "sess_123"}
    # An event without user or address is still a valid Authentication.
    bare = ocsf_doc(stored(user_id="", username="", ip_address=None, user_agent=""))
    check_ocsf(bare)


NASTY = 'a|b\\c=d\ne\rf "quoted" ]end'


def test_cef_escapes_hostile_header_and_extension_values() -> None:
    event = stored(
        event_type="x.a|b\\c", action="do|it\\now\n", username=NASTY, user_agent="k=v\\",
        details={"note": "line1\nline2", "eq": "a=b"},
    )  # fmt: skip
    line = cef_line(event)
    assert "\n" not in line and "\r" not in line
    header, ext = split_cef(line)
    assert header[:4] == ["CEF:0", "auditmesh", "audit-service", header[3]]
    assert header[4] == "x.a|b\\c"  # pipes and backslashes survive the round trip
    assert header[5] == "do|it\\now "  # a line break in a header becomes a space
    assert header[6] == "3"
    assert ext["suser"] == NASTY
    assert ext["requestClientApplication"] == "k=v\\"
    assert json.loads(ext["msg"]) == {"note": "line1\nline2", "eq": "a=b"}
    assert ext["externalId"] == "01938a3e-0000-7000-8000-000000000001"
    assert (ext["cs1"], ext["cn1"], ext["cs2"]) == ("chain-1", "42", "01" * 32)
    assert ext["cs6Label"] == "format" and ext["cs6"] == "auditmesh.cef/1"
    assert "\\=" in line and "\\|" in line and "\\n" in line


def test_ecs_field_names() -> None:
    doc = ecs_doc(stored(result="failure"))
    assert doc["@timestamp"] == "2026-12-03T06:00:00.123456+00:00"
    assert doc["event"]["id"] == "01938a3e-0000-7000-8000-000000000001"
    assert doc["event"]["category"] == ["authentication"]
    assert doc["event"]["type"] == ["start"]
    assert doc["event"]["outcome"] == "failure"
    assert doc["event"]["sequence"] == 42
    assert doc["user"] == {"id": "user123", "name": "johndoe"}
    assert doc["source"] == {"ip": "192.168.1.100"}
    assert doc["user_agent"] == {"original": "Mozilla/5.0"}
    assert doc["ecs"]["version"].startswith("8.")
    assert doc["labels"]["auditmesh_format"] == "auditmesh.ecs/1"
    assert doc["tags"] == ["SOX", "GDPR"]


def test_csv_has_a_header_and_defuses_formulas() -> None:
    fmt = by_name("csv")
    assert fmt is not None
    text = (
        fmt.header + "\n" + fmt.line(stored(username="=HYPERLINK(1)", user_agent='a,b"c')).decode()
    )
    header, row = list(csv.reader(io.StringIO(text)))
    cells = dict(zip(header, row, strict=True))
    assert cells["format"] == "auditmesh.csv/1"
    assert cells["username"] == "'=HYPERLINK(1)"
    assert cells["user_agent"] == 'a,b"c'
    assert json.loads(cells["details"]) == {"mfa_used": True, "session_id": "sess_123"}
    assert (cells["seq"], cells["hash"]) == ("42", "01" * 32)


def test_ndjson_line_is_the_stored_event_with_its_version() -> None:
    fmt = by_name("ndjson")
    assert fmt is not None
    doc = json.loads(fmt.line(stored()))
    assert doc["format"] == "auditmesh.ndjson/1"
    assert (doc["event_id"], doc["seq"], doc["hash"]) == (
        "01938a3e-0000-7000-8000-000000000001", 42, "01" * 32,
    )  # fmt: skip
