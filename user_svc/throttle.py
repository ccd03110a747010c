"""Delays after failed sign-ins, in place of a lockout that anyone could trigger.

- Per (account, source address): `login_free_failures` failures pass; each further one
  makes that address wait `login_delay_seconds`, doubling, up to
  `login_max_delay_seconds`. An attacker's guesses slow down the attacker's address only.
- Per account (every address): past `login_account_free_failures`, addresses the
  account never signed in from wait too; addresses it signed in from before do not, and
  neither does a sign-in with the right password and a valid TOTP code.
- A password reset clears the account's failures; a sign-in clears its address's.
  Failures are forgotten `login_failure_memory_seconds` after the last one.

A throttled attempt is refused before the password is checked (RESOURCE_EXHAUSTED
`LOGIN_THROTTLED`, RetryInfo with the wait) and does not count. Unknown user names are
throttled the same way, so delays say nothing about which accounts exist. The first
delay of an address or an account is audited (`security.rate_limit_exceeded`). When
Redis does not answer, delays are not enforced (fail open, logged), as rate limits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from user_svc import metrics
from user_svc.audit import DENIED, Auditor
from user_svc.errors import RateLimited, Unavailable
from user_svc.model import Caller
from user_svc.settings import Settings
from user_svc.storage.redis_state import RedisState

log = logging.getLogger(__name__)

PER_SOURCE = "login_failures_per_source"
PER_ACCOUNT = "login_failures_per_account"


@dataclass(frozen=True, slots=True)
class Waits:
    """Seconds before an address may try an account again (0: now)."""

    source: int = 0
    account: int = 0


def throttled(limit: str, seconds: int) -> RateLimited:
    metrics.RATE_LIMITED.labels(limit).inc()
    return RateLimited(
        "too many failed sign-ins; try again later",
        reason="LOGIN_THROTTLED",
        metadata={"limit": limit, "retry_after_seconds": str(max(seconds, 1))},
    )


class LoginThrottle:
    """Failure counts and delays per (account, address) and per account, in Redis."""

    def __init__(self, state: RedisState, auditor: Auditor, settings: Settings) -> None:
        self._state = state
        self._audit = auditor
        self._s = settings

    async def waits(self, account: str, source: str) -> Waits:
        """How long `source` must wait before trying `account` (a lower-case user name)."""
        try:
            source_wait, account_wait = await self._state.login_waits(account, source)
        except Unavailable as exc:
            log.warning("sign-in delays not enforced: %s", exc.message)
            return Waits()
        return Waits(source_wait, account_wait)

    async def failed(
        self, caller: Caller, account: str, *, user_id: str = "", username: str = ""
    ) -> None:
        """Count a failed sign-in; audit the delay it starts, if it starts one."""
        s = self._s
        try:
            counts = await self._state.login_failure(
                account,
                caller.ip_address,
                free=(s.login_free_failures, s.login_account_free_failures),
                base_seconds=s.login_delay_seconds,
                max_seconds=s.login_max_delay_seconds,
                memory_seconds=s.login_failure_memory_seconds,
            )
        except Unavailable as exc:
            log.warning("sign-in failure not counted: %s", exc.message)
            return
        n_source, d_source, n_account, d_account = counts
        starts = (
            (PER_SOURCE, n_source, d_source, s.login_free_failures),
            (PER_ACCOUNT, n_account, d_account, s.login_account_free_failures),
        )
        for limit, count, delay, free in starts:
            if count == free + 1:
                await self._audit.record(
                    "security.rate_limit_exceeded",
                    DENIED,
                    caller,
                    user_id=user_id,
                    username=username,
                    details={
                        "limit": limit,
                        "failed_logins": count,
                        "delay_seconds": delay,
                        "rpc": "Login",
                    },
                )

    async def succeeded(self, account: str, source: str) -> None:
        """A sign-in from `source`: its failures are forgotten."""
        try:
            await self._state.forget_login_failures(account, source)
        except Unavailable as exc:
            log.warning("sign-in failures not cleared: %s", exc.message)

    async def forget(self, account: str) -> None:
        """The owner proved control (a password reset): every failure is forgotten."""
        try:
            await self._state.forget_login_failures(account)
        except Unavailable as exc:
            log.warning("sign-in failures not cleared: %s", exc.message)
