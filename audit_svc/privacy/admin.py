"""Erasure and legal holds: the admin actions of privacy, each itself audited.

`erase` destroys a subject's data key (crypto-shredding): every personal field sealed
with it, in PostgreSQL, the archive bucket and any copy of those bytes, can no longer
be read, while the hash chain, the Merkle tree and every proof still verify (they
commit to the ciphertext). What the key never sealed stays as it is: the pseudonyms,
events stored before encryption was on, copies already shown or exported in clear.

Each action is queued as an event in the same transaction that does it
(`admin_actions`); the running service records queued actions on its chain
(`record_pending`), so a tool run without the service (`python -m audit_svc erase`)
is audited too, once the service runs. The event id makes the record exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit_svc.errors import InvalidArgument, NotFound
from audit_svc.model import Event, FieldViolation
from audit_svc.privacy.crypto import Keys
from audit_svc.privacy.keyring import KeyRing
from audit_svc.privacy.policy import PrivacyPolicy
from audit_svc.storage.protocols import AdminAction, Erased, LegalHold, PrivacyStore
from meshkit.ids import uuid7
from meshkit.tls import TRUST_DOMAIN

log = logging.getLogger(__name__)

ERASURE = "audit.erasure"
HOLD_PLACED = "audit.legal_hold_placed"
HOLD_LIFTED = "audit.legal_hold_lifted"
SELF = f"spiffe://{TRUST_DOMAIN}/audit-service"
MAX_REASON = 1024


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What an erasure made unreadable, and the event that records it."""

    subject: str  # the user id's pseudonym (uid:...)
    events: int  # stored events of the subject in PostgreSQL, now [erased]
    archived_events: int  # events of the subject in archive objects (from the rollups)
    fields: tuple[str, ...]  # the personal fields that were sealed with the key
    erase_time: datetime
    erasure_event_id: str  # the audit.erasure event (recorded by the running service)
    already_erased: bool = False


class PrivacyAdmin:
    """See the module docstring. `submit` is None in a tool run without the service."""

    def __init__(
        self,
        store: PrivacyStore,
        keys: Keys,
        policy: PrivacyPolicy,
        *,
        ring: KeyRing | None = None,
        submit: Callable[[Sequence[Event]], Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._keys = keys
        self._policy = policy
        self._ring = ring
        self._submit = submit
        self._clock = clock
        self._recording = asyncio.Lock()

    async def erase(self, user_id: str, by: str) -> ErasureReport:
        """Destroy the data key of `user_id`; FAILED_PRECONDITION (LEGAL_HOLD, naming
        the hold) when a hold covers the subject; NOT_FOUND when it has no key."""
        _required("user_id", user_id)
        subject = self._keys.subject(user_id)
        action = self._action(ERASURE, "erase", by, {"subject": subject})
        try:
            erased: Erased = await self._store.erase_subject(subject, action)
        except LookupError:
            raise NotFound(
                "no events of this user were stored with encryption",
                reason="SUBJECT_NOT_FOUND",
                metadata={"subject": subject},
            ) from None
        if self._ring is not None:
            self._ring.forget(subject)
        if not erased.already:
            log.warning("erased the data key of %s (%d events)", subject, erased.events)
            await self.record_pending()
        fields = tuple(sorted(self._policy.fields)) + tuple(
            f"details.{k}" for k in sorted(self._policy.details)
        )
        return ErasureReport(
            subject, erased.events, erased.archived_events, fields, erased.erase_time,
            "" if erased.already else str(action.event_id), erased.already,
        )  # fmt: skip

    async def place_hold(
        self,
        by: str,
        reason: str,
        *,
        user_id: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> LegalHold:
        """A hold on a user's events, or on events of a time range (one of them)."""
        problems = []
        if not reason or len(reason) > MAX_REASON or "\x00" in reason:
            problems.append(FieldViolation("reason", f"is required; 1 to {MAX_REASON} characters"))
        if bool(user_id) == (start is not None or end is not None):
            problems.append(
                FieldViolation(
                    "user_id", "name a user_id, or a start_time/end_time range; not both"
                )
            )
        if start is not None and end is not None and not start < end:
            problems.append(FieldViolation("end_time", "must be after start_time"))
        if "\x00" in user_id:
            problems.append(FieldViolation("user_id", "contains a NUL character"))
        if problems:
            raise InvalidArgument(problems)
        now = self._clock()
        hold = LegalHold(
            hold_id=f"hold-{uuid7().hex[:20]}",
            subject=self._keys.subject(user_id) if user_id else None,
            start_time=start,
            end_time=end,
            reason=reason,
            placed_by=by,
            place_time=now,
        )
        await self._store.place_hold(
            hold, self._action(HOLD_PLACED, "place_legal_hold", by, _doc(hold))
        )
        await self.record_pending()
        return hold

    async def lift_hold(self, hold_id: str, by: str) -> LegalHold:
        """Lift an active hold; NOT_FOUND when there is no active hold of that id."""
        _required("hold_id", hold_id)
        action = self._action(HOLD_LIFTED, "lift_legal_hold", by, {"hold_id": hold_id})
        try:
            lifted = await self._store.lift_hold(hold_id, by, action)
        except LookupError:
            raise NotFound(
                f"no active legal hold {hold_id}", reason="HOLD_NOT_FOUND",
                metadata={"hold_id": hold_id},
            ) from None  # fmt: skip
        await self.record_pending()
        return lifted

    async def holds(self, *, include_lifted: bool = False) -> list[LegalHold]:
        return await self._store.holds(active_only=not include_lifted)

    async def record_pending(self) -> int:
        """Record queued admin actions as events on this service's chain; how many."""
        if self._submit is None:
            return 0
        async with self._recording:
            actions = await self._store.pending_actions(500)
            if not actions:
                return 0
            await self._submit([self._event(a) for a in actions])
            await self._store.mark_recorded([a.event_id for a in actions])
            for a in actions:  # erased by a tool: this replica forgets the key now
                if a.event_type == ERASURE and self._ring is not None:
                    self._ring.forget(str(a.details["subject"]))
            return len(actions)

    async def run(self, interval: float) -> None:
        """Record what tools queued, every `interval` seconds, until cancelled."""
        while True:
            try:
                await self.record_pending()
            except Exception:
                log.exception("could not record queued admin actions; retrying")
            await asyncio.sleep(interval)

    def _action(
        self, event_type: str, action: str, by: str, details: dict[str, Any]
    ) -> AdminAction:
        return AdminAction(uuid7(), event_type, action, details, by, self._clock())

    def _event(self, a: AdminAction) -> Event:
        now = self._clock()
        return Event(
            event_id=a.event_id,
            event_type=a.event_type,
            user_id="",
            username="",
            ip_address=None,
            user_agent="",
            service="audit-service",
            action=a.action,
            result="success",
            details={
                **a.details,
                "requested_by": a.requested_by,
                "request_time": a.request_time.isoformat(),
            },  # fmt: skip
            compliance_tags=("GDPR",),
            data_classification="confidential",
            event_time=a.request_time,
            receive_time=now,
            principal=SELF,
        )


def _doc(hold: LegalHold) -> dict[str, Any]:
    return {
        "hold_id": hold.hold_id,
        "subject": hold.subject,
        "start_time": None if hold.start_time is None else hold.start_time.isoformat(),
        "end_time": None if hold.end_time is None else hold.end_time.isoformat(),
        "reason": hold.reason,
    }


def _required(name: str, value: str) -> None:
    if not value:
        raise InvalidArgument([FieldViolation(name, "is required")])
    if "\x00" in value:
        raise InvalidArgument([FieldViolation(name, "contains a NUL character")])
