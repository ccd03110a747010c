"""How old an event may be: `event_time` further back than the service's window
(AUDIT_MAX_EVENT_AGE_DAYS) is refused unless the writer may backfill (`backfill =
true` in audit_svc/policy.toml). An audit log that takes any past time lets a writer
slip events into a history already read, checkpointed and reported on."""

from __future__ import annotations

from datetime import datetime, timedelta

from audit_svc.model import FieldViolation

REASON = "EVENT_TIME_TOO_OLD"


def too_old(event_time: datetime, now: datetime, max_age: timedelta) -> FieldViolation | None:
    """The violation when `event_time` is more than `max_age` before `now`."""
    if now - event_time <= max_age:
        return None
    days = max_age.total_seconds() / 86400
    return FieldViolation(
        "event_time",
        f"is more than {days:g} days in the past; only writers allowed to backfill "
        "(audit_svc/policy.toml) may send older events",
    )
