"""Reads are authorized and audited. Each read call needs a role (`audit.reader` for
queries, statistics and the live tail; `audit.admin` for integrity checks), and leaves
one `audit.read` event: who read, which call, with which filters, how many results.

The event goes through the same appender as every other (same chain, same hash), but
off the read path: `record` only queues it, and one task commits what is queued; the
queue is bounded, and what does not fit is counted and logged, never waited for. An
`audit.read` event is written by the service itself (its own principal), so recording
one never triggers another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from audit_svc.access import Kind, Principal
from audit_svc.errors import PermissionDenied
from audit_svc.ingest.appender import Appender
from audit_svc.integrity.chain import ready
from audit_svc.model import Event
from meshkit.ids import uuid7
from meshkit.tls import TRUST_DOMAIN

log = logging.getLogger(__name__)

READ_EVENT = "audit.read"
CONFLICT_EVENT = "security.event_id_conflict"
SELF = f"spiffe://{TRUST_DOMAIN}/audit-service"
MAX_PENDING = 10_000
MAX_GROUP = 500


def authorize(principal: Principal, role: str) -> None:
    """PERMISSION_DENIED (MISSING_ROLE) unless `principal` holds `role`."""
    if not principal.has(role):
        raise PermissionDenied(
            f"{principal.name} does not hold the {role} role",
            reason="MISSING_ROLE",
            metadata={"role": role, "principal": principal.name},
        )


class ReadAudit:
    """Queues one `audit.read` event per read, and commits them in the background."""

    def __init__(
        self,
        appender: Appender,
        *,
        enabled: bool = True,
        scrub: Callable[[Mapping[str, object]], Mapping[str, object]] | None = None,
        write: Callable[[Sequence[Event]], Awaitable[object]] | None = None,
    ) -> None:
        # How the records are committed (sealed first: audit_svc.app.write_events).
        self._write = write
        self._appender = appender
        self.enabled = enabled
        # Personal filters as pseudonyms (Disclosure.scrub_filters): no clear text kept.
        self._scrub = scrub
        self._queue: asyncio.Queue[Event] = asyncio.Queue(MAX_PENDING)
        self.dropped = 0

    def record(
        self, principal: Principal, method: str, filters: Mapping[str, object], results: int
    ) -> None:
        """Queue the event of one read; never waits."""
        if not self.enabled:
            return
        now = datetime.now(UTC)
        if self._scrub is not None:
            filters = self._scrub(filters)
        shown = {
            k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in filters.items()
        }
        event = Event(
            event_id=uuid7(),
            event_type=READ_EVENT,
            user_id=principal.name.removeprefix("user:") if principal.kind is Kind.USER else "",
            username=principal.name,
            ip_address=None,
            user_agent="",
            service="audit-service",
            action=method,
            result="success",
            details={
                "principal": principal.name,
                "method": method,
                "filters": shown,
                "results": float(results),
            },  # fmt: skip
            compliance_tags=(),
            data_classification="confidential",
            event_time=now,
            receive_time=now,
            principal=SELF,
        )
        self._queue_event(event)

    def _queue_event(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("audit.read queue full: %d service events dropped so far", self.dropped)

    def record_conflict(self, sent: Event, stored: Event) -> None:
        """Queue a `security.event_id_conflict` event: `sent.principal` reused the id of
        an event stored by `stored.principal` (or with other content). Recorded even
        when reads are not audited; never waits."""
        now = datetime.now(UTC)
        self._queue_event(
            Event(
                event_id=uuid7(),
                event_type=CONFLICT_EVENT,
                user_id="",
                username=sent.principal,
                ip_address=None,
                user_agent="",
                service="audit-service",
                action="event_id_conflict",
                result="denied",
                details={
                    "principal": sent.principal,
                    "event_id": str(sent.event_id),
                    "stored_by": stored.principal,
                    "same_writer": stored.principal == sent.principal,
                },
                compliance_tags=(),
                data_classification="confidential",
                event_time=now,
                receive_time=now,
                principal=SELF,
            )
        )

    async def run(self) -> None:
        """Commit queued events in groups until cancelled."""
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            await self._commit(group)

    async def flush(self) -> None:
        """Commit whatever is queued (at shutdown, before the appender closes)."""
        group: list[Event] = []
        while not self._queue.empty():
            group.append(self._queue.get_nowait())
        if group:
            await self._commit(group)

    async def _commit(self, group: list[Event]) -> None:
        try:
            if self._write is not None:
                await self._write(group)
            else:
                chain_id = self._appender.chain_id
                await self._appender.submit([ready(e, chain_id) for e in group])
        except Exception:
            self.dropped += len(group)
            log.exception("could not store %d audit.read events", len(group))
