"""Transcoding conformance on the test-only EverythingService (modelled on grpc-gateway's
a_bit_of_everything.proto): each REST request is checked against the exact gRPC
request the real upstream received, and the JSON response is checked too."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from tests.gateway.harness import Everything, EverythingFactory
from tests.gateway.rest import error_of


def expected(everything: Everything, data: dict[str, Any], name: str = "Everything") -> Any:
    """The request the upstream should get, built by protobuf's own JSON parser."""
    return json_format.ParseDict(data, everything.server.message(name))


async def test_query_parameters_of_every_kind(everything: Everything) -> None:
    query = (
        "int32_value=-5&int64_value=9007199254740993&uint64_value=18446744073709551615"
        "&double_value=1.5&float_value=2.5&bool_value=true&bytes_value=aGk&sint_value=-3"
        "&color=COLOR_RED&repeated_strings=a&repeated_strings=b%20c&repeated_ints=1"
        "&repeated_ints=2&repeated_colors=COLOR_GREEN&repeated_colors=1"
        "&nested.name=n&nested.amount=7&nested.color=2&nested.deep.note=deep"
        "&timestamp=2026-03-01T12:00:00Z&duration=1.5s&wrapped_int=0&wrapped_string="
        "&wrapped_bool=false&mask=nested.name,repeatedStrings&customName=renamed"
    )
    response = await everything.http.get(f"/v1/everything/hello%20world?{query}")

    assert response.status_code == 200, response.text
    want = expected(
        everything,
        {
            "string_value": "hello world",
            "int32_value": -5,
            "int64_value": "9007199254740993",
            "uint64_value": "18446744073709551615",
            "double_value": 1.5,
            "float_value": 2.5,
            "bool_value": True,
            "bytes_value": "aGk=",
            "sint_value": -3,
            "color": "COLOR_RED",
            "repeated_strings": ["a", "b c"],
            "repeated_ints": ["1", "2"],
            "repeated_colors": ["COLOR_GREEN", "COLOR_RED"],
            "nested": {
                "name": "n",
                "amount": "7",
                "color": "COLOR_GREEN",
                "deep": {"note": "deep"},
            },
            "timestamp": "2026-03-01T12:00:00Z",
            "duration": "1.5s",
            "wrapped_int": 0,
            "wrapped_string": "",
            "wrapped_bool": False,
            "mask": "nested.name,repeatedStrings",
            "renamed": "renamed",
        },
    )
    assert everything.server.last.method == "Echo"
    assert everything.server.last.request == want
    body = response.json()
    assert body["int64_value"] == "9007199254740993"
    assert body["uint64_value"] == "18446744073709551615"
    assert body["repeated_ints"] == ["1", "2"]
    assert body["bytes_value"] == "aGk="
    assert body["repeated_colors"] == ["COLOR_GREEN", "COLOR_RED"]
    assert body["nested"]["amount"] == "7"
    assert body["duration"] == "1.500s"
    assert body["wrapped_int"] == 0 and body["wrapped_bool"] is False
    assert body["mask"] == "nested.name,repeatedStrings"
    assert body["renamed"] == "renamed"  # preserve_proto_field_names: not "customName"


async def test_literal_segments_win_over_variables(everything: Everything) -> None:
    assert (await everything.http.get("/v1/everything/special")).status_code == 200
    assert everything.server.last.method == "Special"
    assert (await everything.http.get("/v1/everything/specialx")).status_code == 200
    assert everything.server.last.method == "Echo"
    assert everything.server.last.request.string_value == "specialx"


async def test_additional_bindings_and_named_body_fields(everything: Everything) -> None:
    http, server = everything.http, everything.server

    put = await http.put(
        "/v1/everything/abc?int32_value=3", json={"name": "n", "amount": "12", "color": 1}
    )
    assert put.status_code == 200, put.text
    assert server.last.request == expected(
        everything,
        {
            "string_value": "abc",
            "int32_value": 3,
            "nested": {"name": "n", "amount": 12, "color": 1},
        },
    )

    patch = await http.patch("/v1/everything/nm/amounts/-4", json={"env": "prod", "tier": "1"})
    assert patch.status_code == 200, patch.text
    assert server.last.request == expected(
        everything, {"nested": {"name": "nm", "amount": -4}, "labels": {"env": "prod", "tier": "1"}}
    )
    assert patch.json()["labels"] == {"env": "prod", "tier": "1"}

    delete = await http.delete("/v1/everything/gone")
    assert delete.status_code == 200 and server.last.request.string_value == "gone"

    peek = await http.get("/v1/things/a%20note/42:peek")
    assert peek.status_code == 200, peek.text
    assert server.last.request == expected(
        everything, {"nested": {"deep": {"note": "a note"}}, "int64_value": 42}
    )

    probe = await http.request("OPTIONS", "/v1/everything/x:probe")
    assert probe.status_code == 200 and server.last.request.string_value == "x"


async def test_body_star_takes_the_whole_request(everything: Everything) -> None:
    data = {
        "string_value": "s",
        "int64_value": "-9",
        "nested_list": [{"name": "a"}, {"name": "b", "deep": {"note": "x"}}],
        "attributes": {"mfa_used": False, "attempts": 3, "tags": ["a", None]},
        "labels": {"k": "v"},
        "timestamp": "2026-03-01T12:00:00.250+02:00",
        "customName": "via json name",
        "wrapped_string": "w",
    }
    response = await everything.http.post("/v1/everything", json=data)

    assert response.status_code == 200, response.text
    assert everything.server.last.request == expected(everything, data)
    body = response.json()
    assert body["attributes"] == {"mfa_used": False, "attempts": 3, "tags": ["a", None]}
    assert body["timestamp"] == "2026-03-01T10:00:00.250Z"
    assert body["nested_list"][1] == {"name": "b", "deep": {"note": "x"}}


