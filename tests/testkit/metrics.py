"""Reading a service's /metrics as a user's Prometheus would: over HTTP, parsed by
prometheus-client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Samples(dict[tuple[str, frozenset[tuple[str, str]]], float]):
    """Sample name and labels -> value, from one scrape."""

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 if none)."""
        wanted = set(labels.items())
        return sum(v for (n, have), v in self.items() if n == name and wanted <= have)


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    response = httpx.get(f"http://{host}:{port}/metrics", timeout=10, trust_env=False)
    response.raise_for_status()
    samples = Samples()
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples
