"""VictoriaMetrics as the InfluxDB write endpoint: influxdb-client writes to
/api/v2/write; points are read back through /api/v1/export.

VictoriaMetrics answers 204 even for lines it cannot parse, so tests read back.
Measurement `audit_events` with field `count` becomes metric `audit_events_count`,
tags become labels, timestamps are milliseconds. Fresh points become visible for
reads about a second after /internal/force_flush, so readers poll (`wait_for_series`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack import binaries
from devstack.errors import DevstackError
from devstack.ports import LOOPBACK, free_port
from devstack.process import ProcessSpec
from devstack.service import RunningService, ServicePlan, start_service


@dataclass(frozen=True)
class InfluxInfo:
    """How influxdb-client reaches the server; org, bucket and token are not checked."""

    host: str
    port: int
    org: str = "auditmesh"
    bucket: str = "audit"
    token: str = field(default="devstack-token", repr=False)

    @property
    def url(self) -> str:
        """e.g. http://127.0.0.1:8086"""
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        """One line for humans."""
        return f"{self.url} (InfluxDB v2 write API; org {self.org}, bucket {self.bucket})"


@dataclass(frozen=True)
class Series:
    """One exported series: its labels (`__name__` included) and its samples."""

    labels: dict[str, str]
    values: list[float]
    timestamps_ms: list[int]


def probe(info: InfluxInfo) -> None:
    """Return once /health answers OK; raise otherwise."""
    response = httpx.get(f"{info.url}/health", timeout=2)
    if response.status_code != 200 or response.text.strip() != "OK":
        raise DevstackError(f"/health answered {response.status_code} {response.text!r}")


def force_flush(info: InfluxInfo) -> None:
    """Ask VictoriaMetrics to make buffered points searchable now."""
    httpx.get(f"{info.url}/internal/force_flush", timeout=10).raise_for_status()


def export_series(info: InfluxInfo, match: str) -> list[Series]:
    """All series matching a selector such as `audit_events_count{service="x"}`."""
    force_flush(info)
    response = httpx.get(f"{info.url}/api/v1/export", params={"match[]": match}, timeout=10)
    response.raise_for_status()
    series = []
    for line in response.text.splitlines():
        if line.strip():
            raw: dict[str, Any] = json.loads(line)
            series.append(Series(raw["metric"], raw["values"], raw["timestamps"]))
    return series


def wait_for_series(
    info: InfluxInfo,
    match: str,
    until: Callable[[list[Series]], bool] = bool,
    timeout: float = 15.0,
) -> list[Series]:
    """Poll `export_series` until `until(series)` holds; raise TimeoutError if never."""
    deadline = time.monotonic() + timeout
    while True:
        series = export_series(info, match)
        if until(series):
            return series
        if time.monotonic() > deadline:
            raise TimeoutError(f"no series matching {match} within {timeout} s: {series}")
        time.sleep(0.2)


def influx_plan(data_dir: Path, port: int) -> ServicePlan[InfluxInfo]:
    """Plan victoria-metrics on 127.0.0.1:`port`, data kept for 100 years."""
    data_dir = data_dir.resolve()
    info = InfluxInfo(LOOPBACK, port)
    argv = (
        str(binaries.victoria_metrics()),
        f"-httpListenAddr={LOOPBACK}:{port}",
        f"-storageDataPath={data_dir / 'data'}",
        # Audit events may carry old timestamps; the default retention (1 month)
        # would drop them silently.
        "-retentionPeriod=100y",
        # Queries (not /export) include points up to now instead of now - 30 s.
        "-search.latencyOffset=0s",
    )
    spec = ProcessSpec(
        name="influx",
        argv=argv,
        log_path=data_dir / "victoria-metrics.log",
        ready=lambda: probe(info),
        cwd=data_dir,
        stop_timeout=15.0,
    )
    return ServicePlan(
        spec=spec, info=info, prepare=lambda: data_dir.mkdir(parents=True, exist_ok=True)
    )


def start_influx(data_dir: Path, port: int | None = None) -> RunningService[InfluxInfo]:
    """Start VictoriaMetrics on `port` (a free one if None)."""
    return start_service(influx_plan(data_dir, free_port() if port is None else port))
