"""Sign-in, tokens and passwords over gRPC, each outcome found in the audit-service."""

from __future__ import annotations

import asyncio
from typing import cast

import grpc
import jwt
import redis.asyncio as aioredis
from grpc_status import rpc_status

from tests.testkit.grpc_status import reason_and_fields
from tests.user_svc.conftest import StartUser
from tests.user_svc.support import AGENT, IP, PASSWORD, Account, Harness, details, fails, md
from user.v1 import user_service_pb2 as pb

NEW_PASSWORD = "a much better passphrase 2"


async def test_login_success_is_audited_with_session_and_mfa_flag(h: Harness) -> None:
    alice = await h.login(await h.register("alice"), ip="192.168.1.100", agent="Mozilla/5.0")

    assert alice.access_token and alice.refresh_token and alice.session_id.startswith("sess_")
    [event] = await h.events(event_type="auth.login_success")
    assert (event.user_id, event.username) == (alice.user_id, "alice")
    assert (event.ip_address, event.user_agent) == ("192.168.1.100", "Mozilla/5.0")
    assert (event.service, event.action, event.result) == (
        "user-service",
        "login_success",
        "success",
    )
    assert details(event) == {"mfa_used": False, "session_id": alice.session_id}
    assert list(event.compliance_tags) == ["SOX", "GDPR"]
    assert event.data_classification == "internal"


async def test_wrong_password_and_unknown_user_look_the_same(h: Harness) -> None:
    await h.register("alice")
    wrong = await fails(
        h.stub.Login(pb.LoginRequest(username="alice", password="nope"), metadata=md())
    )
    unknown = await fails(
        h.stub.Login(pb.LoginRequest(username="mallory", password="nope"), metadata=md())
    )

    assert wrong.code() == unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong.details() == unknown.details()
    assert rpc_status.from_call(wrong) == rpc_status.from_call(unknown)
    assert reason_and_fields(wrong) == ("INVALID_CREDENTIALS", [])

    # Only the audit trail tells them apart.
    failed = await h.events(event_type="auth.login_failed")
    assert [(e.username, details(e)["reason"]) for e in failed] == [
        ("alice", "wrong_password"),
        ("mallory", "unknown_user"),
    ]
    assert failed[1].user_id == ""
    assert all(e.result == "failure" and not details(e)["mfa_used"] for e in failed)


async def test_access_token_is_a_signed_jwt_naming_user_and_session(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    assert claims["sub"] == alice.user_id
    assert claims["sid"] == alice.session_id
    assert claims["roles"] == []
    header, payload, signature = alice.access_token.split(".")
    forged = jwt.encode({**claims, "roles": ["admin"]}, "guessed-key-guessed-key-guessed-key")
    for token in (forged, f"{header}.{payload}.{signature[:-4]}AAAA"):
        err = await fails(
            h.stub.GetUser(pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=token))
        )
        assert reason_and_fields(err)[0] == "INVALID_TOKEN"


async def test_refresh_rotates_and_a_reused_token_ends_the_session(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    first = alice.refresh_token
    reply = await h.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first), metadata=md())
    assert reply.refresh_token != first and reply.access_token
    assert reply.expires_in.seconds == h.app.settings.access_token_ttl_seconds
    await h.stub.GetUser(
        pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=reply.access_token)
    )

    err = await fails(
        h.stub.RefreshToken(
            pb.RefreshTokenRequest(refresh_token=first), metadata=md("198.51.100.66")
        )
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_and_fields(err)[0] == "INVALID_REFRESH_TOKEN"
    # The reuse ended the session: the newest tokens stop working too.
    err = await fails(
        h.stub.RefreshToken(
            pb.RefreshTokenRequest(refresh_token=reply.refresh_token), metadata=md()
        )
    )
    assert reason_and_fields(err)[0] == "INVALID_REFRESH_TOKEN"
    err = await fails(
        h.stub.GetUser(
            pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=reply.access_token)
        )
    )
    assert reason_and_fields(err)[0] == "SESSION_ENDED"

    events = [e for e in await h.events() if e.event_type.startswith(("auth.token", "security"))]
    assert [(e.event_type, e.result, details(e).get("reason")) for e in events] == [
        ("auth.token_refresh", "success", None),
        ("auth.token_refresh", "failure", "token_reused"),
        ("security.suspicious_activity", "denied", None),
        ("auth.token_refresh", "failure", "session_ended"),
    ]
    assert all(details(e)["session_id"] == alice.session_id for e in events)
    suspicious = events[2]
    assert details(suspicious)["rule"] == "refresh_token_reuse"
    assert (suspicious.user_id, suspicious.ip_address) == (alice.user_id, "198.51.100.66")
    assert suspicious.data_classification == "restricted"


