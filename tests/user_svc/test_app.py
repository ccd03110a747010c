"""The service as operators and clients meet it: health, reflection, settings, caller
addresses, keys across restarts, auditing off, shutdown, and all 18 event types."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from audit.v2 import audit_service_pb2 as audit_pb
from audit.v2.audit_service_pb2_grpc import AuditServiceStub
from audit_svc.app import AuditApp
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields
from tests.user_svc.conftest import StartUser
from tests.user_svc.support import PASSWORD, Account, Harness, details, fails, md, next_code
from user.v1 import user_service_pb2 as pb
from user_svc import Settings, SettingsError, __version__
from user_svc.audit import EVENT_TYPES, policy

KEY_A = "a" * 40
KEY_B = "b" * 40


async def test_health_reflection_and_the_health_rpc(h: Harness) -> None:
    reply = await h.stub.Health(pb.HealthRequest())
    assert (reply.status, reply.version) == ("SERVING", __version__)
    async with tls.channel(f"127.0.0.1:{h.app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "user.v1.UserService"):
            check = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert check.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for a in answers for s in a.list_services_response.service]
    assert {"user.v1.UserService", "grpc.health.v1.Health"} <= set(names)


def test_settings_mask_secrets_and_list_every_problem() -> None:
    settings = Settings.from_env(
        {
            "USER_JWT_SIGNING_KEY": KEY_A,
            "USER_MFA_ENCRYPTION_KEY": KEY_B,
            "USER_DATABASE_URL": "postgresql://svc:hunter2@db:5432/users",
            "USER_LOGIN_FREE_FAILURES": "7",
            **tls.env_of("USER_", "user-service"),
        }
    )
    assert settings.login_free_failures == 7
    shown = repr(settings)
    assert KEY_A not in shown and KEY_B not in shown and "hunter2" not in shown
    assert "jwt_signing_key='***'" in shown and "svc:***@db" in shown

    with pytest.raises(SettingsError) as bad:
        Settings.from_env(
            {
                "USER_REQUIRE_KEYS": "true",
                "USER_MFA_ENCRYPTION_KEY": "short",
                "USER_RATE_LIMIT_PER_IP": "lots",
                "USER_GRPC_LISTEN": "nowhere",
                "USER_TRUSTED_PROXIES": "10.0.0.0/8,not-a-net",
                "USER_LOCKOUT_THRESHOLD": "5",  # retired: delays replaced the lockout
            }
        )
    message = str(bad.value)
    for variable in (
        "USER_JWT_SIGNING_KEY",
        "USER_MFA_ENCRYPTION_KEY",
        "USER_RATE_LIMIT_PER_IP",
        "USER_GRPC_LISTEN",
        "USER_TRUSTED_PROXIES",
        "USER_LOCKOUT_THRESHOLD",
    ):
        assert variable in message
    assert "short" not in message


async def test_the_caller_address_comes_from_the_trusted_proxy_chain(h: Harness) -> None:
    chains = [
        ((("grpcgateway-user-agent", "ua-1"),), "127.0.0.1"),
        # Only the last hop (what the gateway saw) is believed, loopback included.
        ((("x-forwarded-for", "198.51.100.7, 127.0.0.1"),), "127.0.0.1"),
        ((("x-forwarded-for", "198.51.100.8, 192.0.2.1"),), "192.0.2.1"),
        ((("x-forwarded-for", "garbage"),), "127.0.0.1"),
        ((("x-forwarded-for", "2001:db8::5"),), "2001:db8::5"),
    ]
    for i, (metadata, _) in enumerate(chains):
        await h.stub.CreateUser(
            pb.CreateUserRequest(username=f"u{i}xx", email=f"u{i}@example.com", password=PASSWORD),
            metadata=metadata,
        )
    events = await h.events()
    assert [e.ip_address for e in events] == [address for _, address in chains]
    assert events[0].user_agent == "ua-1"
    assert events[1].user_agent.startswith("grpc-python")


async def test_keys_survive_a_restart_and_configured_keys_are_used(
    start_user: StartUser,
) -> None:
    async with start_user() as h:
        alice = await h.login(await h.register("alice"))
    async with start_user() as h:  # same database: the development key is kept
        await h.stub.GetUser(
            pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=alice.access_token)
        )
    async with start_user(jwt_signing_key=KEY_A, mfa_encryption_key=KEY_B) as h:
        err = await fails(
            h.stub.GetUser(
                pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=alice.access_token)
            )
        )
        assert reason_and_fields(err)[0] == "INVALID_TOKEN"
        await h.login(alice)


async def test_auditing_off_records_nothing(start_user: StartUser) -> None:
    async with start_user(audit_enabled=False) as h:
        assert h.app.audit is None
        alice = await h.login(await h.register("alice"))
        await fails(h.login(Account(alice.user, "wrong")))
        reply = await h.audit_stub.Query(audit_pb.QueryRequest())
    assert list(reply.events) == []


async def test_shutdown_delivers_what_was_emitted(
    start_user: StartUser, audit_app: AuditApp
) -> None:
    async with start_user() as h:
        alice = await h.login(await h.register("alice"))
        # No flush: leaving the block shuts the service down, which delivers the events.
    async with tls.channel(f"127.0.0.1:{audit_app.port}") as channel:
        reply = await AuditServiceStub(channel).Query(audit_pb.QueryRequest(user_id=alice.user_id))
    assert sorted(e.event_type for e in reply.events) == [
        "auth.login_success",
        "user.user_created",
    ]


async def test_every_event_type_comes_from_its_action(start_user: StartUser) -> None:
    async with start_user(rate_limit_per_account=3, rate_limit_window_seconds=86400) as h:
        admin = await h.admin()
        root = md(token=admin.access_token)
        alice = await h.login(await h.register("alice"))
        await fails(h.login(Account(alice.user, "wrong")))
        await h.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=alice.refresh_token))
        await fails(h.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=alice.refresh_token)))
        alice = await h.login(alice)
        token = md(token=alice.access_token)
        await h.stub.UpdateUser(
            pb.UpdateUserRequest(user=pb.User(user_id=alice.user_id, email="a2@example.com")),
            metadata=token,
        )
        await h.stub.ChangePassword(
            pb.ChangePasswordRequest(current_password=PASSWORD, new_password=PASSWORD + "2"),
            metadata=token,
        )
        secret = (
            await h.stub.EnableMfa(pb.EnableMfaRequest(user_id=alice.user_id), metadata=token)
        ).secret
        await h.stub.VerifyMfa(
            pb.VerifyMfaRequest(user_id=alice.user_id, totp_code=next_code(secret, alice)),
            metadata=token,
        )
        await h.stub.DisableMfa(
            pb.DisableMfaRequest(user_id=alice.user_id, totp_code=next_code(secret, alice)),
            metadata=token,
        )
        await h.stub.Logout(pb.LogoutRequest(refresh_token=alice.refresh_token))
        reset = pb.RequestPasswordResetRequest(email="a2@example.com")
        for _ in range(3):
            await h.stub.RequestPasswordReset(reset, metadata=md())
        await fails(h.stub.RequestPasswordReset(reset, metadata=md()))
        uid = alice.user_id
        await h.stub.GrantPermission(
            pb.GrantPermissionRequest(user_id=uid, permission="reports.read"), metadata=root
        )
        await h.stub.AssignRole(pb.AssignRoleRequest(user_id=uid, role="auditor"), metadata=root)
        await h.stub.RemoveRole(pb.RemoveRoleRequest(user_id=uid, role="auditor"), metadata=root)
        await h.stub.LockUser(pb.LockUserRequest(user_id=uid), metadata=root)
        await h.stub.DeleteUser(pb.DeleteUserRequest(user_id=uid), metadata=root)
        events = await h.events()

    assert sorted({e.event_type for e in events}) == sorted(EVENT_TYPES)
    assert len(EVENT_TYPES) == 18
    for e in events:
        tags, classification = policy(e.event_type)
        assert e.service == "user-service"
        assert e.action == e.event_type.split(".", 1)[1]
        assert e.result in ("success", "failure", "denied")
        assert (tuple(e.compliance_tags), e.data_classification) == (tags, classification)
        if e.user_agent != "pytest bootstrap":  # the admin made in-process, without a caller
            assert e.ip_address and e.user_agent
    login = next(e for e in events if e.event_type == "auth.login_success")
    assert set(details(login)) == {"mfa_used", "session_id"}
