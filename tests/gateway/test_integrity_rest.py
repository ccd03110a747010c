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


async def test_proofs_and_checkpoint_over_rest(mesh: Mesh) -> None:
    event = {"event_type": "auth.login_success", "user_id": "user123", "username": "johndoe",
             "service": "user-service", "action": "login_success", "result": "success",
             "data_classification": "internal"}  # fmt: skip
    stored = await mesh.audit.post("/api/v2/events/batch", json={"events": [event] * 3})
    assert stored.status_code == 200
    receipt = stored.json()["results"][2]["receipt"]
    assert int(receipt["leaf_index"]) == int(receipt["seq"]) - 1
    proof = await mesh.audit.get(
        "/api/v2/integrity/inclusion-proof",
        params={"seq": receipt["seq"], "tree_size": receipt["tree_size"]},
    )
    assert proof.status_code == 200
    assert int(proof.json()["tree_size"]) == int(receipt["tree_size"])
    consistency = await mesh.audit.get(
        "/api/v2/integrity/consistency-proof", params={"old_size": 1, "new_size": receipt["seq"]}
    )
    assert consistency.status_code == 200
    bad = await mesh.audit.get(
        "/api/v2/integrity/consistency-proof", params={"old_size": 5, "new_size": 2}
    )
    assert bad.status_code == 400
    (info,) = [d for d in bad.json()["details"] if d["@type"].endswith("ErrorInfo")]
    assert info["reason"] == "BAD_TREE_SIZES"
    # No S3 on this service: no checkpoint is made, so none is served.
    missing = await mesh.audit.get("/api/v2/integrity/checkpoint")
    assert missing.status_code == 404
