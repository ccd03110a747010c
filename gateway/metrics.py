"""The gateway's Prometheus metrics (served on GATEWAY_METRICS_LISTEN): requests by
listener, route and HTTP status, the latency of the upstream gRPC calls, and the
connections the listener limits closed."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from meshkit.metrics import LATENCY_BUCKETS

REQUESTS = Counter(
    "auditmesh_gateway_requests_total",
    "REST requests answered, by listener, route (the gRPC method's operation id, "
    "or `unmatched`) and HTTP status.",
    ["listener", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "auditmesh_gateway_request_seconds",
    "Time to answer a REST request (streams: the stream's life).",
    ["listener", "route"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_SECONDS = Histogram(
    "auditmesh_gateway_upstream_seconds",
    "Latency of the unary gRPC call behind a REST request, by listener and gRPC method.",
    ["listener", "method"],
    buckets=LATENCY_BUCKETS,
)
UNMATCHED = "unmatched"
REFUSED_CONNECTIONS = Counter(
    "auditmesh_gateway_refused_connections_total",
    "Connections closed by a listener limit (gateway/protocol.py), by listener and "
    "reason: header_timeout, headers_too_large, too_many_connections.",
    ["listener", "reason"],
)
