"""Errors as a REST caller sees them: the HTTP status of every gRPC code, the JSON
google.rpc.Status with its details, and the gateway's own 400, 404, 413 and 503."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from devstack import free_port
from devstack.events import GUIDE_EVENT
from gateway import Listener, MeshConfig, Transcoding
from tests.gateway.harness import MAIN_DESCRIPTORS, Everything, EverythingFactory, running_gateway
from tests.gateway.harness import client as http_client
from tests.gateway.rest import error_of

# grpc-gateway's HTTPStatusFromCode.
HTTP_OF_CODE = {
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}


@pytest.mark.parametrize("code", sorted(HTTP_OF_CODE))
async def test_each_grpc_code_maps_to_its_http_status_with_details(
    everything: Everything, code: int
) -> None:
    response = await everything.http.get(f"/v1/fail/{code}")

    assert response.status_code == HTTP_OF_CODE[code]
    assert error_of(response) == (code, f"TEST_CODE_{code}", ["code"])
    body = response.json()
    assert body["message"] == f"failed with code {code}"
    [info] = [d for d in body["details"] if d["@type"].endswith("ErrorInfo")]
    assert info["domain"] == "test.auditmesh.dev"
    assert response.headers["x-request-id"]


@pytest.fixture
async def nothing_listening() -> AsyncIterator[httpx.AsyncClient]:
    """The gateway's audit listener pointed at a port where nothing listens."""
    upstreams = f"audit=127.0.0.1:{free_port()},user=127.0.0.1:{free_port()}"
    async with running_gateway(upstreams=upstreams) as gateway:
        async with http_client(gateway.ports["audit"]) as http:
            yield http


async def test_upstream_down_is_503_with_a_clear_message(
    nothing_listening: httpx.AsyncClient,
) -> None:
    for response in (
        await nothing_listening.get("/api/v2/events/health"),
        await nothing_listening.post("/api/v2/events", json=GUIDE_EVENT),
        await nothing_listening.get("/api/v2/events/watch"),
    ):
        assert response.status_code == 503
        assert error_of(response)[:2] == (14, "UPSTREAM_UNAVAILABLE")
        assert "audit-service" in response.json()["message"]


async def test_malformed_json_is_400(everything: Everything) -> None:
    response = await everything.http.post(
        "/v1/everything", content=b'{"string_value": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)[:2] == (3, "MALFORMED_JSON")
    assert everything.server.received == []


async def test_a_body_over_the_limit_is_413(everything_with: EverythingFactory) -> None:
    everything = await everything_with(max_request_body_bytes=64)
    small = await everything.http.post("/v1/everything", json={"string_value": "x" * 20})
    assert small.status_code == 200

    large = await everything.http.post("/v1/everything", json={"string_value": "x" * 100})
    assert large.status_code == 413
    assert error_of(large)[:2] == (8, "REQUEST_BODY_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it comes
        yield b'{"string_value": "'
        yield b"y" * 100
        yield b'"}'

    streamed = await everything.http.post("/v1/everything", content=chunks())
    assert streamed.status_code == 413
    assert [r.request.string_value for r in everything.server.received] == ["x" * 20]


async def test_grpc_timeout_header_sets_the_deadline(everything: Everything) -> None:
    response = await everything.http.get(
        "/v1/count?hold=true", headers={"grpc-timeout": "200m", "accept": "application/x-ndjson"}
    )
    assert response.status_code == 504
    assert error_of(response)[0] == 4
    assert everything.server.last.method == "Count"


async def test_unknown_paths_are_404(everything: Everything) -> None:
    response = await everything.http.get("/v2/nothing/here")
    assert response.status_code == 404
    assert error_of(response) == (5, "NO_ROUTE", [])


async def test_a_listener_whose_services_are_missing_does_not_start() -> None:
    mesh = MeshConfig((Listener("x", 0, "127.0.0.1:1", ("no.such.Service",)),), Transcoding())
    with pytest.raises(ValueError, match=r"no\.such\.Service"):
        async with running_gateway(mesh, descriptor_set=MAIN_DESCRIPTORS):
            pass
