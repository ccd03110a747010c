"""Webhook forwarder: batches of events POSTed to one URL from its own cursor
(`sink_cursors`, sink `webhook`), at least once; receivers dedup by event id.

The body is NDJSON (one event per line) or one JSON document
`{"format": "auditmesh.webhook/1", "chain_id", "first_seq", "last_seq", "events": [...]}`,
the events in the configured JSON format (ndjson's event document, ocsf or ecs).
Headers: `X-Auditmesh-Timestamp` (unix seconds), `X-Auditmesh-Signature`
(`v1=` + hex HMAC-SHA256 under the shared secret of `<timestamp>.` + body: a receiver
recomputes it and refuses old timestamps), `X-Auditmesh-Batch` / `Idempotency-Key`
(`<chain>:<first seq>-<last seq>`).

A 2xx moves the cursor. A connection error, timeout, 408, 429 or 5xx is tried again
with exponential back-off (from `backoff_seconds`, doubling, at most
`backoff_max_seconds`); any other status is final. After `max_attempts` tries, or a
final status, the batch is recorded in `forwarder_dead_letters` and skipped, so one
bad batch never stops the ones after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import ssl
import time
from dataclasses import dataclass

import aiohttp

from audit_svc import __version__, metrics
from audit_svc.formats import by_name
from audit_svc.formats.base import dump_bytes, version_tag
from audit_svc.model import StoredEvent
from audit_svc.read.export import Present, as_is
from audit_svc.storage.protocols import DeadLetter, SinkStore

log = logging.getLogger(__name__)

NAME = "webhook"
BODY_TAG = version_tag("webhook")
SIGNATURE = "X-Auditmesh-Signature"
TIMESTAMP = "X-Auditmesh-Timestamp"
BATCH = "X-Auditmesh-Batch"
_RETRY = frozenset({408, 425, 429})


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The value of X-Auditmesh-Signature for a body sent at `timestamp`."""
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where to POST, how to sign, and how to shape the body."""

    url: str
    secret: bytes
    body: str = "ndjson"  # or json
    event_format: str = "ndjson"
    ca_file: str = ""
    timeout_seconds: float = 10.0


class WebhookSink:
    """Forwards one chain's events to a webhook, `batch_events` per step."""

    def __init__(
        self, state: SinkStore, chain_id: str, target: WebhookTarget, *,
        batch_events: int = 500, max_attempts: int = 8, backoff_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0, present: Present | None = None,
    ) -> None:  # fmt: skip
        self._present = present or as_is  # what a reader may see (audit_svc.read.disclosure)
        fmt = by_name(target.event_format)
        assert fmt is not None and fmt.json, "settings check the event format"
        self._line = fmt.line
        self._state = state
        self.chain_id = chain_id
        self._target = target
        self._batch = batch_events
        self._attempts = max_attempts
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._session: aiohttp.ClientSession | None = None
        self.events_sent = 0
        self.dead_letters = 0

    async def step(self) -> bool:
        """Deliver (or dead-letter) the next batch; True when more are waiting."""
        after = await self._state.cursor(NAME, self.chain_id)
        events = await self._state.events_after(self.chain_id, after, self._batch)
        if not events:
            return False
        shown = list(await self._present(events))
        body, content_type = self._body(shown)
        first, last = events[0].receipt.seq, events[-1].receipt.seq
        batch = f"{self.chain_id}:{first}-{last}"
        status, error = 0, ""
        for attempt in range(1, self._attempts + 1):
            status, error = await self._post(body, content_type, batch)
            if 200 <= status < 300:
                await self._state.set_cursor(NAME, self.chain_id, last)
                self.events_sent += len(events)
                metrics.FORWARDED.labels(NAME, "sent").inc(len(events))
                return len(events) == self._batch
            if status and not (status >= 500 or status in _RETRY):
                break  # the receiver refuses this batch: trying again will not help
            if attempt < self._attempts:
                wait = min(self._backoff * 2 ** (attempt - 1), self._backoff_max)
                log.warning("webhook batch %s: %s; try %d in %.1f s", batch,
                            error, attempt + 1, wait)  # fmt: skip
                await asyncio.sleep(wait)
        log.error("webhook batch %s dead-lettered after %d tries: %s", batch, attempt, error)
        await self._state.dead_letter(
            DeadLetter(NAME, self.chain_id, first, last,
                       tuple(s.event.event_id for s in events), attempt, status, error)
        )  # fmt: skip
        self.dead_letters += 1
        metrics.FORWARDED.labels(NAME, "dead_lettered").inc(len(events))
        return len(events) == self._batch

    def _body(self, events: list[StoredEvent]) -> tuple[bytes, str]:
        lines = [self._line(s) for s in events]
        if self._target.body == "json":
            r0, r1 = events[0].receipt, events[-1].receipt
            head = dump_bytes(
                {"format": BODY_TAG, "event_format": version_tag(self._target.event_format),
                 "chain_id": r0.chain_id, "first_seq": r0.seq, "last_seq": r1.seq, "events": []}
            )  # fmt: skip
            return head[:-2] + b",".join(lines) + b"]}", "application/json"  # into "events": []
        return b"\n".join(lines) + b"\n", "application/x-ndjson"

    async def _post(self, body: bytes, content_type: str, batch: str) -> tuple[int, str]:
        """The HTTP status (0 when there was no answer) and what went wrong."""
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "User-Agent": f"auditmesh/{__version__}",
            TIMESTAMP: timestamp,
            SIGNATURE: signature(self._target.secret, timestamp, body),
            BATCH: batch,
            "Idempotency-Key": batch,
        }
        try:
            async with self._client().post(self._target.url, data=body, headers=headers) as r:
                await r.read()
                return r.status, "" if r.status < 300 else f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return 0, f"{type(exc).__name__}: {exc}"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            t = self._target
            context = ssl.create_default_context(cafile=t.ca_file or None)
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=t.timeout_seconds),
                connector=aiohttp.TCPConnector(ssl=context),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