async def test_logout_ends_the_session(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    await h.stub.Logout(pb.LogoutRequest(refresh_token=alice.refresh_token), metadata=md())

    err = await fails(
        h.stub.RefreshToken(
            pb.RefreshTokenRequest(refresh_token=alice.refresh_token), metadata=md()
        )
    )
    assert reason_and_fields(err)[0] == "INVALID_REFRESH_TOKEN"
    err = await fails(
        h.stub.GetUser(
            pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=alice.access_token)
        )
    )
    assert reason_and_fields(err)[0] == "SESSION_ENDED"
    err = await fails(h.stub.Logout(pb.LogoutRequest(refresh_token="rt_unknown"), metadata=md()))
    assert reason_and_fields(err)[0] == "INVALID_REFRESH_TOKEN"

    [logout, unknown] = await h.events(event_type="auth.logout")
    assert (logout.user_id, logout.result) == (alice.user_id, "success")
    assert details(logout) == {"session_id": alice.session_id, "already_ended": False}
    assert (unknown.user_id, unknown.result, details(unknown)) == (
        "",
        "failure",
        {"reason": "unknown_token"},
    )


async def test_change_password_checks_the_current_one_and_ends_other_sessions(
    h: Harness,
) -> None:
    alice = laptop = await h.login(await h.register("alice"))
    phone = await h.login(Account(alice.user, PASSWORD))

    err = await fails(
        h.stub.ChangePassword(
            pb.ChangePasswordRequest(current_password="wrong one", new_password=NEW_PASSWORD),
            metadata=md(token=phone.access_token),
        )
    )
    assert reason_and_fields(err)[0] == "INVALID_CREDENTIALS"
    await h.stub.ChangePassword(
        pb.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=md(token=phone.access_token),
    )

    err = await fails(
        h.stub.GetUser(
            pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=laptop.access_token)
        )
    )
    assert reason_and_fields(err)[0] == "SESSION_ENDED"
    await h.stub.GetUser(
        pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=phone.access_token)
    )
    err = await fails(h.login(Account(alice.user, PASSWORD)))
    assert reason_and_fields(err)[0] == "INVALID_CREDENTIALS"
    await h.login(Account(alice.user, NEW_PASSWORD))

    changed = await h.events(event_type="password.password_changed")
    assert [(e.result, details(e)) for e in changed] == [
        (
            "failure",
            {
                "method": "change",
                "reason": "wrong_current_password",
                "session_id": phone.session_id,
            },
        ),
        ("success", {"method": "change", "session_id": phone.session_id, "sessions_ended": 1}),
    ]
    assert all(e.user_id == alice.user_id and list(e.compliance_tags) == ["SOX"] for e in changed)


