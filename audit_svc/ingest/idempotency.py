"""The idempotency key bound to its writer: an `event_id` seen again is a duplicate
only when the same principal resends the same content.

The appender answers every stored id as a duplicate with the first receipt (it looks
at ids only, on the hot path). Duplicates are rare (a client replaying its spool), so
this check runs after the commit on those events alone: it reads the stored event of
each and compares the writer and a digest of the content. Anything else is an
`EVENT_ID_CONFLICT` (ALREADY_EXISTS), rejected by index; the stored event is untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from audit_svc.integrity.chain import canonical_bytes
from audit_svc.model import Event, EventResult, FieldViolation, Outcome, StoredEvent

log = logging.getLogger(__name__)

REASON = "EVENT_ID_CONFLICT"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StoredById(Protocol):
    """What the check reads: the stored events with these ids."""

    async def events_by_id(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredEvent]: ...


def content_digest(event: Event, *, with_time: bool = True) -> bytes:
    """SHA-256 of what the writer said: the canonical bytes without the event's place
    in a chain, its receive time and its principal (compared on their own). Without
    `with_time` the event time is left out too: the server stamped it (none was sent),
    so a resend carries another."""
    said = dataclasses.replace(
        event,
        principal="",
        receive_time=_EPOCH,
        event_time=event.event_time if with_time else _EPOCH,
    )
    return hashlib.sha256(canonical_bytes(said, "", 0)).digest()


def same_writer_and_content(stored: Event, sent: Event, *, with_time: bool) -> bool:
    """Whether `sent` is a resend of `stored`. Events stored before principals were
    recorded (empty principal) are compared by content alone."""
    if stored.principal and stored.principal != sent.principal:
        return False
    return content_digest(stored, with_time=with_time) == content_digest(sent, with_time=with_time)


async def bind_duplicates(
    results: dict[int, EventResult],
    sent: Sequence[tuple[int, Event, bool]],
    store: StoredById,
) -> list[tuple[Event, Event]]:
    """Turn each DUPLICATE in `results` whose stored event another principal wrote,
    or with other content, into a rejection (EVENT_ID_CONFLICT). `sent` holds
    (index, event, whether the caller sent its event time). Returns each conflict as
    (the event sent, the event stored under its id)."""
    dups = [(i, e, t) for i, e, t in sent if results[i].outcome is Outcome.DUPLICATE]
    if not dups:
        return []
    stored = await store.events_by_id([e.event_id for _, e, _ in dups])
    conflicts = []
    for index, event, with_time in dups:
        original = stored.get(event.event_id)
        if original is None or same_writer_and_content(original.event, event, with_time=with_time):
            continue  # archived since, or a true resend: the duplicate stands
        conflicts.append((event, original.event))
        log.warning(
            "event id %s reused by %s with other content or by another writer (stored by "
            "%s); rejected as %s",
            event.event_id, event.principal, original.event.principal or "(unrecorded)", REASON,
        )  # fmt: skip
        results[index] = EventResult(
            index,
            str(event.event_id),
            Outcome.REJECTED,
            None,
            REASON,
            (
                FieldViolation(
                    "event_id",
                    "is already used by another event; a resend must come from the same "
                    "writer with the same content (use a new id for a new event)",
                ),
            ),
            conflict=True,
        )
    return conflicts
