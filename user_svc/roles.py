"""Roles and permissions: grant a permission, assign and remove roles (admin only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from user_svc.access import Guard, actor
from user_svc.audit import FAILURE, SUCCESS, Auditor
from user_svc.errors import FailedPrecondition, NotFound
from user_svc.model import ADMIN, Caller, User
from user_svc.storage import users
from user_svc.storage.postgres import transaction
from user_svc.validation import Checks


class Roles:
    """Changes to what an account may do. Granting what it already has succeeds and
    says so (`changed: false`); removing a role it does not have is NOT_FOUND."""

    def __init__(self, pool: asyncpg.Pool, guard: Guard, auditor: Auditor) -> None:
        self._pool = pool
        self._guard = guard
        self._audit = auditor

    async def grant_permission(self, caller: Caller, user_id: str, permission: str) -> User:
        checks = Checks()
        checks.user_id("user_id", user_id)
        checks.permission("permission", permission)
        checks.done()
        return await self._add(
            caller,
            user_id,
            "permission.permission_granted",
            {"permission": permission},
            lambda conn: users.add_permission(conn, user_id, permission),
        )

    async def assign_role(self, caller: Caller, user_id: str, role: str) -> User:
        checks = Checks()
        checks.user_id("user_id", user_id)
        checks.role("role", role)
        checks.done()
        return await self._add(
            caller,
            user_id,
            "permission.role_assigned",
            {"role": role},
            lambda conn: users.add_role(conn, user_id, role),
        )

    async def _add(
        self,
        caller: Caller,
        user_id: str,
        event: str,
        details: dict[str, str],
        add: Callable[[asyncpg.Connection], Awaitable[bool]],
    ) -> User:
        """Admin-only: give the account something (idempotent) and audit it."""
        identity = await self._guard.admin(caller, event, user_id=user_id, details=details)
        async with transaction(self._pool) as conn:
            if await users.get(conn, user_id) is None:
                raise NotFound("no such account", reason="USER_NOT_FOUND")
            changed = await add(conn)
            if changed:
                await users.touch(conn, user_id)
            user = await users.get(conn, user_id)
            assert user is not None
            await self._audit.record(
                event,
                SUCCESS,
                caller,
                user_id=user.user_id,
                username=user.username,
                details={**details, "changed": changed, **actor(identity)},
            )
        return user

    async def remove_role(self, caller: Caller, user_id: str, role: str) -> User:
        checks = Checks()
        checks.user_id("user_id", user_id)
        checks.role("role", role)
        checks.done()
        event = "permission.role_removed"
        identity = await self._guard.admin(caller, event, user_id=user_id, details={"role": role})
        details = {"role": role, **actor(identity)}
        async with transaction(self._pool) as conn:
            user = await users.get(conn, user_id)
            if user is None:
                raise NotFound("no such account", reason="USER_NOT_FOUND")
            if role not in user.roles:
                problem: NotFound | FailedPrecondition | None = NotFound(
                    "the account does not have this role", reason="ROLE_NOT_ASSIGNED"
                )
            elif role == ADMIN and await users.lock_role(conn, ADMIN) <= 1:
                problem = FailedPrecondition(
                    "the last admin cannot lose the admin role", reason="LAST_ADMIN"
                )
            else:
                problem = None
                await users.remove_role(conn, user_id, role)
                await users.touch(conn, user_id)
                user = await users.get(conn, user_id)
                assert user is not None
                await self._audit.record(
                    event,
                    SUCCESS,
                    caller,
                    user_id=user.user_id,
                    username=user.username,
                    details=details,
                )
        if problem is not None:
            await self._audit.record(
                event,
                FAILURE,
                caller,
                user_id=user.user_id,
                username=user.username,
                details={**details, "reason": problem.reason.lower()},
            )
            raise problem
        return user
