"""TOTP MFA over gRPC: enrol, verify, sign in with a code, disable; all audited."""

from __future__ import annotations

import asyncpg
import grpc
import pyotp

from tests.testkit.grpc_status import reason_and_fields
from tests.user_svc.support import Harness, details, fails, md, next_code, wrong_code
from user.v1 import user_service_pb2 as pb


async def test_mfa_enrol_verify_sign_in_and_disable(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    token = md(token=alice.access_token)
    enrolment = await h.stub.EnableMfa(pb.EnableMfaRequest(user_id=alice.user_id), metadata=token)
    secret = enrolment.secret
    assert pyotp.parse_uri(enrolment.provisioning_uri).secret == secret
    assert "alice" in enrolment.provisioning_uri

    wrong = await h.stub.VerifyMfa(
        pb.VerifyMfaRequest(user_id=alice.user_id, totp_code=wrong_code(secret)), metadata=token
    )
    assert (wrong.verified, wrong.mfa_enabled) == (False, False)
    right = await h.stub.VerifyMfa(
        pb.VerifyMfaRequest(user_id=alice.user_id, totp_code=next_code(secret, alice)),
        metadata=token,
    )
    assert (right.verified, right.mfa_enabled) == (True, True)

    err = await fails(h.login(alice))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_and_fields(err)[0] == "MFA_REQUIRED"
    err = await fails(h.login(alice, totp_code="12345a"))
    assert reason_and_fields(err)[1] == ["totp_code"]
    code = next_code(secret, alice)
    await h.login(alice, totp_code=code)
    err = await fails(h.login(alice, totp_code=code))  # a code works once
    assert reason_and_fields(err)[0] == "INVALID_MFA_CODE"

    token = md(token=alice.access_token)
    await h.stub.DisableMfa(
        pb.DisableMfaRequest(user_id=alice.user_id, totp_code=next_code(secret, alice)),
        metadata=token,
    )
    user = await h.stub.GetUser(pb.GetUserRequest(user_id=alice.user_id), metadata=token)
    assert not user.user.mfa_enabled

    events = [
        e
        for e in await h.events(user_id=alice.user_id)
        if e.event_type.startswith(("mfa.", "auth.login"))
    ]
    assert [(e.event_type, e.result) for e in events] == [
        ("auth.login_success", "success"),
        ("mfa.mfa_verified", "failure"),
        ("mfa.mfa_verified", "success"),
        ("mfa.mfa_enabled", "success"),
        ("auth.login_failed", "failure"),
        ("auth.login_success", "success"),
        ("auth.login_failed", "failure"),
        ("mfa.mfa_disabled", "success"),
    ]
    assert details(events[1])["reason"] == "invalid_mfa_code"
    assert details(events[2])["enrolment"] is True
    assert details(events[4]) == {"mfa_used": False, "reason": "mfa_required"}
    assert details(events[5]) == {"mfa_used": True, "session_id": alice.session_id}
    assert details(events[6]) == {"mfa_used": True, "reason": "invalid_mfa_code"}
    assert all(list(e.compliance_tags) == ["SOX"] for e in events if e.event_type[:4] == "mfa.")


async def test_the_totp_secret_is_sealed_in_the_database(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    enrolment = await h.stub.EnableMfa(
        pb.EnableMfaRequest(user_id=alice.user_id), metadata=md(token=alice.access_token)
    )
    conn = await asyncpg.connect(h.app.settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT mfa_secret, mfa_pending_secret FROM users WHERE user_id = $1", alice.user_id
        )
    finally:
        await conn.close()
    assert row["mfa_secret"] is None
    sealed = bytes(row["mfa_pending_secret"])
    assert enrolment.secret.encode() not in sealed
    assert len(sealed) > len(enrolment.secret)


async def test_mfa_is_only_for_the_account_itself(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    bob = await h.register("bob")
    admin = await h.admin()
    for token in (alice.access_token, admin.access_token):
        err = await fails(
            h.stub.EnableMfa(pb.EnableMfaRequest(user_id=bob.user_id), metadata=md(token=token))
        )
        assert reason_and_fields(err)[0] == "NOT_ACCOUNT_OWNER"
    err = await fails(
        h.stub.VerifyMfa(
            pb.VerifyMfaRequest(user_id=bob.user_id, totp_code="123456"),
            metadata=md(token=alice.access_token),
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await fails(
        h.stub.DisableMfa(
            pb.DisableMfaRequest(user_id=alice.user_id, totp_code="123456"),
            metadata=md(token=alice.access_token),
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_and_fields(err)[0] == "MFA_NOT_ENABLED"

    [denied] = await h.events(event_type="mfa.mfa_verified")
    assert (denied.user_id, denied.result) == (bob.user_id, "denied")
    assert details(denied)["actor_user_id"] == alice.user_id
