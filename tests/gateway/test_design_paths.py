"""Every REST path of DESIGN.md, through the gateway, against the real audit-service
on PostgreSQL (and a small real user-service): events are posted first, then found."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from devstack.events import GUIDE_EVENT
from tests.gateway.harness import Mesh
from tests.gateway.rest import error_of


async def post_events(mesh: Mesh) -> list[str]:
    """The guide's event alone, then two more in one batch; their ids, in order."""
    one = await mesh.audit.post("/api/v2/events", json=GUIDE_EVENT)
    assert one.status_code == 200, one.text
    result = one.json()["result"]
    assert result["outcome"] == "OUTCOME_STORED"
    assert result["receipt"]["seq"] == "1"  # int64 prints as a JSON string
    batch = await mesh.audit.post(
        "/api/v2/events/batch",
        json={
            "events": [
                {**GUIDE_EVENT, "event_type": "auth.login_failed", "user_id": "user456",
                 "action": "login_failed", "result": "failure"},
                {**GUIDE_EVENT, "event_type": "auth.logout", "action": "logout"},
            ]
        },
    )  # fmt: skip
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["outcome"] for r in results] == ["OUTCOME_STORED"] * 2
    assert [r.get("index", 0) for r in results] == [0, 1]  # 0 is a default: omitted
    return [result["event_id"], *(r["event_id"] for r in results)]


async def test_posted_events_are_found_by_the_v2_queries(mesh: Mesh) -> None:
    ids = await post_events(mesh)

    by_type = await mesh.audit.get("/api/v2/events/query?event_type=auth.login_success&limit=10")
    assert by_type.status_code == 200
    [event] = by_type.json()["events"]
    assert event["event_id"] == ids[0]
    sent = {k: v for k, v in event.items() if k in GUIDE_EVENT}
    assert sent == GUIDE_EVENT  # the guide's JSON comes back as sent, snake_case
    assert event["receipt"]["seq"] == "1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", event["receive_time"])

    by_user = await mesh.audit.get("/api/v2/events/query", params={"user_id": "user123"})
    assert by_user.status_code == 200
    assert [e["event_id"] for e in by_user.json()["events"]] == [ids[2], ids[0]]  # newest first

    prefix = await mesh.audit.get("/api/v2/events/query?event_type=auth.*&page_size=2")
    page = prefix.json()
    assert len(page["events"]) == 2 and page["next_page_token"]
    rest = await mesh.audit.get(
        "/api/v2/events/query",
        params={"event_type": "auth.*", "page_token": page["next_page_token"]},
    )
    assert [e["event_id"] for e in rest.json()["events"]] == [ids[0]]


async def test_posted_events_are_found_by_the_v1_paths(mesh: Mesh) -> None:
    ids = await post_events(mesh)

    logs = await mesh.audit.get("/api/v1/audit/logs?event_type=user_login&limit=100")
    assert logs.status_code == 200
    [log] = logs.json()["logs"]
    assert log["id"] == ids[0]
    assert log["event_type"] == "user_login"
    assert log["details"] == GUIDE_EVENT["details"]

    board = await mesh.audit.get("/api/v1/audit/statistics/dashboard?time_range=24h")
    assert board.status_code == 200
    stats = board.json()
    assert stats["time_range"] == "24h"
    assert stats["total_events"] == "3"
    assert stats["successful_logins"] == "1"
    assert stats["failed_logins"] == "1"
    assert stats["events_by_type"] == {"user_login": "1", "login_failed": "1", "user_logout": "1"}


async def test_health_of_both_services(mesh: Mesh) -> None:
    audit = await mesh.audit.get("/api/v2/events/health")
    assert audit.status_code == 200
    assert audit.json()["status"] == "SERVING"
    assert {c["name"] for c in audit.json()["components"]} >= {"postgres"}

    user = await mesh.user.get("/health")
    assert user.status_code == 200
    assert user.json() == {"status": "SERVING", "version": "test"}


async def test_one_event_by_id_and_unknown_ids(mesh: Mesh) -> None:
    [first, *_] = await post_events(mesh)

    found = await mesh.audit.get(f"/api/v2/events/{first}")
    assert found.status_code == 200
    assert found.json()["event"]["event_id"] == first

    missing = await mesh.audit.get(f"/api/v2/events/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert error_of(missing)[:2] == (5, "NOT_FOUND")

    malformed = await mesh.audit.get("/api/v2/events/not-a-uuid")
    assert malformed.status_code == 400
    assert error_of(malformed) == (3, "INVALID_ARGUMENT", ["event_id"])


async def test_an_invalid_event_is_400_naming_each_field(mesh: Mesh) -> None:
    bad = {**GUIDE_EVENT, "event_type": "", "result": "maybe"}
    response = await mesh.audit.post("/api/v2/events", json=bad)

    assert response.status_code == 400
    code, reason, fields = error_of(response)
    assert code == 3 and reason == "INVALID_EVENT"
    assert set(fields) == {"event_type", "result"}


async def test_docs_are_served_on_both_listeners_without_a_cdn(mesh: Mesh) -> None:
    for http in (mesh.audit, mesh.user):
        page = await http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/docs/static/") for a in assets)
        for asset in assets:
            assert (await http.get(asset)).status_code == 200
        spec = await http.get("/openapi.json")
        assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")


async def test_request_id_is_returned_and_forwarded(mesh: Mesh) -> None:
    given = await mesh.user.get("/health", headers={"x-request-id": "req-42"})
    assert given.headers["x-request-id"] == "req-42"
    assert mesh.users.received[-1].metadata["x-request-id"] == "req-42"

    made = await mesh.user.get("/health")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert mesh.users.received[-1].metadata["x-request-id"] == made.headers["x-request-id"]


async def test_caller_identity_reaches_the_user_service(mesh: Mesh) -> None:
    headers = {
        "authorization": "Bearer t0k3n",
        "user-agent": "Mozilla/5.0 (test)",
        "x-forwarded-for": "203.0.113.9",
    }
    response = await mesh.user.post(
        "/api/v1/auth/login", json={"username": "johndoe", "password": "wrong"}, headers=headers
    )
    assert response.status_code == 401
    assert error_of(response)[:2] == (16, "INVALID_CREDENTIALS")
    call = mesh.users.received[-1]
    assert call.method == "Login" and call.request.username == "johndoe"
    assert call.metadata["authorization"] == "Bearer t0k3n"
    assert call.metadata["grpcgateway-user-agent"] == "Mozilla/5.0 (test)"
    assert call.metadata["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"


async def test_user_service_rules(mesh: Mesh) -> None:
    async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await mesh.user.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response

    created = await call("POST", "/api/v1/auth/register", json={"username": "jd", "email": "a@b"})
    assert created.json()["user"]["user_id"] == "u-1"
    assert mesh.users.received[-1].method == "CreateUser"

    locked = await call("POST", "/api/v1/users/u-7:lock", json={"reason": "fraud"})
    assert locked.json()["user"] == {"user_id": "u-7", "locked": True}
    assert mesh.users.received[-1].request.reason == "fraud"

    await call("PATCH", "/api/v1/users/u-7?update_mask=displayName", json={"display_name": "J"})
    update = mesh.users.received[-1].request
    assert (update.user.user_id, update.user.display_name) == ("u-7", "J")
    assert list(update.update_mask.paths) == ["display_name"]

    await call("DELETE", "/api/v1/users/u-7/roles/auditor")
    assert mesh.users.received[-1].request.role == "auditor"
