"""Query against a real PostgreSQL: filters, newest-first order, keyset pages, tokens."""

from __future__ import annotations

import ipaddress
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from audit_svc.errors import InvalidArgument
from audit_svc.model import Event, StoredEvent
from audit_svc.read.query import (
    Position,
    QueryFilters,
    QuerySpec,
    encode_page_token,
    parse_query,
    run_query,
)
from audit_svc.storage import event_reads as reads
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.event_writes import append, ensure_chain

KEY = b"test-page-token-key"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TYPES = [
    "auth.login_success",
    "auth.login_failed",
    "auth.logout",
    "user.user_created",
    "mfa.mfa_enabled",
    "a_b.thing",  # `_` is a LIKE wildcard: `a_b.*` must not match `axb.thing`
    "axb.thing",
]


async def store(pool: asyncpg.Pool, events: list[Event], chain_id: str = "chain-1") -> None:
    async with pool.acquire() as conn:
        await ensure_chain(conn, chain_id)
        await append(conn, chain_id, events)


def varied_events(make_event: Callable[..., Event], count: int = 150) -> list[Event]:
    """Events over many fields; some share an event_time so ties are ordered by id."""
    rng = random.Random(7)
    events = []
    for i in range(count):
        when = T0 + timedelta(minutes=rng.randrange(0, 600)) if i % 10 else T0
        events.append(
            make_event(
                when,
                event_id=uuid.uuid4(),
                event_type=rng.choice(TYPES),
                user_id=rng.choice(["user123", "user456", "user789", ""]),
                username=rng.choice(["johndoe", "janedoe"]),
                ip_address=ipaddress.ip_address(rng.choice(["192.168.1.100", "2001:db8::1"])),
                service=rng.choice(["user-service", "billing"]),
                action=rng.choice(["login_success", "create"]),
                result=rng.choice(["success", "failure", "denied"]),
                details={"mfa_used": rng.random() < 0.5, "attempt": rng.randrange(3)},
                compliance_tags=tuple(rng.sample(["SOX", "GDPR", "HIPAA"], rng.randrange(3))),
                data_classification=rng.choice(["internal", "confidential"]),
            )
        )
    return events


def parse(
    key: bytes = KEY, page_size: int = 0, limit: int = 0, page_token: str = "", **filters: Any
) -> QuerySpec:
    """parse_query with the filters as keywords, as a request sets them."""
    return parse_query(
        QueryFilters(**filters), key=key, page_size=page_size, limit=limit, page_token=page_token
    )


def newest_first(events: list[Event]) -> list[uuid.UUID]:
    ordered = sorted(events, key=lambda e: (e.event_time, e.event_id), reverse=True)
    return [e.event_id for e in ordered]


async def every_page(pool: asyncpg.Pool, page_size: int, **filters: Any) -> list[list[StoredEvent]]:
    pages, token = [], ""
    while True:
        spec = parse(page_size=page_size, page_token=token, **filters)
        page = await run_query(PgEventReader(pool), spec, KEY)
        pages.append(page.events)
        token = page.next_page_token
        if not token:
            return pages


def ids(pages: list[list[StoredEvent]]) -> list[uuid.UUID]:
    return [s.event.event_id for page in pages for s in page]


FILTERS: list[tuple[dict[str, Any], Callable[[Event], bool]]] = [
    ({"event_type": "auth.login_failed"}, lambda e: e.event_type == "auth.login_failed"),
    ({"event_type": "auth.*"}, lambda e: e.event_type.startswith("auth.")),
    ({"event_type": "a_b.*"}, lambda e: e.event_type.startswith("a_b.")),
    ({"user_id": "user456"}, lambda e: e.user_id == "user456"),
    ({"username": "janedoe"}, lambda e: e.username == "janedoe"),
    ({"service": "billing"}, lambda e: e.service == "billing"),
    ({"action": "create"}, lambda e: e.action == "create"),
    ({"result": "denied"}, lambda e: e.result == "denied"),
    ({"compliance_tag": "HIPAA"}, lambda e: "HIPAA" in e.compliance_tags),
    ({"data_classification": "confidential"}, lambda e: e.data_classification == "confidential"),
    ({"ip_address": "2001:db8::1"}, lambda e: str(e.ip_address) == "2001:db8::1"),
    ({"details_contains": '{"mfa_used": true}'}, lambda e: e.details["mfa_used"] is True),
    (
        {"details_contains": '{"mfa_used": false, "attempt": 2}'},
        lambda e: e.details == {"mfa_used": False, "attempt": 2},
    ),
    (
        {"start_time": T0 + timedelta(hours=2), "end_time": T0 + timedelta(hours=5)},
        lambda e: T0 + timedelta(hours=2) <= e.event_time < T0 + timedelta(hours=5),
    ),
    (
        {"event_type": "auth.*", "user_id": "user123", "result": "success"},
        lambda e: (
            e.event_type.startswith("auth.") and e.user_id == "user123" and e.result == "success"
        ),
    ),
]


@pytest.mark.parametrize(("filters", "matches"), FILTERS, ids=[str(f) for f, _ in FILTERS])
async def test_each_filter_returns_exactly_the_matching_events_newest_first(
    audit_pool: asyncpg.Pool,
    make_event: Callable[..., Event],
    filters: dict[str, Any],
    matches: Callable[[Event], bool],
) -> None:
    events = varied_events(make_event)
    await store(audit_pool, events)
    expected = newest_first([e for e in events if matches(e)])
    assert expected, "the data set exercises the filter"
    assert ids(await every_page(audit_pool, 1000, **filters)) == expected


