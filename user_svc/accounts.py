"""Accounts: register, read, list, change, delete, lock and unlock."""

from __future__ import annotations

from user_svc import ids
from user_svc.access import Guard, actor
from user_svc.audit import FAILURE, SUCCESS, Auditor
from user_svc.errors import AlreadyExists, FailedPrecondition, NotFound
from user_svc.model import Caller, User, UserPage
from user_svc.passwords import Passwords
from user_svc.protection import Protection
from user_svc.roles import last_active_admin
from user_svc.storage.protocols import UserStore
from user_svc.tokens import PageTokens
from user_svc.validation import MAX_LOCK_REASON, Checks

UPDATABLE = ("email", "display_name")


class Accounts:
    """The account lifecycle. Every change is audited (success, failure or denied)."""

    def __init__(
        self,
        store: UserStore,
        guard: Guard,
        auditor: Auditor,
        passwords: Passwords,
        protection: Protection,
        page_tokens: PageTokens,
    ) -> None:
        self._store = store
        self._guard = guard
        self._audit = auditor
        self._passwords = passwords
        self._protection = protection
        self._pages = page_tokens

    async def create(
        self,
        caller: Caller,
        username: str,
        email: str,
        password: str,
        display_name: str,
        *,
        method: str = "self_registration",
        roles: tuple[str, ...] = (),
    ) -> User:
        """Register an account (`user.user_created`); AlreadyExists when taken."""
        checks = Checks()
        checks.username("username", username)
        checks.email("email", email)
        checks.new_password("password", password)
        checks.display_name("display_name", display_name)
        checks.done()
        await self._protection.limit(caller, "register")
        password_hash = await self._passwords.hash(password)
        user_id = ids.uuid7()
        try:
            async with self._store.transaction() as db:
                await db.insert(user_id, username, email, display_name, password_hash)
                for role in roles:
                    await db.add_role(str(user_id), role)
                user = await db.get(str(user_id))
                assert user is not None
                await self._audit.record(
                    "user.user_created",
                    SUCCESS,
                    caller,
                    user_id=user.user_id,
                    username=user.username,
                    details={"method": method, "roles": list(roles)},
                )
                for role in roles:
                    await self._audit.record(
                        "permission.role_assigned",
                        SUCCESS,
                        caller,
                        user_id=user.user_id,
                        username=user.username,
                        details={"role": role, "changed": True, "method": method},
                    )
        except AlreadyExists as exc:
            await self._audit.record(
                "user.user_created",
                FAILURE,
                caller,
                username=username,
                details={"method": method, "reason": exc.reason.lower()},
            )
            raise
        return user

    async def get(self, caller: Caller, user_id: str) -> User:
        """One account: the caller's own, or any for an admin."""
        _check_id(user_id)
        await self._guard.owner_or_admin(caller, None, user_id)
        return await self._existing(user_id)

    async def list_users(self, caller: Caller, page_size: int, page_token: str) -> UserPage:
        """Accounts oldest first, a page at a time (admin)."""
        checks = Checks()
        size = checks.page_size("page_size", page_size)
        after = None
        if page_token:
            try:
                after = self._pages.decode(page_token)
            except ValueError:
                checks.bad("page_token", "is not a token this service gave out")
        checks.done()
        await self._guard.admin(caller, None)
        async with self._store.connection() as db:
            found = await db.page(after, size + 1)
        more = len(found) > size
        found = found[:size]
        next_token = self._pages.encode(found[-1].create_time, found[-1].user_id) if more else ""
        return UserPage(found, next_token)

    async def update(
        self, caller: Caller, user_id: str, fields: dict[str, str], mask: list[str]
    ) -> User:
        """Change the masked fields (all updatable ones when the mask is empty)."""
        checks = Checks()
        checks.user_id("user.user_id", user_id)
        paths = mask or list(UPDATABLE)
        for i, path in enumerate(paths):
            if path not in UPDATABLE:
                checks.bad(f"update_mask.paths[{i}]", f"must be one of {', '.join(UPDATABLE)}")
        if "email" in paths:
            checks.email("user.email", fields.get("email", ""))
        if "display_name" in paths:
            checks.display_name("user.display_name", fields.get("display_name", ""))
        checks.done()
        changed = sorted(set(paths))
        identity = await self._guard.owner_or_admin(
            caller, "user.user_updated", user_id, {"fields": changed}
        )
        details = {"fields": changed, **actor(identity)}
        try:
            async with self._store.transaction() as db:
                user = await db.update_profile(
                    user_id,
                    email=fields["email"] if "email" in paths else None,
                    display_name=fields["display_name"] if "display_name" in paths else None,
                )
                if user is not None:
                    await self._audit.record(
                        "user.user_updated", SUCCESS, caller, **_who(user), details=details
                    )
        except AlreadyExists as exc:
            await self._audit.record(
                "user.user_updated",
                FAILURE,
                caller,
                user_id=user_id,
                details={**details, "reason": exc.reason.lower()},
            )
            raise
        if user is None:
            raise NotFound("no such account", reason="USER_NOT_FOUND")
        return user

    async def delete(self, caller: Caller, user_id: str) -> None:
        """Delete an account and everything it holds (admin)."""
        _check_id(user_id)
        identity = await self._guard.admin(caller, "user.user_deleted", user_id=user_id)
        async with self._store.transaction() as db:
            user = await db.get(user_id)
            if user is None:
                raise NotFound("no such account", reason="USER_NOT_FOUND")
            if await last_active_admin(db, user):
                raise FailedPrecondition("the last admin cannot be deleted", reason="LAST_ADMIN")
            await db.delete(user_id)
            await self._audit.record(
                "user.user_deleted", SUCCESS, caller, **_who(user), details=actor(identity)
            )

    async def lock(self, caller: Caller, user_id: str, reason: str) -> User:
        """Lock an account until an admin unlocks it; its sessions end (admin)."""
        checks = Checks()
        checks.user_id("user_id", user_id)
        checks.text("reason", reason, MAX_LOCK_REASON)
        checks.done()
        identity = await self._guard.admin(caller, "user.user_locked", user_id=user_id)
        async with self._store.transaction() as db:
            target = await db.get(user_id)
            if target is None:
                raise NotFound("no such account", reason="USER_NOT_FOUND")
            if not await last_active_admin(db, target):
                user = await db.set_lock(user_id, locked=True)
                assert user is not None
                ended = await db.end_sessions(user_id, "locked")
                await self._audit.record(
                    "user.user_locked",
                    SUCCESS,
                    caller,
                    **_who(user),
                    details={
                        "reason": reason or "locked by an admin",
                        "trigger": "admin",
                        "sessions_ended": ended,
                        **actor(identity),
                    },
                )
                return user
        await self._audit.record(
            "user.user_locked",
            FAILURE,
            caller,
            **_who(target),
            details={"reason": "last_admin", "trigger": "admin", **actor(identity)},
        )
        raise FailedPrecondition("the last active admin cannot be locked", reason="LAST_ADMIN")

    async def unlock(self, caller: Caller, user_id: str) -> User:
        """Unlock an account and clear its failed sign-ins (admin; `user.user_updated`)."""
        _check_id(user_id)
        identity = await self._guard.admin(
            caller, "user.user_updated", user_id=user_id, details={"fields": ["locked"]}
        )
        async with self._store.transaction() as db:
            user = await db.set_lock(user_id, locked=False)
            if user is None:
                raise NotFound("no such account", reason="USER_NOT_FOUND")
            await self._audit.record(
                "user.user_updated",
                SUCCESS,
                caller,
                **_who(user),
                details={"fields": ["locked"], "change": "unlocked", **actor(identity)},
            )
        return user

    async def _existing(self, user_id: str) -> User:
        async with self._store.connection() as db:
            user = await db.get(user_id)
        if user is None:
            raise NotFound("no such account", reason="USER_NOT_FOUND")
        return user


def _check_id(user_id: str) -> None:
    checks = Checks()
    checks.user_id("user_id", user_id)
    checks.done()


def _who(user: User) -> dict[str, str]:
    return {"user_id": user.user_id, "username": user.username}
