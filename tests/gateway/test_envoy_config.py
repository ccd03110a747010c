"""envoy/envoy.yaml: generated from the gateway's own listeners.toml, and valid Envoy config.

Envoy cannot be installed on this machine, so the file is parsed into Envoy's
`envoy.config.bootstrap.v3.Bootstrap` message with xds-protos (Envoy's config protos
for Python). xds-protos overwrites googleapis-common-protos' google/api files, so it
lives in its own virtualenv, .venv-envoy (scripts/setup_envoy_venv.sh, run by
`make setup` and here), and the checker runs there as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway import load_config
from gateway.descriptors import Descriptors
from gateway.routes import build_routes
from gateway.settings import default_descriptor_set

ROOT = Path(__file__).resolve().parents[2]
ENVOY_PYTHON = ROOT / ".venv-envoy" / "bin" / "python"


@pytest.fixture(scope="module")
def envoy_python() -> Path:
    subprocess.run([str(ROOT / "scripts" / "setup_envoy_venv.sh")], check=True, cwd=ROOT)
    return ENVOY_PYTHON


def check(envoy_python: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(envoy_python),
            str(ROOT / "scripts" / "check_envoy_config.py"),
            str(config),
            str(ROOT / "gen" / "auditmesh.binpb"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_envoy_yaml_is_what_listeners_toml_generates() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_envoy.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_envoy_yaml_is_a_bootstrap_with_the_gateways_listeners(envoy_python: Path) -> None:
    result = check(envoy_python, ROOT / "envoy" / "envoy.yaml")
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    mesh = load_config()
    listeners = {x["name"]: x for x in summary["listeners"]}
    clusters = {c["name"]: c for c in summary["clusters"]}
    assert set(listeners) == {x.name for x in mesh.listeners} == {"audit", "user"}

    for want in mesh.listeners:
        got = listeners[want.name]
        assert got["port"] == want.port
        assert got["http_filters"] == [
            "envoy.filters.http.compressor",  # gzip of exports only (per-route off elsewhere)
            "envoy.filters.http.grpc_json_transcoder",
            "envoy.filters.http.router",
        ]
        assert got["services"] == list(want.services)
        assert got["services_missing_from_descriptor_set"] == []
        assert got["proto_descriptor"] == mesh.envoy.descriptor_path
        assert got["convert_grpc_status"] is True
        assert got["reject_unknown_method"] and got["reject_unknown_query_parameters"]
        assert got["max_request_body_size"] == mesh.transcoding.max_request_body_bytes
        assert got["use_remote_address"] and got["request_id_in_response"]
        options = got["print_options"]
        assert options["preserve_proto_field_names"] == mesh.transcoding.preserve_proto_field_names
        assert options["always_print_primitive_fields"] == (
            mesh.transcoding.always_print_primitive_fields
        )
        assert options["stream_newline_delimited"] is (mesh.transcoding.stream_format == "ndjson")

        cluster = clusters[f"{want.name}_grpc"]
        assert cluster["http2"] is True
        assert f"{cluster['address']}:{cluster['port']}" == want.envoy_target

        routes = got["routes"]
        assert routes[0]["direct_response_file"] == f"{mesh.envoy.openapi_dir}/{want.name}.json"
        prefixes = {r["match"].get("prefix"): r for r in routes if "prefix" in r["match"]}
        assert set(prefixes) == {f"/{s}/" for s in want.services}
        assert {r["cluster"] for r in prefixes.values()} == {cluster["name"]}

    # The live tail and exports have no route timeout; everything else has the configured default.
    descriptors = Descriptors.load(default_descriptor_set())
    streaming = {
        r.grpc_path
        for r in build_routes(descriptors, mesh.listener("audit").services)
        if r.streaming
    }
    assert streaming == {"/audit.v2.AuditService/Watch", "/audit.v2.AuditService/ExportEvents"}
    audit_routes = {r["match"].get("path"): r for r in listeners["audit"]["routes"]}
    assert audit_routes["/audit.v2.AuditService/Watch"]["timeout"] == "0s"
    assert audit_routes["/audit.v2.AuditService/ExportEvents"]["timeout"] == "0s"
    assert {r["timeout"] for r in listeners["audit"]["routes"] if "prefix" in r["match"]} == {
        f"{mesh.transcoding.default_timeout_seconds:g}s"
    }


def test_a_broken_envoy_yaml_is_refused(envoy_python: Path, tmp_path: Path) -> None:
    text = (ROOT / "envoy" / "envoy.yaml").read_text()
    broken = tmp_path / "envoy.yaml"
    broken.write_text(text.replace("convert_grpc_status: true", "convert_grpc_statuz: true"))

    result = check(envoy_python, broken)

    assert result.returncode == 1
    assert "convert_grpc_statuz" in result.stderr
