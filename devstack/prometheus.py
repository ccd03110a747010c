"""Prometheus (Debian's `prometheus` package) scraping the mesh's /metrics endpoints,
with the alert rules of prometheus/alerts.yml; queried through its HTTP API.

Its config is written from the infos of the components it scrapes (their
`metrics_port`), so the same plan serves `make up` (fixed ports) and tests (free ones).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack import binaries
from devstack.errors import DevstackError
from devstack.ports import LOOPBACK
from devstack.process import ProcessSpec
from devstack.service import ServiceInfo, ServicePlan
from devstack.settings import PORT_VARIABLES, REPO_ROOT, Settings
from devstack.stack import Component, ComponentContext, restore_as

ALERT_RULES = REPO_ROOT / "prometheus" / "alerts.yml"
# The scrape job of each mesh component, as compose's prometheus/prometheus.yml names them.
JOBS = {"audit": "audit-service", "user": "user-service", "gateway": "gateway"}


@dataclass(frozen=True)
class PrometheusInfo:
    """Where Prometheus answers, and what it scrapes (job -> host:port)."""

    host: str
    port: int
    targets: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        return f"{self.url} (Prometheus; scrapes {', '.join(sorted(self.targets))})"


def probe(info: PrometheusInfo) -> None:
    """Return once Prometheus is ready to serve queries; raise otherwise."""
    response = httpx.get(f"{info.url}/-/ready", timeout=2, trust_env=False)
    if response.status_code != 200:
        raise DevstackError(f"{info.url}/-/ready answered {response.status_code}")


def query(info: PrometheusInfo, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query; DevstackError if Prometheus refuses it."""
    response = httpx.get(
        f"{info.url}/api/v1/query", params={"query": promql}, timeout=10, trust_env=False
    )
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        raise DevstackError(f"query {promql!r} failed: {body.get('error', response.text)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def config(targets: Mapping[str, str], scrape_seconds: float, rules: Path) -> dict[str, Any]:
    """prometheus.yml: one job per target, every `scrape_seconds`, with `rules`."""
    interval = f"{scrape_seconds:g}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in sorted(targets.items())
        ],
    }


def prometheus_plan(
    data_dir: Path,
    port: int,
    infos: Mapping[str, ServiceInfo],
    *,
    scrape_seconds: float = 5.0,
) -> ServicePlan[PrometheusInfo]:
    """Plan prometheus on 127.0.0.1:`port` scraping the components of `infos` that
    serve metrics (a `metrics_port` other than 0)."""
    data_dir = data_dir.resolve()
    targets = {
        JOBS.get(name, name): f"{info.host}:{port_}"
        for name, info in infos.items()
        if (port_ := getattr(info, "metrics_port", 0))
    }
    info = PrometheusInfo(LOOPBACK, port, targets)
    config_file = data_dir / "prometheus.yml"

    def prepare() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: no YAML writer needed.
        config_file.write_text(json.dumps(config(targets, scrape_seconds, ALERT_RULES), indent=2))

    argv = (
        str(binaries.prometheus()),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--storage.tsdb.retention.time=15d",
    )
    spec = ProcessSpec(
        name="prometheus",
        argv=argv,
        log_path=data_dir / "prometheus.log",
        ready=lambda: probe(info),
        cwd=data_dir,
        stop_timeout=15.0,
    )
    return ServicePlan(spec=spec, info=info, prepare=prepare)


def prometheus_component(
    settings: Settings | None = None, *, scrape_seconds: float = 5.0
) -> Component:
    """Prometheus as a Stack component after the mesh's services; on the fixed port of
    `settings` (9090), or a free one if None."""

    def plan(ctx: ComponentContext) -> ServicePlan[PrometheusInfo]:
        return prometheus_plan(ctx.data_dir, ctx.port, ctx.infos, scrape_seconds=scrape_seconds)

    return Component(
        name="prometheus",
        label="Prometheus",
        plan=plan,
        probe=probe,
        restore=restore_as(PrometheusInfo),
        port=settings.port_of("prometheus") if settings else None,
        port_env=PORT_VARIABLES["prometheus"][0],
        after=tuple(JOBS),
    )
