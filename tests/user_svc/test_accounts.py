"""Accounts over gRPC: register, read, list, update, delete, lock, unlock; each change
found in the audit-service exactly once, with the caller's address and user agent."""

from __future__ import annotations

import grpc
from google.protobuf import field_mask_pb2

from tests.testkit.grpc_status import reason_and_fields
from tests.user_svc.support import AGENT, IP, PASSWORD, Harness, details, fails, md
from user.v1 import user_service_pb2 as pb


async def test_register_emits_user_created_with_the_guide_fields(h: Harness) -> None:
    account = await h.register("alice", ip="198.51.100.23", agent="curl/8.5.0")

    assert account.user.username == "alice"
    assert account.user.email == "alice@example.com"
    assert not account.user.locked and not account.user.mfa_enabled
    [event] = await h.events()
    assert event.event_type == "user.user_created"
    assert event.user_id == account.user_id
    assert event.username == "alice"
    assert event.ip_address == "198.51.100.23"
    assert event.user_agent == "curl/8.5.0"
    assert event.service == "user-service"
    assert event.action == "user_created"
    assert event.result == "success"
    assert list(event.compliance_tags) == ["GDPR"]
    assert event.data_classification == "confidential"
    assert details(event) == {"method": "self_registration", "roles": []}


async def test_taken_username_or_email_is_already_exists_and_audited(h: Harness) -> None:
    await h.register("bob")
    err = await fails(
        h.stub.CreateUser(
            pb.CreateUserRequest(username="BOB", email="other@example.com", password=PASSWORD),
            metadata=md(),
        )
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_and_fields(err)[0] == "USERNAME_TAKEN"
    err = await fails(
        h.stub.CreateUser(
            pb.CreateUserRequest(username="bobby", email="Bob@Example.com", password=PASSWORD),
            metadata=md(),
        )
    )
    assert reason_and_fields(err)[0] == "EMAIL_TAKEN"

    events = await h.events()
    assert [(e.event_type, e.result) for e in events] == [
        ("user.user_created", "success"),
        ("user.user_created", "failure"),
        ("user.user_created", "failure"),
    ]
    assert details(events[1])["reason"] == "username_taken"
    assert details(events[2])["reason"] == "email_taken"


async def test_bad_input_names_every_field_and_records_nothing(h: Harness) -> None:
    err = await fails(
        h.stub.CreateUser(
            pb.CreateUserRequest(username="a b", email="not-an-email", password="short"),
            metadata=md(),
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_fields(err) == ("INVALID_ARGUMENT", ["username", "email", "password"])

    err = await fails(h.stub.Login(pb.LoginRequest(), metadata=md()))
    assert reason_and_fields(err) == ("INVALID_ARGUMENT", ["username", "password"])

    admin = await h.admin()
    token = md(token=admin.access_token)
    err = await fails(h.stub.ListUsers(pb.ListUsersRequest(page_size=-1), metadata=token))
    assert reason_and_fields(err)[1] == ["page_size"]
    err = await fails(
        h.stub.UpdateUser(
            pb.UpdateUserRequest(
                user=pb.User(user_id=admin.user_id, email="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["email", "username"]),
            ),
            metadata=token,
        )
    )
    assert reason_and_fields(err)[1] == ["update_mask.paths[1]", "user.email"]
    err = await fails(
        h.stub.AssignRole(pb.AssignRoleRequest(user_id="nope", role="Admin!"), metadata=token)
    )
    assert reason_and_fields(err)[1] == ["user_id", "role"]
    err = await fails(
        h.stub.VerifyMfa(
            pb.VerifyMfaRequest(user_id=admin.user_id, totp_code="12ab"), metadata=token
        )
    )
    assert reason_and_fields(err)[1] == ["totp_code"]

    assert await h.types() == [
        "user.user_created",
        "permission.role_assigned",
        "auth.login_success",
    ]


async def test_get_user_is_for_the_account_itself_or_an_admin(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    bob = await h.register("bob")
    admin = await h.admin()

    own = await h.stub.GetUser(
        pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=alice.access_token)
    )
    assert own.user.username == "alice"
    by_admin = await h.stub.GetUser(
        pb.GetUserRequest(user_id=bob.user_id), metadata=md(token=admin.access_token)
    )
    assert by_admin.user.username == "bob"

    err = await fails(
        h.stub.GetUser(
            pb.GetUserRequest(user_id=bob.user_id), metadata=md(token=alice.access_token)
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_fields(err)[0] == "NOT_ACCOUNT_OWNER"
    err = await fails(h.stub.GetUser(pb.GetUserRequest(user_id=bob.user_id), metadata=md()))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_and_fields(err)[0] == "MISSING_TOKEN"
    err = await fails(
        h.stub.GetUser(pb.GetUserRequest(user_id=bob.user_id), metadata=md(token="not.a.jwt"))
    )
    assert reason_and_fields(err)[0] == "INVALID_TOKEN"
    err = await fails(
        h.stub.GetUser(
            pb.GetUserRequest(user_id="0190a5c0-0000-7000-8000-000000000000"),
            metadata=md(token=admin.access_token),
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_list_users_pages_oldest_first_with_opaque_tokens(h: Harness) -> None:
    admin = await h.admin("root")
    names = [f"user{i}" for i in range(5)]
    for name in names:
        await h.register(name)
    token = md(token=admin.access_token)

    seen: list[str] = []
    page_token = ""
    pages = 0
    while True:
        reply = await h.stub.ListUsers(
            pb.ListUsersRequest(page_size=2, page_token=page_token), metadata=token
        )
        seen += [u.username for u in reply.users]
        pages += 1
        page_token = reply.next_page_token
        if not page_token:
            break
        assert "user" not in page_token and "root" not in page_token
    assert seen == ["root", *names]
    assert pages == 3

    first = await h.stub.ListUsers(pb.ListUsersRequest(page_size=2), metadata=token)
    tampered = first.next_page_token[:-2] + ("AA" if first.next_page_token[-2:] != "AA" else "BB")
    err = await fails(h.stub.ListUsers(pb.ListUsersRequest(page_token=tampered), metadata=token))
    assert reason_and_fields(err)[1] == ["page_token"]

    alice = await h.login(await h.register("alice"))
    err = await fails(
        h.stub.ListUsers(pb.ListUsersRequest(), metadata=md(token=alice.access_token))
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_fields(err)[0] == "ROLE_REQUIRED"


async def test_update_user_changes_the_masked_fields(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    reply = await h.stub.UpdateUser(
        pb.UpdateUserRequest(
            user=pb.User(user_id=alice.user_id, email="new@example.com", display_name="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["email"]),
        ),
        metadata=md(token=alice.access_token),
    )
    assert reply.user.email == "new@example.com"
    assert reply.user.display_name == "alice"

    [event] = await h.events(event_type="user.user_updated")
    assert (event.user_id, event.username, event.result) == (alice.user_id, "alice", "success")
    assert (event.ip_address, event.user_agent) == (IP, AGENT)
    assert details(event) == {
        "fields": ["email"],
        "actor_user_id": alice.user_id,
        "actor_username": "alice",
        "session_id": alice.session_id,
    }
    assert "new@example.com" not in str(event)


async def test_updating_another_account_is_denied_and_audited(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    bob = await h.register("bob")
    err = await fails(
        h.stub.UpdateUser(
            pb.UpdateUserRequest(
                user=pb.User(user_id=bob.user_id, display_name="pwned"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            metadata=md(token=alice.access_token),
        )
    )
    assert reason_and_fields(err)[0] == "NOT_ACCOUNT_OWNER"
    [event] = await h.events(event_type="user.user_updated")
    assert (event.user_id, event.result) == (bob.user_id, "denied")
    assert details(event)["actor_user_id"] == alice.user_id
    assert details(event)["reason"] == "not_account_owner"


async def test_delete_user_is_admin_only_and_audited(h: Harness) -> None:
    admin = await h.admin()
    bob = await h.register("bob")
    await h.stub.DeleteUser(
        pb.DeleteUserRequest(user_id=bob.user_id), metadata=md(token=admin.access_token)
    )
    err = await fails(
        h.stub.GetUser(
            pb.GetUserRequest(user_id=bob.user_id), metadata=md(token=admin.access_token)
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND

    [event] = await h.events(event_type="user.user_deleted")
    assert (event.user_id, event.username, event.result) == (bob.user_id, "bob", "success")
    assert details(event)["actor_user_id"] == admin.user_id
    assert list(event.compliance_tags) == ["GDPR"]

    err = await fails(
        h.stub.DeleteUser(
            pb.DeleteUserRequest(user_id=admin.user_id), metadata=md(token=admin.access_token)
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_and_fields(err)[0] == "LAST_ADMIN"


async def test_lock_ends_sessions_and_unlock_lets_the_account_in(h: Harness) -> None:
    admin = await h.admin()
    alice = await h.login(await h.register("alice"))
    locked = await h.stub.LockUser(
        pb.LockUserRequest(user_id=alice.user_id, reason="investigation 42"),
        metadata=md(token=admin.access_token),
    )
    assert locked.user.locked

    err = await fails(
        h.stub.GetUser(
            pb.GetUserRequest(user_id=alice.user_id), metadata=md(token=alice.access_token)
        )
    )
    assert reason_and_fields(err)[0] == "SESSION_ENDED"
    err = await fails(h.login(alice))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_and_fields(err)[0] == "ACCOUNT_LOCKED"

    unlocked = await h.stub.UnlockUser(
        pb.UnlockUserRequest(user_id=alice.user_id), metadata=md(token=admin.access_token)
    )
    assert not unlocked.user.locked
    await h.login(alice)

    events = await h.events(user_id=alice.user_id)
    assert [(e.event_type, e.result) for e in events] == [
        ("user.user_created", "success"),
        ("auth.login_success", "success"),
        ("user.user_locked", "success"),
        ("auth.login_failed", "failure"),
        ("user.user_updated", "success"),
        ("auth.login_success", "success"),
    ]
    lock = events[2]
    assert details(lock) == {
        "reason": "investigation 42",
        "trigger": "admin",
        "sessions_ended": 1,
        "actor_user_id": admin.user_id,
        "actor_username": admin.username,
        "session_id": admin.session_id,
    }
    assert list(lock.compliance_tags) == ["SOX", "GDPR"]
    assert details(events[3])["reason"] == "account_locked"
    assert details(events[4])["change"] == "unlocked"


async def test_the_last_active_admin_cannot_lock_itself_out(h: Harness) -> None:
    admin = await h.admin()
    other = await h.admin()
    # With a second active admin, locking the first is fine; then the other is the last.
    await h.stub.LockUser(
        pb.LockUserRequest(user_id=admin.user_id), metadata=md(token=other.access_token)
    )
    for call in (
        h.stub.LockUser(
            pb.LockUserRequest(user_id=other.user_id), metadata=md(token=other.access_token)
        ),
        # A locked admin still holds the role, but it is not an active admin.
        h.stub.DeleteUser(
            pb.DeleteUserRequest(user_id=other.user_id), metadata=md(token=other.access_token)
        ),
        h.stub.RemoveRole(
            pb.RemoveRoleRequest(user_id=other.user_id, role="admin"),
            metadata=md(token=other.access_token),
        ),
    ):
        err = await fails(call)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_and_fields(err)[0] == "LAST_ADMIN"
    reply = await h.stub.GetUser(
        pb.GetUserRequest(user_id=other.user_id), metadata=md(token=other.access_token)
    )
    assert not reply.user.locked
    [refused] = await h.events(event_type="user.user_locked", result="failure")
    assert details(refused)["reason"] == "last_admin"


async def test_control_characters_in_strings_are_refused_by_field(h: Harness) -> None:
    """A NUL would reach the driver (PostgreSQL text has none); an escape sequence or a
    newline in a free-text field would reach logs and the audit trail."""
    admin = await h.admin()
    token = md(token=admin.access_token)
    calls = {
        "username": h.stub.Login(
            pb.LoginRequest(username="bob\x00", password=PASSWORD), metadata=md()
        ),
        "email": h.stub.RequestPasswordReset(
            pb.RequestPasswordResetRequest(email="bob\x00@example.com"), metadata=md()
        ),
        "display_name": h.stub.CreateUser(
            pb.CreateUserRequest(
                username="mallory",
                email="m@example.com",
                password=PASSWORD,
                display_name="Mallory\x1b[2J\x7f",
            ),
            metadata=md(),
        ),
        "reason": h.stub.LockUser(
            pb.LockUserRequest(user_id=admin.user_id, reason="ok\nFAKE LOG LINE"), metadata=token
        ),
    }
    for field, call in calls.items():
        err = await fails(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert reason_and_fields(err) == ("INVALID_ARGUMENT", [field])