async def test_password_reset_answers_the_same_and_the_token_works_once(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    await h.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email="ALICE@example.com"), metadata=md()
    )
    await h.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email="nobody@example.com"), metadata=md()
    )
    [message] = await h.reset_messages()
    # Only what a mail sender needs.
    assert set(message) == {"kind", "email", "reset_token", "expire_time"}
    assert message["email"] == "alice@example.com"
    token = message["reset_token"]

    err = await fails(
        h.stub.ConfirmPasswordReset(
            pb.ConfirmPasswordResetRequest(reset_token=token, new_password="short"), metadata=md()
        )
    )
    assert reason_and_fields(err)[1] == ["new_password"]
    await h.stub.ConfirmPasswordReset(
        pb.ConfirmPasswordResetRequest(reset_token=token, new_password=NEW_PASSWORD),
        metadata=md(),
    )
    err = await fails(
        h.stub.ConfirmPasswordReset(
            pb.ConfirmPasswordResetRequest(reset_token=token, new_password=NEW_PASSWORD + "!"),
            metadata=md(),
        )
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_and_fields(err)[0] == "INVALID_RESET_TOKEN"

    err = await fails(
        h.stub.GetUser(
            pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=alice.access_token)
        )
    )
    assert reason_and_fields(err)[0] == "SESSION_ENDED"
    await h.login(Account(alice.user, NEW_PASSWORD))

    requested = await h.events(event_type="password.password_reset_requested")
    assert [(e.user_id, e.result) for e in requested] == [
        (alice.user_id, "success"),
        ("", "failure"),
    ]
    assert details(requested[0]) == {
        "expires_in_seconds": h.app.settings.reset_token_ttl_seconds,
        "queued_for_delivery": True,
    }
    assert details(requested[1]) == {"reason": "unknown_email"}
    changed = await h.events(event_type="password.password_changed")
    assert [(e.user_id, e.result, details(e)) for e in changed] == [
        (alice.user_id, "success", {"method": "reset", "sessions_ended": 1}),
        (alice.user_id, "failure", {"method": "reset", "reason": "used_or_expired_reset"}),
    ]
    assert all((e.ip_address, e.user_agent) == (IP, AGENT) for e in requested + changed)


async def redis_dump(client: aioredis.Redis, prefix: str) -> tuple[list[bytes], bytes]:
    """Every key of the service and every value in them, as someone reading Redis sees
    (a client without decode_responses answers bytes)."""
    keys: list[bytes] = []
    values: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}*"):
        keys.append(key)
        kind = await client.type(key)
        if kind == b"string":
            values.append(cast(bytes, await client.get(key)))
        elif kind == b"list":
            values += cast(list[bytes], await client.lrange(key, 0, -1))
        elif kind == b"hash":
            for field, value in cast(dict[bytes, bytes], await client.hgetall(key)).items():
                values += [field, value]
        elif kind == b"zset":
            values += cast(list[bytes], await client.zrange(key, 0, -1))
    return keys, b"\n".join(values)


async def test_reading_redis_gives_no_usable_reset_token(start_user: StartUser) -> None:
    async with start_user(reset_outbox_ttl_seconds=2) as h:
        await h.register("alice")
        await h.stub.RequestPasswordReset(
            pb.RequestPasswordResetRequest(email="alice@example.com"), metadata=md()
        )
        client = aioredis.Redis.from_url(h.redis_url)
        try:
            keys, values = await redis_dump(client, h.app.settings.redis_prefix)
            [message] = await h.reset_messages()  # the mailer, which holds the key
            token = message["reset_token"].encode()
            assert token not in values and token not in b"".join(keys)
            assert b"pr_" not in values and b"reset_token" not in values
            # What Redis shows (the message id) is no token either.
            outbox = h.app.settings.reset_outbox_key.encode()
            [sealed_key] = [k for k in keys if k.startswith(outbox + b":")]
            err = await fails(
                h.stub.ConfirmPasswordReset(
                    pb.ConfirmPasswordResetRequest(
                        reset_token=sealed_key.rsplit(b":", 1)[-1].decode(),
                        new_password=NEW_PASSWORD,
                    ),
                    metadata=md(),
                )
            )
            assert reason_and_fields(err)[0] == "INVALID_RESET_TOKEN"
            # The sealed message is gone after its TTL (the token itself lives longer).
            assert 0 < await client.pttl(sealed_key) <= 2000
            for _ in range(100):
                if not await client.exists(sealed_key, outbox):
                    break
                await asyncio.sleep(0.1)
            assert await h.reset_messages() == []
            assert not await client.exists(sealed_key, outbox)
        finally:
            await client.aclose()
        await h.stub.ConfirmPasswordReset(
            pb.ConfirmPasswordResetRequest(reset_token=token.decode(), new_password=NEW_PASSWORD),
            metadata=md(),
        )
