"""The user-service's one settings object, read once from USER_* environment variables."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from meshkit import SettingsError, log_problems, mask_url, read_env
from meshkit.metrics import listen_problems
from meshkit.secrets import refuse_dev_secrets, secret_problem, url_password_problem
from meshkit.tls import PLAINTEXT, TlsFiles, tls_problems

PREFIX = "USER_"
__all__ = ["PREFIX", "Settings", "SettingsError"]
MIN_KEY_CHARS = 32


# Settings of earlier releases, refused with what replaced them.
RETIRED = {
    "USER_LOCKOUT_THRESHOLD": "sign-in failures delay instead of locking; "
    "see USER_LOGIN_FREE_FAILURES and USER_LOGIN_ACCOUNT_FREE_FAILURES",
    "USER_LOCKOUT_SECONDS": "sign-in failures delay instead of locking; "
    "see USER_LOGIN_DELAY_SECONDS and USER_LOGIN_MAX_DELAY_SECONDS",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the user-service. Environment variable = USER_ + upper-case name."""

    database_url: str = "postgresql://postgres@127.0.0.1:5434/users"
    grpc_listen: str = "127.0.0.1:50051"
    # Mutual TLS (meshkit.tls) of the gRPC server, and of the audit client's dial to
    # the audit-service (same files: the user-service's own identity). `plaintext` only
    # when set explicitly.
    tls: str = "required"
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    audit_tls: str = "required"
    # Prometheus /metrics on host:port (port 0: a free one); empty = no endpoint.
    metrics_listen: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Prefix of every Redis key this service writes (rate limits, failure windows, outbox).
    redis_prefix: str = "user-service:"
    pool_min_size: int = 2
    pool_max_size: int = 10

    # Secrets. Empty: a development key is generated on first start, kept in the users
    # database, and a warning is logged at every start. Set both in production (and
    # USER_REQUIRE_KEYS=true, which refuses to start without them).
    jwt_signing_key: str = field(default="", repr=False)
    mfa_encryption_key: str = field(default="", repr=False)
    # Seals mail outbox messages (reset tokens); the mailer holds the same key.
    mail_encryption_key: str = field(default="", repr=False)
    require_keys: bool = False
    # What `make up` runs: development secrets (no database or Redis password, keys kept
    # in the database) are a warning at start-up; off, they are refused (check_secrets).
    dev_mode: bool = False
    # Where the public key of access tokens (EdDSA, derived from the signing key) is
    # written at start-up, PEM, for verifiers: the audit-service's
    # AUDIT_TOKEN_PUBLIC_KEY_FILE. Empty: not written (`python -m user_svc public-key`).
    jwt_public_key_file: str = ""

    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    reset_token_ttl_seconds: int = 1800
    # Redis outbox a mailer consumes (user_svc/outbox.py): message ids in this list, each
    # sealed message at `<key>:<id>`, gone after RESET_OUTBOX_TTL_SECONDS. Empty: reset
    # tokens are created but not delivered anywhere.
    reset_outbox_key: str = "user-service:mail:outbox"
    reset_outbox_ttl_seconds: int = 600
    # TOTP codes this many 30 s steps before or after now are accepted (clock drift).
    totp_window_steps: int = 1

    # argon2id cost; the defaults are RFC 9106's second recommended option (64 MiB).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4

    # Delays after failed sign-ins (user_svc/throttle.py), never a lock: failures of one
    # account from one address, and from every address, that pass before delays start;
    # the first delay (doubling with each further failure) and its cap; how long after
    # the last failure they are forgotten (at least the cap).
    login_free_failures: int = 5
    login_account_free_failures: int = 20
    login_delay_seconds: int = 1
    login_max_delay_seconds: int = 900
    login_failure_memory_seconds: int = 3600
    # Calls per window per caller address, and per account (reset, password change and
    # MFA checks; sign-in is per address, its per-account brake is the delay above).
    rate_limit_per_ip: int = 30
    rate_limit_per_account: int = 10
    rate_limit_window_seconds: int = 60
    # Suspicious activity: failed logins of one account from this many addresses within
    # the window; or a success from a new address after this many failures in the window.
    suspicious_distinct_ips: int = 3
    suspicious_failures_before_new_ip: int = 3
    suspicious_window_seconds: int = 600
    # Proxies whose x-forwarded-for is believed (its last hop is the caller): the peer's
    # address must be in TRUSTED_PROXIES (comma-separated addresses or networks) and, over
    # mutual TLS, its SPIFFE name in TRUSTED_PROXY_IDS (the gateway and Envoy dial as
    # `gateway`). Any other peer is the caller itself, whatever header it sends.
    trusted_proxies: str = "127.0.0.0/8,::1/128"
    trusted_proxy_ids: str = "gateway"

    # Auditing. Off: nothing is sent (for the overhead benchmark only).
    audit_enabled: bool = True
    audit_target: str = "127.0.0.1:50052"
    # Redis of the audit client's spool; empty means redis_url.
    audit_redis_url: str = ""
    audit_spool_key: str = "user-service:audit:retry_queue"
    audit_failure_policy: str = "fail_open"

    cleanup_interval_seconds: float = 3600.0
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "json"

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown.append(f"{f.name}={_mask(value) if f.name in _SECRETS else repr(value)}")
        return f"Settings({', '.join(shown)})"

    @property
    def tls_files(self) -> TlsFiles | None:
        """The service's TLS files; None when it serves plaintext."""
        return None if self.tls == PLAINTEXT else self.identity_files

    @property
    def identity_files(self) -> TlsFiles:
        """The user-service's own certificate, key and CA (server and audit dial)."""
        return TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)

    @property
    def spool_redis_url(self) -> str:
        return self.audit_redis_url or self.redis_url

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in self.trusted_proxies.split(",")
            if part.strip()
        )

    @property
    def trusted_proxy_names(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.trusted_proxy_ids.split(",") if n.strip())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate; raise `SettingsError` listing every bad variable."""
        return read_env(cls, PREFIX, "user-service", environ, overrides, cls._problems, RETIRED)

    def dev_secret_problems(self) -> list[str]:
        """Each production secret left empty or at a development value (meshkit.secrets);
        an empty key is the development key the database keeps."""
        p = PREFIX
        out = url_password_problem(f"{p}DATABASE_URL", self.database_url)
        out += url_password_problem(f"{p}REDIS_URL", self.redis_url)
        if self.audit_redis_url:
            out += url_password_problem(f"{p}AUDIT_REDIS_URL", self.audit_redis_url)
        out += secret_problem(f"{p}JWT_SIGNING_KEY", self.jwt_signing_key)
        out += secret_problem(f"{p}MFA_ENCRYPTION_KEY", self.mfa_encryption_key)
        out += secret_problem(f"{p}MAIL_ENCRYPTION_KEY", self.mail_encryption_key)
        return out

    def check_secrets(self, log: logging.Logger) -> None:
        """At start-up: raise SettingsError naming each development secret unless
        USER_DEV_MODE is on, in which case they are logged as a warning."""
        refuse_dev_secrets(
            "user-service", self.dev_secret_problems(),
            dev_mode=self.dev_mode, dev_flag=f"{PREFIX}DEV_MODE", log=log,
        )  # fmt: skip

    def _problems(self) -> list[str]:
        p = PREFIX
        out = log_problems(p, self.log_level, self.log_format)
        out += tls_problems(p, self.tls, self.identity_files)
        if self.tls == PLAINTEXT and self.audit_tls != PLAINTEXT:
            # The audit dial still needs the identity files.
            out += [
                f"{line} (they are also the audit client's, {p}AUDIT_TLS={self.audit_tls})"
                for line in tls_problems(p, self.audit_tls, self.identity_files, "TLS")
            ]
        out += listen_problems(f"{p}METRICS_LISTEN", self.metrics_listen)
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            out.append(f"{p}DATABASE_URL must start with postgresql://")
        for name, value in (("GRPC_LISTEN", self.grpc_listen), ("AUDIT_TARGET", self.audit_target)):
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit():
                out.append(f"{p}{name} must be host:port, got {value!r}")
        urls = (("REDIS_URL", self.redis_url), ("AUDIT_REDIS_URL", self.audit_redis_url))
        for name, value in urls:
            if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
                out.append(f"{p}{name} must start with redis://, rediss:// or unix://")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            out.append(f"{p}POOL_MIN_SIZE must be between 1 and {p}POOL_MAX_SIZE")
        for name in ("jwt_signing_key", "mfa_encryption_key", "mail_encryption_key"):
            value = getattr(self, name)
            if value and len(value) < MIN_KEY_CHARS:
                out.append(f"{p}{name.upper()} must be at least {MIN_KEY_CHARS} characters")
            if not value and self.require_keys:
                out.append(f"{p}{name.upper()} must be set when {p}REQUIRE_KEYS is true")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_seconds") and not value > 0:
                out.append(f"{p}{f.name.upper()} must be a positive number of seconds")
        if not 0 <= self.totp_window_steps <= 10:
            out.append(f"{p}TOTP_WINDOW_STEPS must be between 0 and 10")
        if self.reset_outbox_ttl_seconds > self.reset_token_ttl_seconds:
            out.append(f"{p}RESET_OUTBOX_TTL_SECONDS must not exceed {p}RESET_TOKEN_TTL_SECONDS")
        if self.login_failure_memory_seconds < self.login_max_delay_seconds:
            out.append(
                f"{p}LOGIN_FAILURE_MEMORY_SECONDS must be at least {p}LOGIN_MAX_DELAY_SECONDS"
            )
        for name in (
            "argon2_time_cost",
            "argon2_parallelism",
            "login_free_failures",
            "login_account_free_failures",
            "rate_limit_per_ip",
            "rate_limit_per_account",
            "suspicious_distinct_ips",
            "suspicious_failures_before_new_ip",
        ):
            if getattr(self, name) < 1:
                out.append(f"{p}{name.upper()} must be at least 1")
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            out.append(f"{p}ARGON2_MEMORY_KIB must be at least 8 x {p}ARGON2_PARALLELISM")
        try:
            _ = self.trusted_networks
        except ValueError:
            out.append(f"{p}TRUSTED_PROXIES must be comma-separated addresses or networks")
        if self.audit_failure_policy not in ("fail_open", "fail_closed"):
            out.append(f"{p}AUDIT_FAILURE_POLICY must be fail_open or fail_closed")
        if not self.audit_spool_key:
            out.append(f"{p}AUDIT_SPOOL_KEY must not be empty")
        if not self.redis_prefix:
            out.append(f"{p}REDIS_PREFIX must not be empty")
        return out


def _mask(value: str) -> str:
    """A URL without its password; any other secret as ***."""
    if value and "://" not in value:
        return "'***'"
    return repr(mask_url(value))


_SECRETS = frozenset(
    {
        "jwt_signing_key",
        "mfa_encryption_key",
        "mail_encryption_key",
        "database_url",
        "redis_url",
        "audit_redis_url",
    }
)
