"""The limits the OpenAPI documents print are the ones enforced: for each bounded field
of an event, the documented maximum is accepted and one past it is 400 naming the
field, through the gateway against the real audit-service. (The user-service's:
tests/user_svc/test_documented_limits.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devstack.events import GUIDE_EVENT
from gateway.descriptors import Descriptors
from meshkit.limits import FIELDS
from tests.gateway.harness import MAIN_DESCRIPTORS, Mesh
from tests.gateway.rest import error_of

# A value of n characters that matches the field's documented pattern.
VALUES: dict[str, Callable[[int], str]] = {
    "event_type": lambda n: "a." + "b" * (n - 2),
    "service": lambda n: "s" * n,
    "action": lambda n: "a" * n,
    "user_id": lambda n: "u" * n,
    "username": lambda n: "n" * n,
    "user_agent": lambda n: "m" * n,
}


async def stored(mesh: Mesh, event: dict[str, Any]) -> tuple[int, list[str]]:
    response = await mesh.audit.post("/api/v2/events", json=event)
    return response.status_code, [] if response.status_code == 200 else error_of(response)[2]


async def test_one_past_each_documented_event_limit_is_400(mesh: Mesh) -> None:
    spec = (await mesh.audit.get("/openapi.json")).json()
    event = spec["components"]["schemas"]["audit.v2.AuditEvent"]["properties"]
    for name, value in VALUES.items():
        longest = event[name]["maxLength"]
        assert longest == FIELDS[f"audit.v2.AuditEvent.{name}"].max_length
        assert await stored(mesh, {**GUIDE_EVENT, name: value(longest)}) == (200, [])
        assert await stored(mesh, {**GUIDE_EVENT, name: value(longest + 1)}) == (400, [name])

    tags = event["compliance_tags"]
    many = [f"t{i}" for i in range(tags["maxItems"])]
    assert await stored(mesh, {**GUIDE_EVENT, "compliance_tags": many}) == (200, [])
    too_many = [*many, "one-more"]
    assert await stored(mesh, {**GUIDE_EVENT, "compliance_tags": too_many}) == (
        400,
        ["compliance_tags"],
    )
    long_tag = "t" * tags["items"]["maxLength"]
    assert await stored(mesh, {**GUIDE_EVENT, "compliance_tags": [long_tag]}) == (200, [])
    too_long = [long_tag + "t"]
    assert (await stored(mesh, {**GUIDE_EVENT, "compliance_tags": too_long}))[0] == 400

    for choice in event["result"]["enum"]:
        assert await stored(mesh, {**GUIDE_EVENT, "result": choice}) == (200, [])
    assert await stored(mesh, {**GUIDE_EVENT, "result": "maybe"}) == (400, ["result"])

    batch = spec["components"]["schemas"]["audit.v2.IngestBatchRequest"]["properties"]
    events = [GUIDE_EVENT] * (batch["events"]["maxItems"] + 1)
    response = await mesh.audit.post("/api/v2/events/batch", json={"events": events})
    assert response.status_code == 400
    assert error_of(response)[2] == ["events"]


def test_every_limit_names_a_real_field() -> None:
    pool = Descriptors.load(MAIN_DESCRIPTORS).pool
    for name in FIELDS:
        message, _, field = name.rpartition(".")
        assert field in pool.FindMessageTypeByName(message).fields_by_name, name
