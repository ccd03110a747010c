"""Rate limits and suspicious-activity rules, over the Redis protection state.

Rate limits: fixed windows of `rate_limit_window_seconds`, counted in Redis, per caller
address (`rate_limit_per_ip` calls) and per account (`rate_limit_per_account` calls),
for each guarded call family (login, register, password reset, MFA checks, password
change). The first refused call of a window emits `security.rate_limit_exceeded`
(later ones in the same window are refused silently, so a flood does not flood the
audit trail). When Redis does not answer, limits are not enforced (fail open) and a
warning is logged.

Suspicious activity (`security.suspicious_activity`, details.rule):
- `failures_from_many_ips`: failed sign-ins of one account from
  `suspicious_distinct_ips` different addresses within `suspicious_window_seconds`
  (emitted when the threshold is reached, result `failure`);
- `success_from_new_ip_after_failures`: a successful sign-in from an address the
  account never signed in from before (and it has signed in before), after at least
  `suspicious_failures_before_new_ip` failed sign-ins in a row, the last one within
  `suspicious_window_seconds` (result `success`: the sign-in goes through, flagged);
- `refresh_token_reuse`: a refresh token that was already traded in is presented
  again; the whole session is ended (result `denied`; see `sessions.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from user_svc import metrics
from user_svc.audit import DENIED, FAILURE, Auditor
from user_svc.errors import RateLimited, Unavailable
from user_svc.model import Caller, Credentials
from user_svc.settings import Settings
from user_svc.storage.redis_state import RedisState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subject:
    """The account a guarded call is about, as far as it is known."""

    key: str = ""  # what the per-account limit counts by (lower-case name, email, id)
    user_id: str = ""
    username: str = ""


class Protection:
    """Rate limits and the failure-address rule."""

    def __init__(self, state: RedisState, auditor: Auditor, settings: Settings) -> None:
        self._state = state
        self._audit = auditor
        self._s = settings

    async def limit(self, caller: Caller, family: str, subject: Subject | None = None) -> None:
        """Count this call; raise RateLimited (and audit the first refusal) over a limit."""
        s = self._s
        checks = [(f"{family}_per_ip", caller.ip_address or "unknown", s.rate_limit_per_ip)]
        if subject is not None and subject.key:
            checks.append((f"{family}_per_account", subject.key, s.rate_limit_per_account))
        for name, key, allowed in checks:
            try:
                count = await self._state.hit(name, key, s.rate_limit_window_seconds)
            except Unavailable as exc:
                log.warning("rate limit %s not enforced: %s", name, exc.message)
                continue
            if count <= allowed:
                continue
            if count == allowed + 1:
                await self._audit.record(
                    "security.rate_limit_exceeded",
                    DENIED,
                    caller,
                    user_id=subject.user_id if subject else "",
                    username=subject.username if subject else "",
                    details={
                        "limit": name,
                        "max_calls": allowed,
                        "window_seconds": s.rate_limit_window_seconds,
                        "rpc": caller.method.rsplit("/", 1)[-1],
                    },
                )
            metrics.RATE_LIMITED.labels(name).inc()
            raise RateLimited(
                "too many calls; try again later",
                metadata={"limit": name, "retry_after_seconds": str(s.rate_limit_window_seconds)},
            )

    async def sign_in_failed(self, caller: Caller, account: Credentials) -> None:
        """Apply the `failures_from_many_ips` rule to a failed sign-in of a real account."""
        s = self._s
        if not caller.ip_address:
            return
        try:
            new, distinct = await self._state.add_failure_address(
                account.user.user_id, caller.ip_address, s.suspicious_window_seconds
            )
        except Unavailable as exc:
            log.warning("failure addresses not tracked: %s", exc.message)
            return
        if new and distinct == s.suspicious_distinct_ips:
            await self._audit.record(
                "security.suspicious_activity",
                FAILURE,
                caller,
                user_id=account.user.user_id,
                username=account.user.username,
                details={
                    "rule": "failures_from_many_ips",
                    "distinct_ips": distinct,
                    "window_seconds": s.suspicious_window_seconds,
                },
            )

    def new_ip_after_failures(
        self, account: Credentials, known_addresses: int, address_known: bool, now: datetime
    ) -> bool:
        """The `success_from_new_ip_after_failures` rule, on the state before sign-in."""
        s = self._s
        recent = account.last_failure_time is not None and now - account.last_failure_time <= (
            timedelta(seconds=s.suspicious_window_seconds)
        )
        return (
            known_addresses > 0
            and not address_known
            and account.failed_logins >= s.suspicious_failures_before_new_ip
            and recent
        )
