"""The client's one settings object, read once from AUDIT_CLIENT_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from audit_client.errors import SettingsError
from meshkit.settings import env_values, mask_url
from meshkit.tls import PLAINTEXT, TlsFiles, tls_problems

PREFIX = "AUDIT_CLIENT_"
FAIL_OPEN = "fail_open"
FAIL_CLOSED = "fail_closed"
GRPC = "grpc"
AMQP = "amqp"
# The audit-service takes at most this many events per batch.
SERVER_MAX_BATCH = 1000
# ...and keeps at most this many batches of one stream in progress.
SERVER_MAX_IN_FLIGHT = 64
# gRPC servers refuse messages over 4 MiB by default.
SERVER_MAX_MESSAGE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Every knob of the audit client. Environment variable = AUDIT_CLIENT_ + upper-case name.

    Every instance is valid: the constructor raises `SettingsError` listing each problem.
    """

    # How batches travel: `grpc` (the StreamIngest stream to `target`) or `amqp`
    # (published to the audit-service's RabbitMQ queue, acked by publisher confirms).
    transport: str = GRPC
    # host:port of the audit-service's gRPC listener.
    target: str = "127.0.0.1:50052"
    # Mutual TLS to the audit-service (meshkit.tls): the CA that signed it, and this
    # service's own certificate and key (its identity). `plaintext` only when set
    # explicitly, with a warning.
    tls: str = "required"
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # transport=amqp: the broker, as amqp://<user>:<password>@host:port/ (or amqps://);
    # its user is each message's user_id, which the audit-service maps to a writer.
    amqp_url: str = field(default="", repr=False)
    # The audit-service's ingest exchange (its AUDIT_AMQP_QUEUE).
    amqp_exchange: str = "audit.ingest"
    # The spool's Redis; a password in the URL is masked in repr().
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    # Redis list holding unacknowledged batches, oldest first.
    spool_key: str = "user-service:audit:retry_queue"
    # When neither the audit-service nor Redis can take an event: fail_open drops it
    # (counted and logged), fail_closed makes emit() raise AuditUnavailable.
    failure_policy: str = FAIL_OPEN
    max_batch_events: int = 500
    max_batch_bytes: int = 1024 * 1024
    max_batch_age_seconds: float = 0.05
    # Batches sent on the stream and not yet acknowledged.
    max_in_flight_batches: int = 8
    # Events held in memory (open batch, sealed batches, in flight): the memory bound.
    max_buffered_events: int = 20_000
    # A slower ack ends the stream. The service holds back-pressure on busy streams
    # (AUDIT_MAX_QUEUE_EVENTS), so a healthy but loaded service may take seconds: with
    # 16 producers at full speed, 10 s was passed once (bench.ingest, BENCHMARKS.md).
    ack_timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 2.0
    # Reconnect delay after a failure: doubles from initial up to max, with jitter.
    backoff_initial_seconds: float = 0.05
    backoff_max_seconds: float = 5.0
    # Consecutive failures that open the breaker, and how long it stays open at first
    # (doubling per failed probe, up to backoff_max_seconds).
    breaker_failure_threshold: int = 3
    breaker_reset_seconds: float = 1.0
    # Timeout of each Redis command: a hung Redis costs at most this much per attempt.
    redis_timeout_seconds: float = 1.0
    # How often the spool's depth and Redis' health are checked.
    spool_poll_seconds: float = 0.5
    # Longest the spool may grow (in batches) before it counts as full; 0 = no limit.
    spool_max_batches: int = 200_000
    # One client process at a time replays a spool; it holds a lease this long.
    replay_lease_seconds: float = 10.0
    # How long aclose() waits for buffered events to be acknowledged or spooled.
    close_timeout_seconds: float = 10.0
    # A folder of this process's own for the disk spool, the fallback after Redis
    # (see audit_client.disk_spool); empty: none, memory is the only copy then.
    disk_spool_dir: str = ""
    # Client-side witness (audit_client.witness): the audit log's checkpoint key (PEM,
    # as GetPublicKey publishes it); when set, every interval the newest checkpoint
    # must extend the last one this client checked (kept in the state file, if any).
    log_public_key_file: str = ""
    witness_state_file: str = ""
    witness_interval_seconds: float = 60.0

    def __post_init__(self) -> None:
        if problems := self._problems():
            raise SettingsError(problems)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown.append(f"{f.name}={repr(mask_url(value) if f.name in _SECRETS else value)}")
        return f"ClientSettings({', '.join(shown)})"

    @property
    def fail_closed(self) -> bool:
        """True when emit() must raise rather than lose an event."""
        return self.failure_policy == FAIL_CLOSED

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientSettings:
        """Read and validate; raise `SettingsError` listing every bad variable."""
        values, problems = env_values(cls, PREFIX, environ, overrides)
        try:
            settings = cls(**values)
        except SettingsError as exc:
            problems += exc.problems
        if problems:
            raise SettingsError(problems)
        return settings

    @property
    def tls_files(self) -> TlsFiles | None:
        """The files to dial with; None for a plaintext channel."""
        if self.tls == PLAINTEXT:
            return None
        return TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)

    def _problems(self) -> list[str]:
        p = PREFIX
        out: list[str] = []
        if self.transport == GRPC or self.log_public_key_file:  # the witness speaks gRPC
            files = TlsFiles(self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
            out += tls_problems(p, self.tls, files)
        if self.transport not in (GRPC, AMQP):
            out.append(f"{p}TRANSPORT must be {GRPC} or {AMQP}")
        elif self.transport == AMQP:
            url = urlsplit(self.amqp_url)
            if url.scheme not in ("amqp", "amqps") or not url.username:
                out.append(f"{p}AMQP_URL must be amqp[s]://<user>:<password>@host:port/")
            if not self.amqp_exchange:
                out.append(f"{p}AMQP_EXCHANGE must not be empty")
        host, _, port = self.target.rpartition(":")
        if not host or not port.isdigit():
            out.append(f"{p}TARGET must be host:port, got {self.target!r}")
        if urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            out.append(f"{p}REDIS_URL must start with redis://, rediss:// or unix://")
        if not self.spool_key:
            out.append(f"{p}SPOOL_KEY must not be empty")
        if self.failure_policy not in (FAIL_OPEN, FAIL_CLOSED):
            out.append(f"{p}FAILURE_POLICY must be {FAIL_OPEN} or {FAIL_CLOSED}")
        if not 1 <= self.max_batch_events <= SERVER_MAX_BATCH:
            out.append(f"{p}MAX_BATCH_EVENTS must be between 1 and {SERVER_MAX_BATCH}")
        if not 1024 <= self.max_batch_bytes <= SERVER_MAX_MESSAGE // 2:
            out.append(f"{p}MAX_BATCH_BYTES must be between 1024 and {SERVER_MAX_MESSAGE // 2}")
        if not 1 <= self.max_in_flight_batches <= SERVER_MAX_IN_FLIGHT:
            out.append(f"{p}MAX_IN_FLIGHT_BATCHES must be between 1 and {SERVER_MAX_IN_FLIGHT}")
        if self.max_buffered_events < 2 * self.max_batch_events:
            out.append(f"{p}MAX_BUFFERED_EVENTS must be at least twice {p}MAX_BATCH_EVENTS")
        if self.breaker_failure_threshold < 1:
            out.append(f"{p}BREAKER_FAILURE_THRESHOLD must be at least 1")
        if self.spool_max_batches < 0:
            out.append(f"{p}SPOOL_MAX_BATCHES must not be negative")
        for f in fields(self):
            if f.name.endswith("_seconds") and not getattr(self, f.name) > 0:
                out.append(f"{p}{f.name.upper()} must be a positive number of seconds")
        if self.backoff_initial_seconds > self.backoff_max_seconds:
            out.append(f"{p}BACKOFF_INITIAL_SECONDS must not exceed {p}BACKOFF_MAX_SECONDS")
        if self.replay_lease_seconds < 2 * self.spool_poll_seconds:
            out.append(f"{p}REPLAY_LEASE_SECONDS must be at least twice {p}SPOOL_POLL_SECONDS")
        if self.witness_state_file and not self.log_public_key_file:
            out.append(f"{p}WITNESS_STATE_FILE needs {p}LOG_PUBLIC_KEY_FILE")
        return out


_SECRETS = frozenset({"redis_url", "amqp_url"})
