"""The contracts as users meet them: generated code, JSON, REST rules, buf lint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, json_format

from audit.v1 import audit_service_pb2 as v1
from audit.v2 import audit_service_pb2 as v2
from audit.v2 import event_pb2
from devstack.events import GUIDE_EVENT

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = ROOT / "gen" / "auditmesh.binpb"


def http_rules() -> dict[str, tuple[http_pb2.HttpRule, descriptor_pb2.DescriptorProto]]:
    """Every method's HttpRule in the descriptor set, keyed by full method name."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    messages = {f".{f.package}.{m.name}": m for f in fds.file for m in f.message_type}
    rules = {}
    for f in fds.file:
        for service in f.service:
            for method in service.method:
                if method.options.HasExtension(annotations_pb2.http):
                    rule = method.options.Extensions[annotations_pb2.http]
                    name = f"{f.package}.{service.name}/{method.name}"
                    rules[name] = (rule, messages[method.input_type])
    return rules


def bindings(rule: http_pb2.HttpRule) -> list[tuple[str, str]]:
    """(verb, path) of a rule and of its additional bindings."""
    out = []
    for r in [rule, *rule.additional_bindings]:
        verb = r.WhichOneof("pattern")
        assert verb is not None
        out.append((verb, getattr(r, verb)))
    return out


def test_guide_event_json_parses_unchanged_and_round_trips() -> None:
    event = json_format.Parse(json.dumps(GUIDE_EVENT), event_pb2.AuditEvent())

    assert event.event_type == "auth.login_success"
    assert event.details["session_id"] == "sess_123"
    assert event.details["mfa_used"] is False
    assert list(event.compliance_tags) == ["SOX", "GDPR"]
    assert json_format.MessageToDict(event, preserving_proto_field_name=True) == GUIDE_EVENT


def test_unknown_event_field_is_refused_by_name() -> None:
    with pytest.raises(json_format.ParseError, match="severity"):
        json_format.Parse(json.dumps({**GUIDE_EVENT, "severity": "high"}), event_pb2.AuditEvent())


@pytest.mark.parametrize(
    ("method", "verb", "path"),
    [
        ("audit.v2.AuditService/Query", "get", "/api/v2/events/query"),
        ("audit.v2.AuditService/Health", "get", "/api/v2/events/health"),
        ("audit.v2.AuditService/Ingest", "post", "/api/v2/events"),
        ("audit.v2.AuditService/IngestBatch", "post", "/api/v2/events/batch"),
        ("audit.v1.AuditLogService/SearchLogs", "get", "/api/v1/audit/logs"),
        (
            "audit.v1.AuditLogService/GetDashboardStatistics",
            "get",
            "/api/v1/audit/statistics/dashboard",
        ),
        ("user.v1.UserService/Health", "get", "/health"),
    ],
)
def test_design_rest_paths_are_bound(method: str, verb: str, path: str) -> None:
    rule, _ = http_rules()[method]
    assert (verb, path) in bindings(rule)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("audit.v2.AuditService/Query", ["event_type", "user_id", "limit"]),
        ("audit.v1.AuditLogService/SearchLogs", ["event_type", "limit"]),
        ("audit.v1.AuditLogService/GetDashboardStatistics", ["time_range"]),
    ],
)
def test_design_query_parameters_are_request_fields(method: str, params: list[str]) -> None:
    _, request = http_rules()[method]
    fields = {f.name for f in request.field}
    assert set(params) <= fields


def test_event_post_body_is_the_event_itself() -> None:
    rule, _ = http_rules()["audit.v2.AuditService/Ingest"]
    assert rule.body == "event"


def test_every_rpc_of_the_contract_is_generated() -> None:
    audit_methods = set(v2.DESCRIPTOR.services_by_name["AuditService"].methods_by_name)
    assert audit_methods == {
        "Ingest",
        "IngestBatch",
        "StreamIngest",
        "Query",
        "GetEvent",
        "GetStatistics",
        "Health",
        "Watch",
        "VerifyIntegrity",
        "ListCheckpoints",
        "GetPublicKey",
        "GetCheckpoint",
        "GetInclusionProof",
        "GetConsistencyProof",
        "ExportEvents",
        "EraseSubject",
        "PlaceLegalHold",
        "LiftLegalHold",
        "ListLegalHolds",
    }
    stream = v2.DESCRIPTOR.services_by_name["AuditService"].methods_by_name["StreamIngest"]
    assert stream.client_streaming and stream.server_streaming
    legacy = set(v1.DESCRIPTOR.services_by_name["AuditLogService"].methods_by_name)
    assert legacy == {"SearchLogs", "GetDashboardStatistics"}


def test_descriptor_set_carries_source_comments() -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    event_file = next(f for f in fds.file if f.name == "audit/v2/event.proto")
    comments = [loc.leading_comments for loc in event_file.source_code_info.location]
    assert any("Idempotency key" in c for c in comments)


def buf_lint(workspace: Path) -> subprocess.CompletedProcess[str]:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    assert buf, "buf is installed by `make setup` (PyPI buf-bin)"
    return subprocess.run([buf, "lint"], cwd=workspace, capture_output=True, text=True)


def test_buf_lint_is_clean() -> None:
    done = buf_lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_buf_lint_config_demands_comments(tmp_path: Path) -> None:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    bad = tmp_path / "protos" / "demo" / "v1"
    bad.mkdir(parents=True)
    (bad / "demo.proto").write_text(
        'syntax = "proto3";\npackage demo.v1;\nmessage Thing {\n  string name = 1;\n}\n'
    )
    done = buf_lint(tmp_path)
    assert done.returncode != 0
    assert "COMMENT_MESSAGE" in done.stdout or "comment" in done.stdout.lower()