async def test_paging_yields_every_event_once_in_order(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event]
) -> None:
    events = varied_events(make_event)
    await store(audit_pool, events)
    pages = await every_page(audit_pool, 7)
    assert ids(pages) == newest_first(events)
    assert [len(p) for p in pages[:-1]] == [7] * (len(pages) - 1)


async def test_last_full_page_has_no_next_token(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event]
) -> None:
    await store(audit_pool, [make_event(T0 + timedelta(seconds=i)) for i in range(14)])
    pages = await every_page(audit_pool, 7)
    assert [len(p) for p in pages] == [7, 7]


async def test_events_stored_while_paging_do_not_shift_pages(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event]
) -> None:
    old = [make_event(T0 + timedelta(seconds=i)) for i in range(10)]
    await store(audit_pool, old)
    first = await run_query(PgEventReader(audit_pool), parse(page_size=4), KEY)
    await store(audit_pool, [make_event(T0 + timedelta(hours=1))])
    spec = parse(page_size=100, page_token=first.next_page_token)
    rest = await run_query(PgEventReader(audit_pool), spec, KEY)
    assert [s.event.event_id for s in first.events + rest.events] == newest_first(old)
    assert rest.next_page_token == ""


async def test_page_size_defaults_to_50_and_limit_is_used_when_page_size_is_0(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event]
) -> None:
    await store(audit_pool, [make_event(T0 + timedelta(seconds=i)) for i in range(60)])
    default = await run_query(PgEventReader(audit_pool), parse(), KEY)
    by_limit = await run_query(PgEventReader(audit_pool), parse(limit=10), KEY)
    both = await run_query(PgEventReader(audit_pool), parse(limit=10, page_size=20), KEY)
    assert (len(default.events), len(by_limit.events), len(both.events)) == (50, 10, 20)
    assert parse(page_size=5000).page_size == 1000


async def test_page_token_from_other_filters_or_tampered_is_refused(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event]
) -> None:
    await store(audit_pool, [make_event(T0 + timedelta(seconds=i)) for i in range(5)])
    page = await run_query(PgEventReader(audit_pool), parse(page_size=2, user_id="user123"), KEY)
    token = page.next_page_token
    assert token
    # The page size may change between pages; the filters may not.
    parse(page_size=3, user_id="user123", page_token=token)
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    attempts: list[dict[str, Any]] = [
        {"user_id": "user456", "page_token": token},
        {"page_token": token},
        {"user_id": "user123", "page_token": flipped},
        {"user_id": "user123", "page_token": token[:-2]},
        {"user_id": "user123", "page_token": "not a token!"},
    ]
    for attempt in attempts:
        with pytest.raises(InvalidArgument) as caught:
            parse(**attempt)
        assert caught.value.reason == "INVALID_PAGE_TOKEN"
        assert [v.field for v in caught.value.violations] == ["page_token"]
    with pytest.raises(InvalidArgument) as caught:
        parse(key=b"another key", user_id="user123", page_token=token)
    assert caught.value.reason == "INVALID_PAGE_TOKEN"


def test_page_token_is_url_safe_and_opaque() -> None:
    spec = QuerySpec(QueryFilters(user_id="user123"))
    token = encode_page_token(Position(T0, uuid.uuid4()), spec.fingerprint(), KEY)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "user123" not in token


@pytest.mark.parametrize(
    ("request_fields", "bad_fields"),
    [
        ({"page_size": -1}, ["page_size"]),
        ({"limit": -5}, ["limit"]),
        ({"details_contains": "[1, 2]"}, ["details_contains"]),
        ({"details_contains": "{nope"}, ["details_contains"]),
        ({"ip_address": "999.1.1.1"}, ["ip_address"]),
        ({"start_time": T0, "end_time": T0}, ["end_time"]),
        ({"event_type": "Auth.Login"}, ["event_type"]),
        ({"event_type": "auth*"}, ["event_type"]),
        ({"event_type": "*"}, ["event_type"]),
        ({"user_id": "a\x00b"}, ["user_id"]),
        (
            {"page_size": -1, "ip_address": "x", "event_type": "a..b", "page_token": "junk"},
            ["page_size", "event_type", "ip_address"],
        ),
    ],
)
def test_invalid_filters_name_each_bad_field(
    request_fields: dict[str, Any], bad_fields: list[str]
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse(**request_fields)
    assert caught.value.reason == "INVALID_ARGUMENT"
    assert sorted(v.field for v in caught.value.violations) == sorted(bad_fields)


async def test_get_event_reads_one_event_or_none(
    audit_pool: asyncpg.Pool, make_event: Callable[..., Event]
) -> None:
    event = make_event(T0, details={"nested": {"list": [1, "two", None]}, "n": 1.5})
    await store(audit_pool, [event])
    async with reads.acquire(audit_pool) as conn:
        found = await reads.get_event(conn, event.event_id)
        missing = await reads.get_event(conn, uuid.uuid4())
    assert found is not None and missing is None
    assert found.event == event
    assert (found.receipt.chain_id, found.receipt.seq) == ("chain-1", 1)