async def test_resource_name_patterns(everything: Everything) -> None:
    http, server = everything.http, everything.server

    got = await http.get("/v1/projects/p1/items/i%2F1")
    assert got.status_code == 200
    assert got.json() == {"name": "projects/p1/items/i%2F1", "filter": "GetResource"}

    assert (await http.get("/v1/projects/p1/items")).status_code == 404
    assert (await http.get("/v1/projects/p1/items/i1/more")).status_code == 404

    file = await http.get("/v1/files/a/b%20c/d%2Fe.txt?filter=f")
    assert file.status_code == 200
    assert server.last.method == "GetFile"
    # Across segments, reserved characters stay escaped (Envoy's default).
    assert server.last.request == expected(
        everything, {"name": "a/b c/d%2Fe.txt", "filter": "f"}, "ResourceRequest"
    )

    meta = await http.get("/v1/files/a/b/meta")
    assert meta.json() == {"name": "a/b", "filter": "GetFileMeta"}

    root = await http.get("/v1/files")
    assert root.status_code == 200 and server.last.method == "GetFile"


async def test_custom_verbs(everything: Everything) -> None:
    http = everything.http
    archived = await http.post("/v1/projects/p1:archive", json={"filter": "old"})
    assert archived.json() == {"name": "projects/p1", "filter": "Archive"}
    assert everything.server.last.request.filter == "old"

    restored = await http.post("/v1/projects/p1:restore", json={})
    assert restored.json() == {"name": "projects/p1", "filter": "Restore"}

    unknown = await http.post("/v1/projects/p1:explode", json={})
    assert unknown.status_code == 404
    assert error_of(unknown)[:2] == (5, "NO_ROUTE")


async def test_single_segment_variables_are_fully_decoded(everything: Everything) -> None:
    response = await everything.http.get("/v1/everything/a%2Fb%3Fc%25")
    assert response.status_code == 200
    assert everything.server.last.request.string_value == "a/b?c%"


async def test_unknown_and_invalid_query_parameters_are_named(everything: Everything) -> None:
    http = everything.http

    unknown = await http.get("/v1/everything/x?nope=1&nested.nope=2&int32_value=3")
    assert unknown.status_code == 400
    assert error_of(unknown) == (3, "UNKNOWN_QUERY_PARAMETER", ["nope", "nested.nope"])

    invalid = await http.get(
        "/v1/everything/x?int32_value=abc&color=PURPLE&timestamp=yesterday&nested=1"
        "&string_value=y&int64_value=99999999999999999999"
    )
    assert invalid.status_code == 400
    code, reason, fields = error_of(invalid)
    assert (code, reason) == (3, "INVALID_QUERY_PARAMETER")
    assert fields == [
        "int32_value", "color", "timestamp", "nested", "string_value", "int64_value"
    ]  # fmt: skip

    star = await http.post("/v1/everything?int32_value=1", json={})
    assert star.status_code == 400
    assert error_of(star) == (3, "INVALID_QUERY_PARAMETER", ["int32_value"])

    inside_body = await http.put("/v1/everything/x?nested.name=y", json={})
    assert error_of(inside_body) == (3, "INVALID_QUERY_PARAMETER", ["nested.name"])
    assert everything.server.received == []


async def test_unknown_and_invalid_json_fields_are_named(everything: Everything) -> None:
    http = everything.http

    unknown = await http.post(
        "/v1/everything",
        json={"bogus": 1, "nested": {"name": "n", "nope": 2}, "nested_list": [{}, {"x": 1}]},
    )
    assert unknown.status_code == 400
    assert error_of(unknown) == (
        3,
        "UNKNOWN_FIELD",
        ["bogus", "nested.nope", "nested_list[1].x"],
    )

    named = await http.put("/v1/everything/x", json={"name": "n", "severity": "high"})
    assert error_of(named) == (3, "UNKNOWN_FIELD", ["nested.severity"])

    invalid = await http.post("/v1/everything", json={"nested": {"amount": "lots"}})
    assert invalid.status_code == 400
    assert error_of(invalid) == (3, "INVALID_FIELD_VALUE", ["nested.amount"])

    not_object = await http.post("/v1/everything", json=[1, 2])
    assert not_object.status_code == 400
    assert everything.server.received == []


async def test_default_values_and_json_names_are_configurable(
    everything_with: EverythingFactory,
) -> None:
    everything = await everything_with(
        always_print_primitive_fields=True, preserve_proto_field_names=False
    )
    response = await everything.http.get("/v1/everything/x?customName=c")

    body = response.json()
    assert body["stringValue"] == "x"
    assert body["customName"] == "c"
    assert body["int32Value"] == 0 and body["int64Value"] == "0"
    assert body["boolValue"] is False
    assert body["repeatedStrings"] == [] and body["labels"] == {}
    assert body["color"] == "COLOR_UNSPECIFIED"
    assert "nested" not in body  # messages are not primitives


async def test_wrong_method_is_404_naming_the_allowed_ones(everything: Everything) -> None:
    response = await everything.http.post("/v1/everything/x", json={})
    assert response.status_code == 404
    assert error_of(response)[:2] == (5, "NO_ROUTE")
    assert "GET" in response.json()["message"]
