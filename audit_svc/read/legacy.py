"""The v1 (legacy REST) view of the audit log: event names and the dashboard.

v1 callers name event types the old way (`user_login`); the store holds v2 types
(`auth.login_success`). `V1_TO_V2` is the one table between the two, for the 18 types
the user-service emits. A legacy name is the v2 type without its category
(`auth.login_failed` is `login_failed`, `mfa.mfa_enabled` is `mfa_enabled`), except the
two the integration guide already used differently:

    user_login   auth.login_success        user_logout   auth.logout

Types without a legacy name (other services' own types) travel through v1 unchanged,
and a v2 type given to v1 is accepted as is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from audit_svc.read import statistics
from audit_svc.read.query import QueryFilters, QuerySpec, parse_query
from audit_svc.storage.protocols import EventReader

V1_TO_V2 = MappingProxyType(
    {
        "user_login": "auth.login_success",
        "login_failed": "auth.login_failed",
        "user_logout": "auth.logout",
        "token_refresh": "auth.token_refresh",
        "user_created": "user.user_created",
        "user_updated": "user.user_updated",
        "user_deleted": "user.user_deleted",
        "user_locked": "user.user_locked",
        "password_changed": "password.password_changed",
        "password_reset_requested": "password.password_reset_requested",
        "mfa_enabled": "mfa.mfa_enabled",
        "mfa_disabled": "mfa.mfa_disabled",
        "mfa_verified": "mfa.mfa_verified",
        "permission_granted": "permission.permission_granted",
        "role_assigned": "permission.role_assigned",
        "role_removed": "permission.role_removed",
        "suspicious_activity": "security.suspicious_activity",
        "rate_limit_exceeded": "security.rate_limit_exceeded",
    }
)
V2_TO_V1 = MappingProxyType({v2: v1 for v1, v2 in V1_TO_V2.items()})
LOGIN_SUCCESS = "auth.login_success"


def to_v2(event_type: str) -> str:
    """The v2 type of a v1 name; anything else (a v2 type, a prefix) unchanged."""
    return V1_TO_V2.get(event_type, event_type)


def to_v1(event_type: str) -> str:
    """The v1 name of a v2 type; the v2 type itself when it has none."""
    return V2_TO_V1.get(event_type, event_type)


def parse_search(
    filters: QueryFilters, *, key: bytes, limit: int = 0, page_token: str = ""
) -> QuerySpec:
    """The v2 query a v1 `SearchLogs` request means (its event type a v1 name or a v2
    type); InvalidArgument as `parse_query`."""
    v2 = replace(filters, event_type=to_v2(filters.event_type))
    return parse_query(v2, key=key, limit=limit, page_token=page_token)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The legacy dashboard's counts over one named range; types keyed by v1 name."""

    time_range: str
    total_events: int
    successful_logins: int
    failed_logins: int
    unique_users: int
    events_by_type: dict[str, int]
    events_by_result: dict[str, int]


async def dashboard(events: EventReader, time_range: str, now: datetime) -> Dashboard:
    """Counts for `GetDashboardStatistics` over `time_range` (1h, 24h, 7d, 30d) ending
    now; InvalidArgument naming `time_range` for anything else."""
    named = time_range or statistics.DEFAULT_RANGE
    span = statistics.parse_time_range(named, None, None, now)
    stats = await statistics.get_statistics(events, span, now)
    by_type: dict[str, int] = {}
    for count in stats.by_event_type:
        name = to_v1(count.key)
        by_type[name] = by_type.get(name, 0) + count.count
    return Dashboard(
        time_range=named,
        total_events=stats.total,
        successful_logins=stats.count_of(LOGIN_SUCCESS),
        failed_logins=stats.failed_logins,
        unique_users=stats.unique_users,
        events_by_type=by_type,
        events_by_result={c.key: c.count for c in stats.by_result},
    )
