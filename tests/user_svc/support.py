"""Helpers for the user-service tests: calling it as a client would (with forwarded
address, user agent and bearer token in the metadata), and reading back what the
audit-service stored."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc
import pyotp
import redis.asyncio as aioredis
from google.protobuf import json_format

from audit.v2 import audit_service_pb2 as audit_pb
from audit.v2 import audit_service_pb2_grpc as audit_grpc
from audit.v2 import event_pb2
from user.v1 import user_service_pb2 as pb
from user.v1 import user_service_pb2_grpc as pb_grpc
from user_svc.app import UserApp
from user_svc.model import ADMIN, Caller
from user_svc.outbox import message_key, open_message

IP = "203.0.113.10"
AGENT = "Mozilla/5.0 (pytest)"
PASSWORD = "correct horse battery staple"
# The outbox key the tests' user-service and "mailer" share (USER_MAIL_ENCRYPTION_KEY).
MAIL_KEY = "test mail key, 32 characters or more"
T = TypeVar("T")


def md(ip: str = IP, agent: str = AGENT, token: str = "") -> tuple[tuple[str, str], ...]:
    """Metadata as the gateway sends it: forwarded address and user agent, and a token."""
    out = [("x-forwarded-for", ip), ("grpcgateway-user-agent", agent)]
    if token:
        out.append(("authorization", f"Bearer {token}"))
    return tuple(out)


def details(event: event_pb2.AuditEvent) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(event.details)
    return out


@dataclass
class Account:
    """A registered account and what signing in gave it."""

    user: pb.User
    password: str
    access_token: str = ""
    refresh_token: str = ""
    session_id: str = ""
    totp_step: int = field(default=0)

    @property
    def user_id(self) -> str:
        return self.user.user_id

    @property
    def username(self) -> str:
        return self.user.username


@dataclass
class Harness:
    """A running user-service, a client of it, and a client of its audit-service."""

    app: UserApp
    stub: pb_grpc.UserServiceStub
    audit_stub: audit_grpc.AuditServiceStub
    redis_url: str

    async def events(self, **filters: Any) -> list[event_pb2.AuditEvent]:
        """Every stored event matching `filters`, oldest first, after flushing the
        user-service's audit client."""
        assert self.app.audit is not None
        await self.app.audit.flush(timeout=30)
        reply = await self.audit_stub.Query(audit_pb.QueryRequest(page_size=1000, **filters))
        return list(reversed(reply.events))

    async def types(self, **filters: Any) -> list[str]:
        return [e.event_type for e in await self.events(**filters)]

    async def register(
        self, name: str = "", *, password: str = PASSWORD, ip: str = IP, agent: str = AGENT
    ) -> Account:
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        reply = await self.stub.CreateUser(
            pb.CreateUserRequest(
                username=name, email=f"{name}@example.com", password=password, display_name=name
            ),
            metadata=md(ip, agent),
        )
        return Account(reply.user, password)

    async def login(
        self, account: Account, *, ip: str = IP, agent: str = AGENT, totp_code: str = ""
    ) -> Account:
        reply = await self.stub.Login(
            pb.LoginRequest(
                username=account.username, password=account.password, totp_code=totp_code
            ),
            metadata=md(ip, agent),
        )
        account.access_token = reply.access_token
        account.refresh_token = reply.refresh_token
        account.session_id = reply.session_id
        account.user = reply.user
        return account

    async def admin(self, name: str = "") -> Account:
        """A signed-in admin, made the way `python -m user_svc create-admin` makes one."""
        name = name or f"admin-{uuid.uuid4().hex[:8]}"
        user = await self.app.services.accounts.create(
            Caller(user_agent="pytest bootstrap"),
            name,
            f"{name}@example.com",
            PASSWORD,
            "",
            method="bootstrap_cli",
            roles=(ADMIN,),
        )
        account = Account(pb.User(user_id=user.user_id, username=user.username), PASSWORD)
        return await self.login(account)

    async def reset_messages(self) -> list[dict[str, Any]]:
        """What a mailer holding the mail key finds in the outbox (user_svc/outbox.py)."""
        key = self.app.settings.reset_outbox_key
        client = aioredis.Redis.from_url(self.redis_url)
        try:
            # A client without decode_responses answers bytes.
            ids = cast(list[bytes], await client.lrange(key, 0, -1))
            sealed = [
                cast(bytes | None, await client.get(message_key(key, i.decode()))) for i in ids
            ]
        finally:
            await client.aclose()
        return [
            open_message(MAIL_KEY.encode(), i.decode(), m)
            for i, m in zip(ids, sealed, strict=True)
            if m is not None
        ]


def next_code(secret: str, account: Account) -> str:
    """A TOTP code the service has not seen yet: the earliest step after the last one
    used, from the previous one on (three codes per 30 s). The tests' service accepts
    two steps either side, so a step ending mid-call does not matter."""
    now_step = int(time.time()) // 30
    step = max(account.totp_step + 1, now_step - 1)
    assert step <= now_step + 1, "three codes per 30 s at most"
    account.totp_step = step
    return pyotp.TOTP(secret).generate_otp(step)


def wrong_code(secret: str) -> str:
    """A code that no step of the accepted window has."""
    now_step = int(time.time()) // 30
    window = {pyotp.TOTP(secret).generate_otp(s) for s in range(now_step - 3, now_step + 4)}
    return next(c for c in ("000000", "111111", "222222") if c not in window)


async def fails(call: Awaitable[T]) -> grpc.aio.AioRpcError:
    """The error a call ends with (it must fail)."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err
    raise AssertionError("the call succeeded")
