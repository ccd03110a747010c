"""The audit-service's one settings object, read once from AUDIT_* environment variables."""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from meshkit import SettingsError, log_problems, mask_url, read_env
from meshkit.metrics import listen_problems
from meshkit.secrets import (
    master_key_problem,
    refuse_dev_secrets,
    secret_problem,
    url_password_problem,
)
from meshkit.tls import PLAINTEXT, TlsFiles, tls_problems

PREFIX = "AUDIT_"

__all__ = ["PREFIX", "Settings", "SettingsError"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the audit-service. Environment variable = AUDIT_ + upper-case name."""

    database_url: str = "postgresql://postgres@127.0.0.1:5434/audit"
    grpc_listen: str = "127.0.0.1:50052"
    # Mutual TLS (meshkit.tls): `required` (callers present a certificate of the CA),
    # or `plaintext`, only when set explicitly (a loud warning at start-up).
    tls: str = "required"
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Who may write and read (audit_svc/access/policy.py); empty: audit_svc/policy.toml.
    policy_file: str = ""
    # Bearer tokens of the user-service: its public key (PEM, Ed25519 or P-256), and
    # the audience and issuer a token must name. Without the key, tokens are refused.
    token_public_key_file: str = ""
    token_audience: str = "auditmesh"
    token_issuer: str = "user-service"
    # What `make up` runs, loopback only: callers on loopback without credentials may
    # read and write, as the anonymous principal (a banner at start and in Health).
    dev_mode: bool = False
    # Development secrets (meshkit.secrets) are a warning instead of refused at start-up:
    # compose.override.yml's dev values, on any listener. AUDIT_DEV_MODE implies it.
    dev_secrets: bool = False
    # One `audit.read` event per read call (who, what, how many); off only for tests
    # that count the events they wrote.
    read_audit: bool = True
    # Chain this replica appends to; empty takes the first free one of chain-1, chain-2...
    chain_id: str = ""
    pool_min_size: int = 2
    pool_max_size: int = 10
    # Most events one group commit writes; more waiting batches go in the next one.
    max_group_events: int = 5000
    # Events read off streams (or queued for commit) and not yet answered; readers
    # wait beyond it (back-pressure), which bounds the service's memory.
    max_queue_events: int = 20_000
    max_clock_skew_seconds: float = 300.0
    # Live tails (Watch): most open at once per caller and in total (more are
    # RESOURCE_EXHAUSTED, TOO_MANY_WATCHERS), and how many events one may be behind
    # before it is ended (WATCHER_FELL_BEHIND).
    watch_max_per_caller: int = 16
    watch_max_total: int = 256
    watch_queue_events: int = 10_000
    # Oldest event_time accepted, in days before now; older events are rejected
    # (EVENT_TIME_TOO_OLD) unless the writer has `backfill = true` in the policy.
    max_event_age_days: float = 7.0
    # Write quota per principal (token buckets holding BURST_SECONDS of the rate): a
    # batch over it is RESOURCE_EXHAUSTED (WRITE_QUOTA_EXCEEDED) with a RetryInfo.
    # 0 is no limit; a writer's `events_per_second` / `bytes_per_second` in the policy
    # overrides these.
    write_quota_events_per_second: float = 5000.0
    write_quota_bytes_per_second: float = 5_000_000.0
    write_quota_burst_seconds: float = 2.0
    shutdown_grace_seconds: float = 10.0
    # How often grpc.health re-checks that this replica can commit (database, lock).
    health_interval_seconds: float = 1.0
    log_level: str = "INFO"
    log_format: str = "json"
    # Prometheus /metrics on host:port (port 0: a free one); empty = no endpoint.
    metrics_listen: str = ""
    # How often sink lag, the chain head and the newest checkpoint are read for it.
    metrics_refresh_seconds: float = 5.0
    # Signs page tokens. Random per process when empty: tokens then expire on restart.
    page_token_key: str = field(default="", repr=False)

    # RabbitMQ ingest (audit_svc.api.amqp_consumer); off when the URL is empty. The URL
    # carries the consumer's user and password (required outside dev mode); amqps://
    # for TLS. Publishers send to the exchange <queue>; bad events go to <queue>.dead.
    amqp_url: str = ""
    amqp_queue: str = "audit.ingest"
    # Messages delivered and not yet acked (each acked after its commit).
    amqp_prefetch: int = 64
    # Longest wait between reconnects to the broker, and between retries of a
    # message whose commit failed (the database is down): it stays unacked meanwhile.
    amqp_retry_max_seconds: float = 10.0

    # Privacy (audit_svc.privacy): personal fields encrypted per subject before hashing,
    # with searchable pseudonyms. Off only to measure what it costs.
    privacy: bool = True
    # Which fields are personal and how readers see them; empty: audit_svc/privacy.toml.
    privacy_policy_file: str = ""
    # The master key (32 bytes, base64) that wraps the data keys and derives the
    # pseudonym keys. Made (as a dev value) only in dev mode when missing.
    privacy_key_file: str = ".run/audit/privacy-master-key"
    # How long an unwrapped data key is used before its row is read again: an erasure
    # on another replica takes effect here within this time (at once on its own).
    privacy_key_cache_seconds: float = 1.0
    # What the forwarders (syslog, webhook) send of personal fields: masked, as a plain
    # reader sees them, unless this is set. Copies sent in clear are beyond erasure.
    forward_clear_text: bool = False

    # Sinks (audit_svc.sinks): each works from its own cursor, off the ingest path.
    # How often an idle sink looks for work without a nudge; longest retry back-off.
    sink_poll_seconds: float = 1.0
    sink_retry_max_seconds: float = 30.0
    # InfluxDB v2 write API; the sink is off when the URL is empty.
    influx_url: str = ""
    influx_org: str = "auditmesh"
    influx_bucket: str = "audit"
    influx_token: str = field(default="", repr=False)
    # Width of the count windows (by event_time), and most seqs one write covers.
    influx_window_seconds: float = 10.0
    influx_batch_events: int = 20_000
    # S3 (MinIO) host:port for checkpoints and the archive; both are off when empty.
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = field(default="", repr=False)
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    # Buckets are created with object lock: versions are immutable for the period.
    checkpoint_bucket: str = "audit-checkpoints"
    archive_bucket: str = "audit-archive"
    object_lock_mode: str = "COMPLIANCE"
    object_lock_days: int = 365
    # A signed checkpoint of the head every N events or T seconds (if any new event):
    # the events after the last checkpoint are the ones a truncation could hide.
    checkpoint_every_events: int = 10_000
    checkpoint_interval_seconds: float = 1.0
    # Extend each chain's Merkle tree (RFC 9162) in every group commit; checkpoints
    # are then C2SP notes of its root. Off only to measure what it costs.
    merkle_tree: bool = True
    # The checkpoint key's name in C2SP notes; a chain's origin is <this>/<chain id>.
    log_origin: str = "auditmesh.local"
    # How often the session holding the chain's advisory lock is checked, and how often
    # a lost lock is tried again (writes stop until it is held again).
    lock_check_seconds: float = 1.0
    # tlog-witness base URLs (comma-separated) each new checkpoint is sent to.
    witness_urls: str = ""
    # Ed25519 private seed, base64; when empty, the PEM file below (made if missing).
    signing_key: str = field(default="", repr=False)
    signing_key_file: str = ".run/audit/checkpoint-signing-key.pem"
    # Events received longer ago than this move to the archive bucket; 0 = no schedule.
    hot_retention_days: float = 90.0
    archive_interval_seconds: float = 3600.0
    archive_object_events: int = 10_000
    # Forwarders (audit_svc.sinks.syslog, .webhook): SIEM delivery from their own
    # cursors, at least once (receivers dedup by event id). Each is off when empty.
    # Syslog: RFC 5424 over TCP, octet-counted frames, a CEF payload; host:port. TLS
    # unless SYSLOG_TLS=false (then a warning); the CA file verifies the receiver
    # (system CAs when empty), cert and key are an optional client certificate.
    syslog_target: str = ""
    syslog_tls: bool = True
    syslog_ca_file: str = ""
    syslog_cert_file: str = ""
    syslog_key_file: str = ""
    syslog_facility: int = 13  # log audit
    syslog_hostname: str = ""  # the machine's name when empty
    syslog_batch_events: int = 1000
    # TCP syslog has no acknowledgement: events count as delivered (the cursor moves)
    # only once the connection has stayed up this long after they were written.
    syslog_confirm_seconds: float = 1.0
    # Webhook: POST batches (NDJSON lines, or one JSON document) signed with
    # HMAC-SHA256 of "<timestamp>.<body>" under the secret; https:// unless the host is
    # loopback or DEV_MODE. A batch still failing after MAX_ATTEMPTS tries (exponential
    # back-off from BACKOFF_SECONDS) goes to forwarder_dead_letters and is skipped.
    webhook_url: str = ""
    webhook_secret: str = field(default="", repr=False)
    webhook_body: str = "ndjson"  # or json
    webhook_event_format: str = "ndjson"  # or ocsf, ecs
    webhook_batch_events: int = 500
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: float = 0.5
    webhook_timeout_seconds: float = 10.0
    webhook_ca_file: str = ""
    # The cold tier: archived Parquet objects `Query` reads are kept in this folder,
    # at most this many bytes (least recently used go first).
    archive_cache_dir: str = ".run/audit/archive-cache"
    archive_cache_bytes: int = 1 << 30

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("database_url", "amqp_url"):
                value = mask_url(value)
            elif f.name in _SECRETS and value:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def tls_files(self) -> TlsFiles | None:
        """The service's TLS files; None when it serves plaintext."""
        if self.tls == PLAINTEXT:
            return None
        return TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)

    @property
    def witnesses(self) -> tuple[str, ...]:
        return tuple(u.strip().rstrip("/") for u in self.witness_urls.split(",") if u.strip())

    @property
    def s3_enabled(self) -> bool:
        return bool(self.s3_endpoint)

    @property
    def page_token_secret(self) -> bytes:
        return self.page_token_key.encode() if self.page_token_key else _PROCESS_KEY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate; raise `SettingsError` listing every bad variable."""
        return read_env(cls, PREFIX, "audit-service", environ, overrides, cls._problems)

    def dev_secret_problems(self) -> list[str]:
        """Each production secret left empty or at a development value (meshkit.secrets)."""
        out = url_password_problem(f"{PREFIX}DATABASE_URL", self.database_url)
        out += secret_problem(f"{PREFIX}PAGE_TOKEN_KEY", self.page_token_key)
        if self.s3_enabled:
            out += secret_problem(f"{PREFIX}S3_SECRET_KEY", self.s3_secret_key)
        if self.influx_url:
            out += secret_problem(f"{PREFIX}INFLUX_TOKEN", self.influx_token)
        if self.signing_key:
            out += secret_problem(f"{PREFIX}SIGNING_KEY", self.signing_key)
        if self.amqp_url:
            out += url_password_problem(f"{PREFIX}AMQP_URL", self.amqp_url)
        if self.webhook_url:
            out += secret_problem(f"{PREFIX}WEBHOOK_SECRET", self.webhook_secret)
        if self.privacy:
            out += master_key_problem(f"{PREFIX}PRIVACY_KEY_FILE", self.privacy_key_file)
        return out

    def check_secrets(self, log: logging.Logger) -> None:
        """At start-up: raise SettingsError naming each development secret unless
        AUDIT_DEV_MODE or AUDIT_DEV_SECRETS is on, in which case they are logged as a warning."""
        refuse_dev_secrets(
            "audit-service", self.dev_secret_problems(),
            dev_mode=self.dev_mode or self.dev_secrets,
            dev_flag=f"{PREFIX}DEV_MODE / {PREFIX}DEV_SECRETS", log=log,
        )  # fmt: skip

    def _problems(self) -> list[str]:
        out = log_problems(PREFIX, self.log_level, self.log_format)
        out += tls_problems(
            PREFIX, self.tls, TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        )
        out += listen_problems(f"{PREFIX}METRICS_LISTEN", self.metrics_listen)
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            out.append(f"{PREFIX}DATABASE_URL must start with postgresql://")
        host, _, port = self.grpc_listen.rpartition(":")
        if not host or not port.isdigit():
            out.append(f"{PREFIX}GRPC_LISTEN must be host:port, got {self.grpc_listen!r}")
        elif self.dev_mode and not _loopback(host):
            out.append(f"{PREFIX}DEV_MODE is for loopback only; {PREFIX}GRPC_LISTEN is {host}")
        if self.privacy_policy_file and not Path(self.privacy_policy_file).is_file():
            out.append(
                f"{PREFIX}PRIVACY_POLICY_FILE={self.privacy_policy_file!r} is not a readable file"
            )
        if self.privacy_key_cache_seconds < 0:
            out.append(f"{PREFIX}PRIVACY_KEY_CACHE_SECONDS must be >= 0")
        if self.policy_file and not Path(self.policy_file).is_file():
            out.append(f"{PREFIX}POLICY_FILE={self.policy_file!r} is not a readable file")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            out.append(f"{PREFIX}POOL_MIN_SIZE must be between 1 and {PREFIX}POOL_MAX_SIZE")
        if self.max_group_events < 1 or self.max_queue_events < self.max_group_events:
            out.append(f"{PREFIX}MAX_QUEUE_EVENTS must be >= {PREFIX}MAX_GROUP_EVENTS >= 1")
        if self.amqp_url and not self.amqp_url.startswith(("amqp://", "amqps://")):
            out.append(f"{PREFIX}AMQP_URL must start with amqp:// or amqps://")
        elif self.amqp_url and self.dev_mode and not _loopback(_host(self.amqp_url)):
            # Dev mode takes a message without user_id as the anonymous principal.
            out.append(f"{PREFIX}DEV_MODE is for loopback only; {PREFIX}AMQP_URL is elsewhere")
        if not _QUEUE_NAME.fullmatch(self.amqp_queue):
            out.append(f"{PREFIX}AMQP_QUEUE must be letters, digits, '.', '_' or '-'")
        if self.influx_url and not self.influx_url.startswith(("http://", "https://")):
            out.append(f"{PREFIX}INFLUX_URL must start with http:// or https://")
        if self.s3_endpoint and "://" in self.s3_endpoint:
            out.append(f"{PREFIX}S3_ENDPOINT is host:port (no scheme; see S3_SECURE)")
        if not self.log_origin or "+" in self.log_origin or " " in self.log_origin:
            out.append(f"{PREFIX}LOG_ORIGIN must be non-empty, without spaces or '+'")
        if any(not u.startswith(("http://", "https://")) for u in self.witnesses):
            out.append(f"{PREFIX}WITNESS_URLS must be http:// or https:// URLs")
        if self.object_lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
            out.append(f"{PREFIX}OBJECT_LOCK_MODE must be COMPLIANCE or GOVERNANCE")
        out += self._forwarder_problems()
        positive = {
            "SYSLOG_BATCH_EVENTS": self.syslog_batch_events,
            "WEBHOOK_BATCH_EVENTS": self.webhook_batch_events,
            "WEBHOOK_MAX_ATTEMPTS": self.webhook_max_attempts,
            "WEBHOOK_TIMEOUT_SECONDS": self.webhook_timeout_seconds,
            "SINK_POLL_SECONDS": self.sink_poll_seconds,
            "LOCK_CHECK_SECONDS": self.lock_check_seconds,
            "HEALTH_INTERVAL_SECONDS": self.health_interval_seconds,
            "SINK_RETRY_MAX_SECONDS": self.sink_retry_max_seconds,
            "INFLUX_WINDOW_SECONDS": self.influx_window_seconds,
            "INFLUX_BATCH_EVENTS": self.influx_batch_events,
            "OBJECT_LOCK_DAYS": self.object_lock_days,
            "CHECKPOINT_EVERY_EVENTS": self.checkpoint_every_events,
            "ARCHIVE_OBJECT_EVENTS": self.archive_object_events,
            "ARCHIVE_CACHE_BYTES": self.archive_cache_bytes,
            "METRICS_REFRESH_SECONDS": self.metrics_refresh_seconds,
            "MAX_EVENT_AGE_DAYS": self.max_event_age_days,
            "WATCH_MAX_PER_CALLER": self.watch_max_per_caller,
            "WATCH_MAX_TOTAL": self.watch_max_total,
            "WATCH_QUEUE_EVENTS": self.watch_queue_events,
            "AMQP_PREFETCH": self.amqp_prefetch,
            "AMQP_RETRY_MAX_SECONDS": self.amqp_retry_max_seconds,
            "WRITE_QUOTA_BURST_SECONDS": self.write_quota_burst_seconds,
        }
        out += [f"{PREFIX}{name} must be > 0" for name, value in positive.items() if value <= 0]
        not_negative = {
            "CHECKPOINT_INTERVAL_SECONDS": self.checkpoint_interval_seconds,
            "HOT_RETENTION_DAYS": self.hot_retention_days,
            "ARCHIVE_INTERVAL_SECONDS": self.archive_interval_seconds,
            "WRITE_QUOTA_EVENTS_PER_SECOND": self.write_quota_events_per_second,
            "WRITE_QUOTA_BYTES_PER_SECOND": self.write_quota_bytes_per_second,
            "SYSLOG_CONFIRM_SECONDS": self.syslog_confirm_seconds,
            "WEBHOOK_BACKOFF_SECONDS": self.webhook_backoff_seconds,
        }
        out += [f"{PREFIX}{name} must be >= 0" for name, value in not_negative.items() if value < 0]
        return out

    def _forwarder_problems(self) -> list[str]:
        out = []
        if self.syslog_target:
            host, _, port = self.syslog_target.rpartition(":")
            if not host or not port.isdigit():
                out.append(f"{PREFIX}SYSLOG_TARGET must be host:port")
            if not 0 <= self.syslog_facility <= 23:
                out.append(f"{PREFIX}SYSLOG_FACILITY must be 0..23")
            if bool(self.syslog_cert_file) != bool(self.syslog_key_file):
                out.append(f"{PREFIX}SYSLOG_CERT_FILE and SYSLOG_KEY_FILE go together")
        if self.webhook_url:
            url = urlsplit(self.webhook_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                out.append(f"{PREFIX}WEBHOOK_URL must be an http:// or https:// URL")
            elif url.scheme == "http" and not (self.dev_mode or _loopback(url.hostname)):
                out.append(f"{PREFIX}WEBHOOK_URL must be https:// (http only to loopback)")
            if not self.webhook_secret:
                out.append(f"{PREFIX}WEBHOOK_SECRET is required with {PREFIX}WEBHOOK_URL")
        if self.webhook_body not in ("ndjson", "json"):
            out.append(f"{PREFIX}WEBHOOK_BODY must be ndjson or json")
        if self.webhook_event_format not in ("ndjson", "ocsf", "ecs"):
            out.append(f"{PREFIX}WEBHOOK_EVENT_FORMAT must be ndjson, ocsf or ecs")
        return out


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_PROCESS_KEY = secrets.token_bytes(32)
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,200}")
_SECRETS = frozenset(
    {"page_token_key", "influx_token", "s3_secret_key", "signing_key", "webhook_secret"}
)
