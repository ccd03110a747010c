"""The v1 view against a real PostgreSQL: legacy names, SearchLogs filters, the dashboard."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from audit_svc.errors import InvalidArgument
from audit_svc.model import Event
from audit_svc.read import legacy
from audit_svc.read.query import QueryFilters, run_query
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.event_writes import append, ensure_chain

KEY = b"legacy-test-key"
NOW = datetime(2026, 6, 2, 14, 20, 33, tzinfo=UTC)
# The 18 types the user-service emits, as DESIGN.md lists them.
V2_TYPES = {
    "auth.login_success", "auth.login_failed", "auth.logout", "auth.token_refresh",
    "user.user_created", "user.user_updated", "user.user_deleted", "user.user_locked",
    "password.password_changed", "password.password_reset_requested",
    "mfa.mfa_enabled", "mfa.mfa_disabled", "mfa.mfa_verified",
    "permission.permission_granted", "permission.role_assigned", "permission.role_removed",
    "security.suspicious_activity", "security.rate_limit_exceeded",
}  # fmt: skip


def test_one_table_maps_each_emitted_type_both_ways() -> None:
    assert set(legacy.V1_TO_V2.values()) == V2_TYPES
    assert len(legacy.V1_TO_V2) == len(V2_TYPES) == 18
    for v1_name, v2_type in legacy.V1_TO_V2.items():
        assert legacy.to_v2(v1_name) == v2_type
        assert legacy.to_v1(v2_type) == v1_name
    assert legacy.to_v2("user_login") == "auth.login_success"
    assert legacy.to_v2("login_failed") == "auth.login_failed"


def test_v2_and_unknown_types_pass_through() -> None:
    assert legacy.to_v2("auth.login_success") == "auth.login_success"
    assert legacy.to_v2("auth.*") == "auth.*"
    assert legacy.to_v1("billing.invoice_paid") == "billing.invoice_paid"


async def store(pool: asyncpg.Pool, events: list[Event]) -> None:
    async with pool.acquire() as conn:
        await ensure_chain(conn, "chain-1")
        await append(conn, "chain-1", events)


def recent_events(make_event: Callable[..., Event]) -> list[Event]:
    """Events over the last 40 hours before NOW (some outside 24h), many types."""
    rng = random.Random(3)
    types = sorted(V2_TYPES) + ["billing.invoice_paid"]
    return [
        make_event(
            NOW - timedelta(seconds=rng.randrange(1, 40 * 3600)),
            event_type=rng.choice(types),
            result=rng.choice(["success", "failure"]),
            user_id=rng.choice(["u1", "u2", "u3", "u4", ""]),
        )
        for _ in range(300)
    ]


@pytest.mark.parametrize("name", ["user_login", "auth.login_success"])
async def test_search_by_legacy_or_v2_name_finds_the_v2_events(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event], name: str
) -> None:
    events = recent_events(make_event)
    await store(audit_pool, events)
    found, token = [], ""
    while True:
        filters = QueryFilters(event_type=name, user_id="u2")
        spec = legacy.parse_search(filters, key=KEY, limit=9, page_token=token)
        page = await run_query(PgEventReader(audit_pool), spec, KEY)
        found += [s.event.event_id for s in page.events]
        token = page.next_page_token
        if not token:
            break
    wanted = [e for e in events if e.event_type == "auth.login_success" and e.user_id == "u2"]
    wanted.sort(key=lambda e: (e.event_time, e.event_id), reverse=True)
    assert found == [e.event_id for e in wanted]


def test_search_with_an_unknown_legacy_name_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as caught:
        legacy.parse_search(QueryFilters(event_type="login"), key=KEY)
    assert [v.field for v in caught.value.violations] == ["event_type"]


@pytest.mark.parametrize(("time_range", "hours"), [("24h", 24), ("", 24), ("1h", 1), ("7d", 168)])
async def test_dashboard_counts_equal_a_brute_force_count(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event], time_range: str, hours: int
) -> None:
    events = recent_events(make_event)
    await store(audit_pool, events)
    board = await legacy.dashboard(PgEventReader(audit_pool), time_range, NOW)
    inside = [e for e in events if NOW - timedelta(hours=hours) <= e.event_time < NOW]
    assert inside, "the data set has events in the range"
    by_type = Counter(e.event_type for e in inside)
    assert board == legacy.Dashboard(
        time_range=time_range or "24h",
        total_events=len(inside),
        successful_logins=by_type["auth.login_success"],
        failed_logins=by_type["auth.login_failed"],
        unique_users=len({e.user_id for e in inside if e.user_id}),
        events_by_type={legacy.to_v1(t): n for t, n in by_type.items()},
        events_by_result=dict(Counter(e.result for e in inside)),
    )
    assert "user_login" in board.events_by_type or hours == 1


async def test_dashboard_rejects_an_unknown_range(audit_pool: asyncpg.Pool) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await legacy.dashboard(PgEventReader(audit_pool), "90d", NOW)
    assert [v.field for v in caught.value.violations] == ["time_range"]
