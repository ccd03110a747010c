"""The integrity endpoints of issue 6 over REST through the gateway (a service
without S3: no checkpoints, no key)."""

from __future__ import annotations

from tests.gateway.harness import Mesh


async def test_checkpoints_and_public_key_over_rest(mesh: Mesh) -> None:
    response = await mesh.audit.get("/api/v2/integrity/checkpoints", params={"page_size": 10})
    assert response.status_code == 200
    assert response.json().get("checkpoints", []) == []

    response = await mesh.audit.get("/api/v2/integrity/public-key")
    assert response.status_code == 404
    (info,) = [d for d in response.json()["details"] if d["@type"].endswith("ErrorInfo")]
    assert info["reason"] == "NOT_FOUND"

    response = await mesh.audit.get("/api/v2/integrity/checkpoints", params={"page_size": -1})
    assert response.status_code == 400
