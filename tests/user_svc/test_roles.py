"""Roles and permissions: admin checks from the bearer token, the changes audited, and
the first admin made by `python -m user_svc create-admin`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc

from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields
from tests.user_svc.support import PASSWORD, Account, Harness, details, fails, md
from user.v1 import user_service_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


async def test_admin_calls_need_the_admin_role(h: Harness) -> None:
    alice = await h.login(await h.register("alice"))
    bob = await h.register("bob")
    err = await fails(
        h.stub.AssignRole(
            pb.AssignRoleRequest(user_id=alice.user_id, role="admin"),
            metadata=md(token=alice.access_token),
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_fields(err)[0] == "ROLE_REQUIRED"
    for call in (
        h.stub.DeleteUser(pb.DeleteUserRequest(user_id=bob.user_id), metadata=md()),
        h.stub.LockUser(pb.LockUserRequest(user_id=bob.user_id), metadata=md(token="x.y.z")),
    ):
        err = await fails(call)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    [denied] = await h.events(event_type="permission.role_assigned")
    assert (denied.user_id, denied.result) == (alice.user_id, "denied")
    assert details(denied) == {
        "role": "admin",
        "reason": "role_required",
        "actor_user_id": alice.user_id,
        "actor_username": "alice",
        "session_id": alice.session_id,
    }


async def test_grant_assign_and_remove_are_audited(h: Harness) -> None:
    admin = await h.admin()
    bob = await h.register("bob")
    token = md(token=admin.access_token)

    granted = await h.stub.GrantPermission(
        pb.GrantPermissionRequest(user_id=bob.user_id, permission="reports.read"), metadata=token
    )
    assert list(granted.user.permissions) == ["reports.read"]
    assigned = await h.stub.AssignRole(
        pb.AssignRoleRequest(user_id=bob.user_id, role="auditor"), metadata=token
    )
    assert list(assigned.user.roles) == ["auditor"]
    again = await h.stub.AssignRole(
        pb.AssignRoleRequest(user_id=bob.user_id, role="auditor"), metadata=token
    )
    assert list(again.user.roles) == ["auditor"]
    removed = await h.stub.RemoveRole(
        pb.RemoveRoleRequest(user_id=bob.user_id, role="auditor"), metadata=token
    )
    assert list(removed.user.roles) == []
    err = await fails(
        h.stub.RemoveRole(pb.RemoveRoleRequest(user_id=bob.user_id, role="auditor"), metadata=token)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert reason_and_fields(err)[0] == "ROLE_NOT_ASSIGNED"

    events = [e for e in await h.events(user_id=bob.user_id) if e.event_type[:11] == "permission."]
    assert [(e.event_type, e.result) for e in events] == [
        ("permission.permission_granted", "success"),
        ("permission.role_assigned", "success"),
        ("permission.role_assigned", "success"),
        ("permission.role_removed", "success"),
        ("permission.role_removed", "failure"),
    ]
    actor = {
        "actor_user_id": admin.user_id,
        "actor_username": admin.username,
        "session_id": admin.session_id,
    }
    assert details(events[0]) == {"permission": "reports.read", "changed": True, **actor}
    assert details(events[1]) == {"role": "auditor", "changed": True, **actor}
    assert details(events[2]) == {"role": "auditor", "changed": False, **actor}
    assert details(events[3]) == {"role": "auditor", **actor}
    assert details(events[4]) == {"role": "auditor", "reason": "role_not_assigned", **actor}
    assert all(list(e.compliance_tags) == ["SOX"] for e in events)
    assert all(e.username == "bob" for e in events)


async def test_a_removed_admin_role_takes_effect_at_once(h: Harness) -> None:
    root = await h.admin("root")
    bob = await h.register("bob")
    await h.stub.AssignRole(
        pb.AssignRoleRequest(user_id=bob.user_id, role="admin"),
        metadata=md(token=root.access_token),
    )
    bob = await h.login(bob)
    await h.stub.ListUsers(pb.ListUsersRequest(), metadata=md(token=bob.access_token))
    await h.stub.RemoveRole(
        pb.RemoveRoleRequest(user_id=bob.user_id, role="admin"),
        metadata=md(token=root.access_token),
    )
    err = await fails(h.stub.ListUsers(pb.ListUsersRequest(), metadata=md(token=bob.access_token)))
    assert reason_and_fields(err)[0] == "ROLE_REQUIRED"

    err = await fails(
        h.stub.RemoveRole(
            pb.RemoveRoleRequest(user_id=root.user_id, role="admin"),
            metadata=md(token=root.access_token),
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_and_fields(err)[0] == "LAST_ADMIN"


async def test_create_admin_command_makes_the_first_admin(h: Harness) -> None:
    s = h.app.settings
    env = {
        **os.environ,
        "USER_DATABASE_URL": s.database_url,
        "USER_REDIS_URL": s.redis_url,
        "USER_REDIS_PREFIX": s.redis_prefix,
        "USER_AUDIT_TARGET": s.audit_target,
        "USER_AUDIT_SPOOL_KEY": s.audit_spool_key,
        "USER_ARGON2_MEMORY_KIB": "1024",
        "USER_ARGON2_TIME_COST": "1",
        "USER_ARGON2_PARALLELISM": "1",
        **tls.env_of("USER_", "user-service"),
    }

    def create_admin(username: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "user_svc", "create-admin", "--username", username,
             "--email", f"{username}@example.com", "--password-stdin"],
            input=password + "\n",
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip

    done = await asyncio.to_thread(create_admin, "root", PASSWORD)
    assert done.returncode == 0, done.stderr
    user_id = done.stdout.strip()
    assert PASSWORD not in done.stdout + done.stderr

    root = await h.login(Account(pb.User(user_id=user_id, username="root"), PASSWORD))
    assert list(root.user.roles) == ["admin"]
    await h.stub.ListUsers(pb.ListUsersRequest(), metadata=md(token=root.access_token))

    bad = await asyncio.to_thread(create_admin, "root", "short")
    assert bad.returncode == 1
    assert "--password" in bad.stderr and "short" not in bad.stderr
    taken = await asyncio.to_thread(create_admin, "root", PASSWORD)
    assert taken.returncode == 1 and "USERNAME_TAKEN" in taken.stderr

    events = await h.events(user_id=user_id)
    assert [(e.event_type, e.result) for e in events[:2]] == [
        ("user.user_created", "success"),
        ("permission.role_assigned", "success"),
    ]
    assert all(e.user_agent == "user_svc create-admin" for e in events[:2])
    assert details(events[0]) == {"method": "bootstrap_cli", "roles": ["admin"]}
    assert details(events[1]) == {"role": "admin", "changed": True, "method": "bootstrap_cli"}
