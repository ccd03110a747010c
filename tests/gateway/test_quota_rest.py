"""The write quota through REST: a caller over its quota gets 429 with the
google.rpc.Status (reason WRITE_QUOTA_EXCEEDED, a RetryInfo), as from gRPC."""

from __future__ import annotations

from audit_svc.app import AuditApp
from devstack.events import GUIDE_EVENT
from tests.gateway.harness import client, running_gateway
from tests.gateway.rest import error_of
from tests.testkit import tls

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


async def test_a_rest_writer_over_its_quota_gets_429_with_retry_info(audit_db: str) -> None:
    settings = tls.audit_settings(
        database_url=audit_db,
        grpc_listen="127.0.0.1:0",
        dev_mode=True,
        write_quota_events_per_second=0.05,  # 5 at once, then one every 20 s
        write_quota_bytes_per_second=1e6,
        write_quota_burst_seconds=100,
    )
    async with AuditApp(settings) as app:
        async with running_gateway(upstreams=f"audit=127.0.0.1:{app.port}") as gateway:
            async with client(gateway.ports["audit"]) as rest:
                batch = {"events": [GUIDE_EVENT] * 5}
                first = await rest.post("/api/v2/events/batch", json=batch)
                over = await rest.post("/api/v2/events", json=GUIDE_EVENT)

    assert first.status_code == 200
    assert over.status_code == 429
    assert error_of(over)[:2] == (8, "WRITE_QUOTA_EXCEEDED")
    assert RETRY_INFO in [d["@type"] for d in over.json()["details"]]
