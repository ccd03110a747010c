"""The domain services wired together over one store, one Redis and one audit sink;
used by the gRPC app and by the `create-admin` command alike."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from user_svc.access import Guard
from user_svc.accounts import Accounts
from user_svc.audit import Auditor, EventSink
from user_svc.auth import Auth
from user_svc.credentials import PasswordFlows
from user_svc.keys import Keys
from user_svc.mfa import Mfa
from user_svc.outbox import MailBox
from user_svc.passwords import Passwords
from user_svc.protection import Protection
from user_svc.roles import Roles
from user_svc.settings import Settings
from user_svc.storage.protocols import UserStore
from user_svc.storage.redis_state import RedisState
from user_svc.throttle import LoginThrottle
from user_svc.tokens import AccessTokens, PageTokens, signing_key
from user_svc.totp import SecretBox


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the user-service does, grouped the way the API is."""

    accounts: Accounts
    auth: Auth
    passwords: PasswordFlows
    mfa: Mfa
    roles: Roles
    auditor: Auditor
    state: RedisState


def build_services(
    settings: Settings,
    store: UserStore,
    redis: aioredis.Redis,
    keys: Keys,
    sink: EventSink | None,
) -> Services:
    """Wire the domain; `sink=None` turns auditing off."""
    s = settings
    auditor = Auditor(sink)
    state = RedisState(redis, s.redis_prefix)
    hasher = Passwords(
        time_cost=s.argon2_time_cost,
        memory_kib=s.argon2_memory_kib,
        parallelism=s.argon2_parallelism,
    )
    access_tokens = AccessTokens(signing_key(keys.jwt_signing), s.access_token_ttl_seconds)
    box = SecretBox(keys.mfa_encryption)
    protection = Protection(state, auditor, s)
    throttle = LoginThrottle(state, auditor, s)
    guard = Guard(store, access_tokens, auditor)
    return Services(
        accounts=Accounts(store, guard, auditor, hasher, protection, PageTokens(keys.jwt_signing)),
        auth=Auth(store, auditor, hasher, access_tokens, box, protection, throttle, s),
        passwords=PasswordFlows(
            store,
            guard,
            auditor,
            hasher,
            protection,
            throttle,
            state,
            MailBox(keys.mail_encryption),
            s,
        ),
        mfa=Mfa(store, guard, auditor, box, protection, s.totp_window_steps),
        roles=Roles(store, guard, auditor),
        auditor=auditor,
        state=state,
    )
