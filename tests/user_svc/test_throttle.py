"""Failed sign-ins delay, never lock (user_svc/throttle.py), and a forged
x-forwarded-for changes nothing: the attacks of issue 19 against a real user-service,
its Redis and PostgreSQL, and a real gateway in front of it."""

from __future__ import annotations

import grpc

from audit_svc.app import AuditApp
from tests.gateway.harness import client, running_gateway
from tests.gateway.rest import error_of
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields, retry_delay
from tests.user_svc.conftest import StartUser
from tests.user_svc.support import Account, Harness, details, fails, md, next_code
from user.v1 import user_service_pb2 as pb
from user.v1 import user_service_pb2_grpc as pb_grpc

ATTACKER = "203.0.113.66"
HOME = "198.51.100.20"
NEW = "198.51.100.30"
DAY = 86400
# Delays long enough that none ends mid-test.
SLOW = {"login_delay_seconds": 600, "login_max_delay_seconds": 3600}


def wrong(account: Account) -> Account:
    return Account(account.user, "not the password")


async def refused(h: Harness, account: Account, ip: str, totp_code: str = "") -> str:
    err = await fails(h.login(account, ip=ip, totp_code=totp_code))
    return reason_and_fields(err)[0]


async def test_wrong_passwords_slow_down_their_address_not_the_owner(
    start_user: StartUser,
) -> None:
    async with start_user(login_free_failures=3, **SLOW) as h:
        carol = await h.register("carol")
        reasons = [await refused(h, wrong(carol), ATTACKER) for _ in range(5)]
        assert reasons == ["INVALID_CREDENTIALS"] * 4 + ["LOGIN_THROTTLED"]
        # The right password from that address waits too, and is not even checked.
        err = await fails(h.login(carol, ip=ATTACKER))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_and_fields(err)[0] == "LOGIN_THROTTLED"
        assert 590 <= retry_delay(err) <= 600
        # Carol, from her own address, is not locked and not delayed.
        signed_in = await h.login(carol, ip=HOME)
        assert not signed_in.user.locked
        [delay] = await h.events(event_type="security.rate_limit_exceeded")
    assert (delay.user_id, delay.ip_address) == (carol.user_id, ATTACKER)
    assert details(delay) == {
        "limit": "login_failures_per_source",
        "failed_logins": 4,
        "delay_seconds": 600,
        "rpc": "Login",
    }


async def test_an_account_wide_delay_is_passed_by_the_owner(start_user: StartUser) -> None:
    async with start_user(login_account_free_failures=2, **SLOW) as h:
        carol = await h.login(await h.register("carol"), ip=HOME)
        dave = await h.login(await h.register("dave"), ip=HOME)
        token = md(token=dave.access_token)
        secret = (
            await h.stub.EnableMfa(pb.EnableMfaRequest(user_id=dave.user_id), metadata=token)
        ).secret
        code = next_code(secret, dave)
        await h.stub.VerifyMfa(
            pb.VerifyMfaRequest(user_id=dave.user_id, totp_code=code), metadata=token
        )
        for account in (carol, dave):  # a guess from each of three addresses
            for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
                assert await refused(h, wrong(account), ip) == "INVALID_CREDENTIALS"

        # A new address with only the password waits (it could be the guesser)...
        assert await refused(h, carol, NEW) == "LOGIN_THROTTLED"
        # ... an address carol signed in from before does not.
        await h.login(carol, ip=HOME)
        # The reset link clears the delay for every address.
        await h.stub.RequestPasswordReset(
            pb.RequestPasswordResetRequest(email="carol@example.com"), metadata=md(NEW)
        )
        [message] = await h.reset_messages()
        carol.password = "a new correct horse battery"
        await h.stub.ConfirmPasswordReset(
            pb.ConfirmPasswordResetRequest(
                reset_token=message["reset_token"], new_password=carol.password
            ),
            metadata=md(NEW),
        )
        await h.login(carol, ip=NEW)

        # Dave has MFA: from a new address, the password and a valid code pass; a
        # wrong code is the delay, so it tells nothing.
        assert await refused(h, dave, NEW, totp_code="000000") == "LOGIN_THROTTLED"
        await h.login(dave, ip=NEW, totp_code=next_code(secret, dave))


async def test_a_forged_x_forwarded_for_does_not_dodge_the_rate_limit(
    start_user: StartUser, audit_app: AuditApp
) -> None:
    ghost = {"username": "ghost", "password": "not the password"}
    async with start_user(rate_limit_per_ip=3, rate_limit_window_seconds=DAY) as h:
        upstreams = f"audit=127.0.0.1:{audit_app.port},user=127.0.0.1:{h.app.port}"
        async with running_gateway(upstreams=upstreams) as gateway:
            async with client(gateway.ports["user"]) as http:
                answers = []
                for i in range(4):  # from loopback, a new forged address each time
                    forged = {"x-forwarded-for": f"192.0.2.{i}"}
                    r = await http.post("/api/v1/auth/login", json=ghost, headers=forged)
                    answers.append((r.status_code, error_of(r)[1]))
        assert answers == [(401, "INVALID_CREDENTIALS")] * 3 + [(429, "RATE_LIMITED")]

        # A peer that is not the gateway is its own address, whatever it forwards: the
        # same loopback budget, already spent.
        async with tls.channel(f"127.0.0.1:{h.app.port}") as channel:
            stub = pb_grpc.UserServiceStub(channel)
            err = await fails(stub.Login(pb.LoginRequest(**ghost), metadata=md("192.0.2.99")))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_and_fields(err)[0] == "RATE_LIMITED"
        # The gateway's own identity is believed: that caller has its own budget.
        err = await fails(h.stub.Login(pb.LoginRequest(**ghost), metadata=md("192.0.2.99")))
        assert reason_and_fields(err)[0] == "INVALID_CREDENTIALS"
