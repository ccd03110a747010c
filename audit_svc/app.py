"""Wiring and lifecycle of the audit-service: pool, chain, appender, gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health

from audit.v1 import audit_service_pb2 as v1_pb
from audit.v1 import audit_service_pb2_grpc as v1_grpc
from audit.v2 import audit_service_pb2 as v2_pb
from audit.v2 import audit_service_pb2_grpc as v2_grpc
from audit_svc import metrics
from audit_svc.access import load_policy
from audit_svc.access.authn import DEV_MODE_BANNER, Authenticator
from audit_svc.access.policy import DEFAULT_PATH as DEFAULT_POLICY
from audit_svc.access.tokens import JwtVerifier
from audit_svc.api.amqp_consumer import AmqpIngest
from audit_svc.api.guard import Guard
from audit_svc.api.health_watch import HealthWatch
from audit_svc.api.servicer import AuditServicer
from audit_svc.api.servicer_v1 import AuditLogServicer
from audit_svc.errors import DOMAIN, Unavailable
from audit_svc.ingest.appender import Appender, Results
from audit_svc.ingest.ingestor import Ingestor
from audit_svc.ingest.quota import Rates, WriteQuotas
from audit_svc.integrity.chain import ready
from audit_svc.model import Event
from audit_svc.privacy import DEFAULT_PATH as DEFAULT_PRIVACY
from audit_svc.privacy import KeyRing, Sealer, load_privacy_policy, open_keys
from audit_svc.privacy.admin import PrivacyAdmin
from audit_svc.read.audited import ReadAudit
from audit_svc.read.cold import ColdTier
from audit_svc.read.disclosure import CLEAR_VIEWER, MASKED_VIEWER, Disclosure
from audit_svc.read.live_tail import LiveTail
from audit_svc.read.reader import Reader
from audit_svc.settings import Settings
from audit_svc.sinks import Sinks
from audit_svc.sinks.object_cache import ObjectCache
from audit_svc.sinks.runner import SinkRunner
from audit_svc.storage.archive_reads import ParquetArchive
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.event_writes import ChainLock, PgEventStore
from audit_svc.storage.merkle_tiles import PgTreeStore
from audit_svc.storage.parquet import PARQUET
from audit_svc.storage.partitions import PartitionKeeper
from audit_svc.storage.postgres import create_pool
from audit_svc.storage.privacy_store import PgPrivacyStore
from audit_svc.storage.sink_state import PgSinkState
from audit_svc.storage.user_counts import UserCountCache
from meshkit.metrics import MetricsEndpoint, MetricsInterceptor
from meshkit.rpc import ErrorInterceptor
from meshkit.server import ServiceApp, new_server
from meshkit.tls import server_credentials, warn_plaintext

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    v2_pb.DESCRIPTOR.services_by_name["AuditService"].full_name,
    v1_pb.DESCRIPTOR.services_by_name["AuditLogService"].full_name,
)
MAX_AUTO_CHAINS = 64
SINK_STOP_SECONDS = 2.0


class AuditApp(ServiceApp):
    """A running audit-service. `async with AuditApp(settings) as app:` serves on
    `app.port` until the block ends, then shuts down gracefully."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.chain_id = ""
        super().__init__()
        self.appender: Appender | None = None
        self.read_audit: ReadAudit | None = None
        self.sinks: Sinks | None = None
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.tail = LiveTail(
            settings.watch_queue_events,
            max_total=settings.watch_max_total,
            max_per_caller=settings.watch_max_per_caller,
        )
        self._can_commit = True
        self._commit_listeners: list[Callable[[bool], None]] = []
        self._closing = asyncio.Event()
        self.metrics_port = 0
        self._refresher: asyncio.Task[None] | None = None
        self.amqp: AmqpIngest | None = None
        self._amqp_task: asyncio.Task[None] | None = None
        self._partitions: SinkRunner | None = None

    async def _start(self) -> None:
        s = self.settings
        pool = await create_pool(s.database_url, min_size=s.pool_min_size, max_size=s.pool_max_size)
        self._stack.push_async_callback(pool.close)
        self.pool = pool
        lock = await ChainLock.connect(s.database_url)
        self._stack.push_async_callback(lock.close)
        self.chain_id = await self._claim_chain(lock)
        self._lock = lock

        # Today's partition and the next days' exist before the first commit.
        keeper = PartitionKeeper(pool)
        await keeper.step()
        self._partitions = SinkRunner(
            "partitions", keeper.step, poll_seconds=keeper.CHECK_SECONDS,
            retry_max_seconds=s.sink_retry_max_seconds,
        )  # fmt: skip
        sink_state = PgSinkState(pool)
        events = PgEventStore(pool, merkle=s.merkle_tree)
        # Rows stored while the tree was off are added now; None: no tree on this chain.
        tree = PgTreeStore(pool) if await events.catch_up_tree(self.chain_id) else None
        events.fence_pid = lock.pid
        self._events = events
        privacy_policy = load_privacy_policy(s.privacy_policy_file or DEFAULT_PRIVACY)
        privacy_store = PgPrivacyStore(pool)
        keys = open_keys(s.privacy_key_file, dev=s.dev_mode or s.dev_secrets)
        ring = KeyRing(keys, privacy_store, ttl=s.privacy_key_cache_seconds) if s.privacy else None
        self.appender = Appender(
            events,
            self.chain_id,
            max_group_events=s.max_group_events,
            max_queue_events=s.max_queue_events,
        )
        sealer = None if ring is None else Sealer(privacy_policy, ring)
        self.privacy = PrivacyAdmin(
            privacy_store, keys, privacy_policy, ring=ring,
            submit=functools.partial(write_events, self.appender, sealer),
        )  # fmt: skip
        disclosure = Disclosure(privacy_policy, keys, ring)
        policy = load_policy(s.policy_file or DEFAULT_POLICY)
        tokens = (
            JwtVerifier(s.token_public_key_file, audience=s.token_audience, issuer=s.token_issuer)
            if s.token_public_key_file
            else None
        )
        self.authenticator = Authenticator(policy, tokens, dev_mode=s.dev_mode)
        if s.dev_mode:
            log.warning(DEV_MODE_BANNER)
        if s.token_public_key_file and not Path(s.token_public_key_file).is_file():
            # The user-service writes it when it starts; tokens are refused until then.
            log.warning(
                "no token key at %s yet: bearer tokens are refused", s.token_public_key_file
            )
        skew = timedelta(seconds=s.max_clock_skew_seconds)
        self.ingestor = ingestor = Ingestor(
            self.appender,
            policy,
            events,
            max_clock_skew=skew,
            max_event_age=timedelta(days=s.max_event_age_days),
            quotas=WriteQuotas(
                Rates(s.write_quota_events_per_second, s.write_quota_bytes_per_second),
                s.write_quota_burst_seconds,
            ),
            sealer=sealer,
        )
        if s.amqp_url:
            self.amqp = AmqpIngest(
                s.amqp_url,
                s.amqp_queue,
                ingestor,
                self.authenticator,
                prefetch=s.amqp_prefetch,
                retry_max_seconds=s.amqp_retry_max_seconds,
            )
        forwarded = disclosure.presenter(CLEAR_VIEWER if s.forward_clear_text else MASKED_VIEWER)
        self.sinks = Sinks.open(
            s, sink_state, self.chain_id, tree, table=PARQUET, present=forwarded
        )
        self._stack.push_async_callback(self.sinks.release)
        reader = Reader(
            PgEventReader(pool, UserCountCache()),
            sink_state,
            self.appender,
            page_token_key=s.page_token_secret,
            sinks=self.sinks if self.sinks.runners else None,
            checkpoint_bucket=s.checkpoint_bucket,
            tree=tree,
            lock_held=self._holds_lock,
            queue_health=self.amqp.health if self.amqp is not None else None,
            cold=self._cold_tier(sink_state),
            disclosure=disclosure,
        )
        self.health_watch = HealthWatch(
            self.health, SERVICE_NAMES, self._health_verdict, interval=s.health_interval_seconds
        )
        self.reader = reader
        self.read_audit = ReadAudit(
            self.appender, enabled=s.read_audit, scrub=disclosure.scrub_filters,
            write=functools.partial(write_events, self.appender, sealer),
        )  # fmt: skip
        ingestor.on_conflict = self.read_audit.record_conflict
        guard = Guard(self.authenticator, self.read_audit)
        self.appender.add_listener(self.tail.publish)
        self.appender.add_listener(self.sinks.nudge)  # sinks read from their cursors

        files = s.tls_files
        if files is None:
            warn_plaintext("the audit-service", "AUDIT_TLS")
        server, self.port = new_server(
            [MetricsInterceptor(), ErrorInterceptor(DOMAIN)],
            SERVICE_NAMES,
            self.health,
            s.grpc_listen,
            "AUDIT_GRPC_LISTEN",
            server_credentials(files) if files else None,
        )
        v2_grpc.add_AuditServiceServicer_to_server(
            AuditServicer(ingestor, reader, self.tail, guard, self.privacy), server
        )
        v1_grpc.add_AuditLogServiceServicer_to_server(AuditLogServicer(reader, guard), server)
        self.server = server
        state = self._serve_metrics(sink_state) if s.metrics_listen else None

        self._appender_task = await self.start_task(self.appender.run(), name="appender")
        self._lock_task = await self.start_task(self._keep_lock(), name="chain-lock")
        self._sinks_task = await self.start_task(self.sinks.run(), name="sinks")
        self._partitions_task = await self.start_task(self._partitions.run(), name="partitions")
        if state is not None:
            refresher = metrics.refresh(state, s.metrics_refresh_seconds)
            self._refresher = await self.start_task(refresher, name="metrics")
        self._read_audit_task = await self.start_task(self.read_audit.run(), name="read-audit")
        if self.amqp is not None:
            self._amqp_task = await self.start_task(self.amqp.run(), name="amqp-ingest")
        # Admin actions queued by tools (python -m audit_svc erase / hold) are audited here.
        interval = s.sink_poll_seconds
        self._privacy_task = await self.start_task(self.privacy.run(interval), name="privacy")
        await server.start()
        await self.health_watch.set(True)
        self._health_task = await self.start_task(self.health_watch.run(), name="health")
        log.info("audit-service serving on port %d, chain %s", self.port, self.chain_id)

    def _cold_tier(self, ranges: PgSinkState) -> ColdTier | None:
        """Query over the archive's Parquet objects; None without S3."""
        assert self.sinks is not None
        store, s = self.sinks.archive_store, self.settings
        if store is None:
            return None
        cache = ObjectCache(store, Path(s.archive_cache_dir), s.archive_cache_bytes)
        return ColdTier(
            ranges, ParquetArchive(cache.path), hot_window=timedelta(days=s.hot_retention_days)
        )

    def _serve_metrics(self, store: PgSinkState) -> metrics.ServiceState:
        """/metrics on AUDIT_METRICS_LISTEN, with this app's state, until stop."""
        assert self.appender is not None and self.sinks is not None
        endpoint = MetricsEndpoint(self.settings.metrics_listen, "AUDIT_METRICS_LISTEN")
        self._stack.callback(endpoint.close)
        self.metrics_port = endpoint.port
        state = metrics.ServiceState(
            store, self.appender, self.sinks, amqp=self.amqp.status if self.amqp else None
        )
        metrics.track(state)
        self._stack.callback(metrics.untrack, state)
        return state

    @property
    def can_commit(self) -> bool:
        """False while this replica does not hold its chain's advisory lock: writes
        fail with CHAIN_LOCK_LOST (UNAVAILABLE) until it is taken again. Health can
        say so (`add_commit_listener`)."""
        return self._can_commit

    def add_commit_listener(self, listener: Callable[[bool], None]) -> None:
        """Called with the new `can_commit` whenever it changes."""
        self._commit_listeners.append(listener)

    def _set_can_commit(self, value: bool) -> None:
        if value != self._can_commit:
            self._can_commit = value
            for listener in self._commit_listeners:
                listener(value)

    async def _keep_lock(self) -> None:
        """Watch the lock's session; when it is gone (PostgreSQL restarted, the
        connection cut), fence every write and take the lock again on a new session,
        retrying until it is free. Another replica that took it meanwhile keeps it."""
        lock, every = self._lock, self.settings.lock_check_seconds
        while not self._closing.is_set():
            lost = asyncio.create_task(lock.lost.wait())
            closing = asyncio.create_task(self._closing.wait())
            await asyncio.wait({lost, closing}, timeout=every, return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            closing.cancel()
            if self._closing.is_set() or await lock.alive():
                continue
            self._events.fence_pid = 0  # no session holds a lock with pid 0
            self._set_can_commit(False)
            log.error("lost the advisory lock of chain %s: writes stop until it is held again",
                      self.chain_id)  # fmt: skip
            while not self._closing.is_set():
                try:
                    if await lock.reclaim():
                        self._events.fence_pid = lock.pid
                        self._set_can_commit(True)
                        log.warning("advisory lock of chain %s held again", self.chain_id)
                        break
                    log.error("chain %s is locked by another process; not writing", self.chain_id)
                except Unavailable as exc:
                    log.warning("cannot take the lock of chain %s yet: %s", self.chain_id, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=every)

    async def _health_verdict(self) -> tuple[bool, str]:
        """grpc.health's verdict: the REST health's (database answers, lock held)."""
        report = await self.reader.health()
        down = [f"{c.name}: {c.detail}" for c in report.components if not c.ok]
        return report.serving, "; ".join(down)

    async def _holds_lock(self) -> bool:
        return self.can_commit

    async def _claim_chain(self, lock: ChainLock) -> str:
        wanted = (
            [self.settings.chain_id]
            if self.settings.chain_id
            else [f"chain-{i}" for i in range(1, MAX_AUTO_CHAINS + 1)]
        )
        if chain_id := await lock.claim(wanted):
            return chain_id
        raise Unavailable(
            f"chain {wanted[0]} is owned by another replica (AUDIT_CHAIN_ID)"
            if self.settings.chain_id
            else f"all {MAX_AUTO_CHAINS} chains are owned by other replicas"
        )

    async def _stop(self) -> None:
        """Health NOT_SERVING, drain, stop the server, commit what is queued, close.

        Ingest streams stop reading at once, commit and ack what they read, and end
        with UNAVAILABLE (the client resends the rest): the stop takes about one group
        commit, not `shutdown_grace_seconds`, which only bounds slow unary calls."""
        grace = self.settings.shutdown_grace_seconds
        self._closing.set()
        try:
            if self.server is not None:
                self.health_watch.stop()
                self._health_task.cancel()
                await self.health.enter_graceful_shutdown()
                self.ingestor.drain()
                if self.amqp is not None:
                    await self.amqp.stop(grace)  # what it holds is committed and acked
                self.tail.close()  # live tails end now; they would hold stop() for `grace`
                await self.server.stop(grace)
            if self.read_audit is not None:
                self._privacy_task.cancel()
                self._read_audit_task.cancel()
                await self.read_audit.flush()  # the last reads' records, before the appender
            if self.appender is not None:
                await self.appender.close()
            if self._amqp_task is not None:
                self._amqp_task.cancel()  # only if a message it held outlived `grace`
            if self._refresher is not None:
                self._refresher.cancel()
            if self._partitions is not None:
                self._partitions.close()
                await asyncio.wait({self._partitions_task}, timeout=SINK_STOP_SECONDS)
            if self.sinks is not None:
                await self.sinks.close()  # cursors are in PostgreSQL: nothing to flush
                # A step stuck on an unreachable sink is abandoned; it resumes next start.
                _, pending = await asyncio.wait({self._sinks_task}, timeout=SINK_STOP_SECONDS)
                for task in pending:
                    task.cancel()
        finally:
            await self._stack.aclose()
        log.info("audit-service stopped")


async def write_events(
    appender: Appender, sealer: Sealer | None, events: Sequence[Event]
) -> Results:
    """Commit the service's own events (read records, admin actions), their personal
    fields sealed first as every ingested event's are."""
    if sealer is not None:
        await sealer.seal(events)
    return await appender.submit([ready(e, appender.chain_id) for e in events])
