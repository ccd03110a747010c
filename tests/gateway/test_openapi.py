"""The OpenAPI documents: paths, parameters and schemas from the descriptors, the
proto comments as descriptions, and the same document Envoy serves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.gateway.harness import Everything, Mesh

ROOT = Path(__file__).resolve().parents[2]


def refs(node: Any) -> set[str]:
    """Every $ref in a document."""
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def check_consistent(spec: dict[str, Any]) -> None:
    """Every $ref resolves; every {param} of a path is declared, and nothing more."""
    schemas = spec["components"]["schemas"]
    for ref in refs(spec):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    for path, operations in spec["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        for op in operations.values():
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == in_path, (path, declared)
            assert op["operationId"] and op["responses"]["default"]


async def test_audit_document(mesh: Mesh) -> None:
    spec = (await mesh.audit.get("/openapi.json")).json()
    check_consistent(spec)
    assert spec["info"]["title"] == "audit-service REST API"
    paths = spec["paths"]
    assert set(paths) == {
        "/api/v2/events", "/api/v2/events/batch", "/api/v2/events/query",
        "/api/v2/events/{event_id}", "/api/v2/events/statistics", "/api/v2/events/health",
        "/api/v2/events/watch", "/api/v2/integrity/verify", "/api/v2/integrity/checkpoints",
        "/api/v2/integrity/public-key", "/api/v1/audit/logs", "/api/v1/audit/statistics/dashboard",
        "/api/v2/integrity/checkpoint", "/api/v2/integrity/inclusion-proof",
        "/api/v2/integrity/consistency-proof", "/api/v2/events:export",
        "/api/v2/privacy/erasures", "/api/v2/privacy/holds", "/api/v2/privacy/holds/{hold_id}:lift",
    }  # fmt: skip

    query = paths["/api/v2/events/query"]["get"]
    assert query["summary"] == "Finds events, newest first, a page at a time."
    params = {p["name"]: p for p in query["parameters"]}
    assert params["event_type"]["in"] == "query"
    assert params["event_type"]["description"].startswith("Exact type such as `auth.login_success`")
    assert params["limit"]["schema"] == {"type": "integer", "format": "int32"}
    assert params["start_time"]["schema"] == {"type": "string", "format": "date-time"}

    get = paths["/api/v2/events/{event_id}"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in get["parameters"]] == [
        ("event_id", "path", True)
    ]

    ingest = paths["/api/v2/events"]["post"]
    body = ingest["requestBody"]["content"]["application/json"]["schema"]
    assert body["allOf"] == [{"$ref": "#/components/schemas/audit.v2.AuditEvent"}]
    assert ingest["parameters"] == []  # the only field is the body

    event = spec["components"]["schemas"]["audit.v2.AuditEvent"]
    assert event["description"].startswith("One security-relevant action")
    assert "event_type" in event["required"] and "receipt" not in event["required"]
    props = event["properties"]
    assert props["details"]["type"] == "object"
    assert props["compliance_tags"]["type"] == "array"
    assert props["receive_time"]["readOnly"] is True
    receipt = spec["components"]["schemas"]["audit.v2.Receipt"]["properties"]
    assert receipt["seq"]["type"] == "string" and receipt["seq"]["format"] == "int64"
    outcome = spec["components"]["schemas"]["audit.v2.EventResult"]["properties"]["outcome"]
    assert "OUTCOME_STORED" in outcome["enum"]

    watch = paths["/api/v2/events/watch"]["get"]["responses"]["200"]["content"]
    assert set(watch) == {"application/json", "application/x-ndjson", "text/event-stream"}
    assert watch["application/json"]["schema"]["type"] == "array"


async def test_envoy_serves_the_same_documents(mesh: Mesh) -> None:
    for name, http in (("audit", mesh.audit), ("user", mesh.user)):
        served = (await http.get("/openapi.json")).json()
        generated = json.loads((ROOT / "envoy" / "openapi" / f"{name}.json").read_text())
        assert served == generated


async def test_rule_features_in_the_document(everything: Everything) -> None:
    spec = (await everything.http.get("/openapi.json")).json()
    check_consistent(spec)
    paths = spec["paths"]

    resource = paths["/v1/{name}"]["get"]
    [name] = resource["parameters"][:1]
    assert name["description"].endswith("Matches `projects/*/items/*`.")
    assert set(paths["/v1/{name}:archive"]) == {"post"}
    assert set(paths["/v1/everything/{string_value}"]) == {"get", "put", "delete"}
    assert paths["/v1/everything/{string_value}:probe"]["options"]["operationId"] == (
        "EverythingService_Echo7"
    )

    echo = {p["name"]: p for p in paths["/v1/everything/{string_value}"]["get"]["parameters"]}
    assert echo["repeated_strings"]["schema"]["type"] == "array"
    assert echo["nested.deep.note"]["in"] == "query"
    assert echo["color"]["schema"]["enum"] == ["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN"]
    assert echo["wrapped_int"]["schema"] == {"type": "integer", "format": "int32", "nullable": True}
    assert "labels" not in echo and "nested_list" not in echo  # not settable from a URL

    put = paths["/v1/everything/{string_value}"]["put"]
    assert "nested.name" not in {p["name"] for p in put["parameters"]}  # in the body
    schema = put["requestBody"]["content"]["application/json"]["schema"]
    assert schema["allOf"] == [{"$ref": "#/components/schemas/gwtest.v1.Nested"}]

    fields = spec["components"]["schemas"]["gwtest.v1.Everything"]["properties"]
    assert fields["renamed"]["description"] == "A field with a custom JSON name."
    assert fields["labels"]["additionalProperties"] == {"type": "string"}
