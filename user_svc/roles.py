"""Roles and permissions: grant a permission, assign and remove roles (admin only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from user_svc.access import Guard, actor
from user_svc.audit import FAILURE, SUCCESS, Auditor
from user_svc.errors import FailedPrecondition, NotFound
from user_svc.model import ADMIN, Caller, User
from user_svc.storage.protocols import UserRecords, UserStore
from user_svc.validation import Checks


async def last_active_admin(db: UserRecords, user: User) -> bool:
    """Whether taking `user` out (delete, lock, role removal) would leave no active admin."""
    return ADMIN in user.roles and not user.locked and await db.active_holders(ADMIN) <= 1


class Roles:
    """Changes to what an account may do. Granting what it already has succeeds and
    says so (`changed: false`); removing a role it does not have is NOT_FOUND."""

    def __init__(self, store: UserStore, guard: Guard, auditor: Auditor) -> None:
        self._store = store
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
            lambda db: db.add_permission(user_id, permission),
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
            lambda db: db.add_role(user_id, role),
        )

    async def _add(
        self,
        caller: Caller,
        user_id: str,
        event: str,
        details: dict[str, str],
        add: Callable[[UserRecords], Awaitable[bool]],
    ) -> User:
        """Admin-only: give the account something (idempotent) and audit it."""
        identity = await self._guard.admin(caller, event, user_id=user_id, details=details)
        async with self._store.transaction() as db:
            if await db.get(user_id) is None:
                raise NotFound("no such account", reason="USER_NOT_FOUND")
            changed = await add(db)
            if changed:
                await db.touch(user_id)
            user = await db.get(user_id)
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
        async with self._store.transaction() as db:
            user = await db.get(user_id)
            if user is None:
                raise NotFound("no such account", reason="USER_NOT_FOUND")
            if role not in user.roles:
                problem: NotFound | FailedPrecondition | None = NotFound(
                    "the account does not have this role", reason="ROLE_NOT_ASSIGNED"
                )
            elif role == ADMIN and await last_active_admin(db, user):
                problem = FailedPrecondition(
                    "the last admin cannot lose the admin role", reason="LAST_ADMIN"
                )
            else:
                problem = None
                await db.remove_role(user_id, role)
                await db.touch(user_id)
                user = await db.get(user_id)
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
