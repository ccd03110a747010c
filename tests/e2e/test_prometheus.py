"""The mesh as `make up` starts it, with Debian's Prometheus scraping every service's
/metrics: counts read back through Prometheus's query API equal what PostgreSQL
holds, and every Grafana panel's PromQL parses and runs against it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from devstack import PostgresInfo, Stack, infra_components
from devstack.events import GUIDE_EVENT
from devstack.mesh import GatewayInfo, mesh_components
from devstack.prometheus import PrometheusInfo, prometheus_component, query

ROOT = Path(__file__).resolve().parents[2]
CONVERGE_SECONDS = 90.0
Reading = list[tuple[str, float, float]]  # what, Prometheus's value, PostgreSQL's


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    components = (
        infra_components(None, fsync=False)
        + mesh_components(None)
        + [prometheus_component(None, scrape_seconds=1)]
    )
    with Stack(tmp_path_factory.mktemp("observed"), components) as running:
        yield running


def _value(prom: PrometheusInfo, promql: str) -> float:
    result = query(prom, promql)
    return float(result[0]["value"][1]) if result else 0.0


def _count(pg: PostgresInfo, sql: str) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(pg.dsn)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def _converged(pairs: Callable[[], Reading]) -> Reading:
    """Poll until Prometheus's value equals PostgreSQL's for every pair (scrapes and
    the audit client's delivery take a few seconds), then return the last reading."""
    deadline = time.monotonic() + CONVERGE_SECONDS
    while True:
        reading = pairs()
        if all(seen == want for _, seen, want in reading) or time.monotonic() > deadline:
            return reading
        time.sleep(0.5)


def test_prometheus_counts_equal_what_postgresql_holds(stack: Stack) -> None:
    gateway, prom, pg = stack.info("gateway"), stack.info("prometheus"), stack.info("postgres")
    assert isinstance(gateway, GatewayInfo) and isinstance(prom, PrometheusInfo)
    assert isinstance(pg, PostgresInfo)
    assert set(prom.targets) == {"audit-service", "user-service", "gateway"}
    audit_rest, user_rest = gateway.url, f"http://127.0.0.1:{gateway.user_port}"
    with httpx.Client(timeout=30, trust_env=False) as http:
        batch = [{**GUIDE_EVENT, "service": "metrics-test"} for _ in range(5)]
        assert http.post(f"{audit_rest}/api/v2/events/batch", json={"events": batch}).is_success
        user = {"username": "metered", "email": "metered@example.com", "password": "Secret-pass-1"}
        assert http.post(f"{user_rest}/api/v1/auth/register", json=user).is_success
        wrong = {"username": "metered", "password": "not-the-password-1"}
        for _ in range(2):
            assert http.post(f"{user_rest}/api/v1/auth/login", json=wrong).status_code == 401
        right = {"username": "metered", "password": user["password"]}
        assert http.post(f"{user_rest}/api/v1/auth/login", json=right).is_success

    def pairs() -> Reading:
        events = "SELECT count(*) FROM audit_events"
        return [
            (
                "stored events",
                _value(prom, 'sum(auditmesh_ingest_events_total{result="stored"})'),
                _count(pg, events),
            ),
            (
                "acked by the user-service's audit client",
                _value(prom, "sum(auditmesh_audit_client_acked_total)"),
                _count(pg, events + " WHERE service = 'user-service'"),
            ),
            (
                "successful logins",
                _value(prom, 'sum(auditmesh_user_logins_total{result="success"})'),
                _count(pg, events + " WHERE event_type = 'auth.login_success'"
                       " AND service = 'user-service'"),
            ),
            (
                "failed logins",
                _value(prom, 'sum(auditmesh_user_logins_total{result!="success"})'),
                _count(pg, events + " WHERE event_type = 'auth.login_failed'"),
            ),
            (
                "REST batches",
                _value(
                    prom,
                    'sum(auditmesh_gateway_requests_total{route="AuditService_IngestBatch",'
                    'status="200"})',
                ),
                1,
            ),
        ]  # fmt: skip

    reading = _converged(pairs)
    assert all(seen == want for _, seen, want in reading), reading
    assert _value(prom, "min(up)") == 1
    assert _value(prom, "max(auditmesh_chain_head_seq)") == _count(
        pg, "SELECT count(*) FROM audit_events"
    )


def _panel_queries() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        dashboard: dict[str, Any] = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    return found


def test_every_grafana_panel_query_runs_on_prometheus(stack: Stack) -> None:
    prom = stack.info("prometheus")
    assert isinstance(prom, PrometheusInfo)
    queries = _panel_queries()
    assert len(queries) >= 10
    for where, expr in queries:
        promql = expr.replace("$__rate_interval", "1m").replace("$__range", "1h")
        query(prom, promql)  # raises with Prometheus's error if it does not parse or run
        assert where
