"""The user-service's Prometheus metrics (served on USER_METRICS_LISTEN, with the
audit client's and the gRPC server's)."""

from __future__ import annotations

from prometheus_client import Counter

LOGINS = Counter(
    "auditmesh_user_logins_total",
    "Sign-in attempts, by result: success, or the failure reason (wrong_password, "
    "unknown_user, account_locked, mfa_required, invalid_mfa_code).",
    ["result"],
)
RATE_LIMITED = Counter(
    "auditmesh_user_rate_limited_total",
    "Calls refused by a rate limit or a sign-in delay, by limit (e.g. login_per_ip, "
    "login_failures_per_source, login_failures_per_account).",
    ["limit"],
)
