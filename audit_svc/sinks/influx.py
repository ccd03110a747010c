"""InfluxDB sink: per-window event counts as points of measurement `audit_events`.

One point per (window of `window` seconds by event_time, chain, event_type, service,
result, data_classification) with an integer field `count`, timestamped at the
window's start: the point rate is bounded by windows x tag combinations, not events.

Idempotent across a crash between the write and the cursor update: a point always
carries the *full* count of its window over every event with seq <= the new cursor,
recomputed from PostgreSQL, never an increment. InfluxDB keeps one value per series
and timestamp, so a replay after a crash rewrites the same points with the same (or a
later, larger) count; nothing is counted twice and nothing is missed. Order per step:
read counts, write points, then advance the cursor.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from audit_svc.storage.protocols import SinkStore, WindowCount

log = logging.getLogger(__name__)

NAME = "influx"
MEASUREMENT = "audit_events"
POINTS_PER_WRITE = 5000


class InfluxSink:
    """Moves one chain's events into InfluxDB, `batch_events` seqs per step."""

    def __init__(
        self,
        state: SinkStore,
        chain_id: str,
        *,
        url: str,
        org: str,
        bucket: str,
        token: str,
        window_seconds: float = 10.0,
        batch_events: int = 20_000,
        timeout_ms: int = 10_000,
    ) -> None:
        self._state = state
        self.chain_id = chain_id
        self._client = InfluxDBClientAsync(url=url, token=token, org=org, timeout=timeout_ms)
        self._write = self._client.write_api()
        self._org = org
        self._bucket = bucket
        self._width = timedelta(seconds=window_seconds)
        self._batch = batch_events
        self.points_written = 0

    async def close(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]

    async def step(self) -> bool:
        """Handle the next seqs after the cursor; True when more are waiting."""
        after = await self._state.cursor(NAME, self.chain_id)
        head = await self._state.head_seq(self.chain_id)
        upto = min(head, after + self._batch)
        if upto <= after:
            return False
        counts = await self._state.window_counts(self.chain_id, after, upto, self._width)
        points = [self._point(c) for c in counts]
        for i in range(0, len(points), POINTS_PER_WRITE):
            await self._write.write(
                bucket=self._bucket,
                org=self._org,
                record=points[i : i + POINTS_PER_WRITE],
            )
        self.points_written += len(points)
        await self._state.set_cursor(NAME, self.chain_id, upto)
        return upto < head

    def _point(self, c: WindowCount) -> dict[str, Any]:
        tags = {
            "chain": self.chain_id,
            "event_type": c.event_type,
            "service": c.service,
            "result": c.result,
            "data_classification": c.data_classification,
        }
        return {
            "measurement": MEASUREMENT,
            "tags": tags,
            "fields": {"count": c.count},
            "time": int(c.window.timestamp()) * 1_000_000_000,  # ns, the default precision
        }
