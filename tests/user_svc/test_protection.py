"""Rate limits and suspicious-activity rules, against the real Redis and PostgreSQL
(sign-in delays: test_throttle.py). Rate-limit windows are a day long here so no window
ends mid-test."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.testkit.grpc_status import reason_and_fields
from tests.user_svc.conftest import StartUser
from tests.user_svc.support import Account, Harness, details, fails, md
from user.v1 import user_service_pb2 as pb

DAY = 86400


def wrong(account: Account) -> Account:
    return Account(account.user, "not the password")


async def test_rate_limit_per_address(start_user: StartUser) -> None:
    async with start_user(rate_limit_per_ip=3, rate_limit_window_seconds=DAY) as h:
        alice = await h.register("alice", ip="198.51.100.1")
        for _ in range(3):
            await h.login(alice, ip="198.51.100.2")
        for _ in range(2):
            err = await fails(h.login(alice, ip="198.51.100.2"))
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason_and_fields(err)[0] == "RATE_LIMITED"
        status = rpc_status.from_call(err)
        assert status is not None
        retry = error_details_pb2.RetryInfo()
        assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
        assert retry.retry_delay.seconds == DAY
        await h.login(alice, ip="198.51.100.3")

        limited = await h.events(event_type="security.rate_limit_exceeded")
    [event] = limited  # only the first refusal of a window is recorded
    assert (event.result, event.ip_address, event.user_id) == ("denied", "198.51.100.2", "")
    assert details(event) == {
        "limit": "login_per_ip",
        "max_calls": 3,
        "window_seconds": DAY,
        "rpc": "Login",
    }
    assert list(event.compliance_tags) == ["SOX", "GDPR"]
    assert event.data_classification == "restricted"


async def test_rate_limit_per_account(start_user: StartUser) -> None:
    async with start_user(rate_limit_per_account=2, rate_limit_window_seconds=DAY) as h:
        await h.register("alice")
        for ip in ("198.51.100.1", "198.51.100.2"):
            await h.stub.RequestPasswordReset(
                pb.RequestPasswordResetRequest(email="alice@example.com"), metadata=md(ip)
            )
        err = await fails(
            h.stub.RequestPasswordReset(
                pb.RequestPasswordResetRequest(email="ALICE@example.com"),
                metadata=md("198.51.100.3"),
            )
        )
        assert reason_and_fields(err)[0] == "RATE_LIMITED"
        # The same limit counts emails that have no account, and says the same.
        for _ in range(2):
            await h.stub.RequestPasswordReset(
                pb.RequestPasswordResetRequest(email="ghost@example.com"), metadata=md()
            )
        err = await fails(
            h.stub.RequestPasswordReset(
                pb.RequestPasswordResetRequest(email="GHOST@example.com"),
                metadata=md("198.51.100.5"),
            )
        )
        assert reason_and_fields(err)[0] == "RATE_LIMITED"
        limited = await h.events(event_type="security.rate_limit_exceeded")
    assert [(e.ip_address, details(e)["limit"]) for e in limited] == [
        ("198.51.100.3", "password_reset_per_account"),
        ("198.51.100.5", "password_reset_per_account"),
    ]


async def test_failures_from_many_addresses_are_suspicious(start_user: StartUser) -> None:
    async with start_user(suspicious_distinct_ips=3) as h:
        alice = await h.register("alice")
        for ip in ("198.51.100.1", "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"):
            await fails(h.login(wrong(alice), ip=ip))
        suspicious = await h.events(event_type="security.suspicious_activity")
    [event] = suspicious
    assert (event.user_id, event.username, event.result) == (alice.user_id, "alice", "failure")
    assert event.ip_address == "198.51.100.3"
    assert details(event) == {
        "rule": "failures_from_many_ips",
        "distinct_ips": 3,
        "window_seconds": 600,
    }


async def test_success_from_a_new_address_after_failures_is_suspicious(h: Harness) -> None:
    alice = await h.login(await h.register("alice"), ip="198.51.100.1")
    bob = await h.login(await h.register("bob"), ip="198.51.100.1")
    for account in (alice, bob):
        for _ in range(3):
            await fails(h.login(wrong(account), ip="203.0.113.99"))
    await h.login(alice, ip="203.0.113.99")  # new address: flagged
    await h.login(bob, ip="198.51.100.1")  # known address: not flagged

    [event] = await h.events(event_type="security.suspicious_activity")
    assert (event.user_id, event.result, event.ip_address) == (
        alice.user_id,
        "success",
        "203.0.113.99",
    )
    assert details(event) == {
        "rule": "success_from_new_ip_after_failures",
        "failed_logins": 3,
        "session_id": alice.session_id,
    }
