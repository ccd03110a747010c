"""Wiring and lifecycle of the user-service: pool, Redis, keys, audit client, gRPC server."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2

from audit_client import AuditClient, ClientSettings
from meshkit.metrics import MetricsEndpoint, MetricsInterceptor
from meshkit.rpc import ErrorInterceptor
from meshkit.server import ServiceApp, new_server
from meshkit.tls import server_credentials, warn_plaintext
from user.v1 import user_service_pb2 as pb
from user.v1 import user_service_pb2_grpc as pb_grpc
from user_svc import __version__
from user_svc.errors import DOMAIN
from user_svc.keys import load_keys, write_public_key
from user_svc.service import Services, build_services
from user_svc.servicer import UserServicer
from user_svc.settings import Settings
from user_svc.storage.pg_store import PgUserStore
from user_svc.storage.postgres import create_pool
from user_svc.tokens import signing_key

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["UserService"].full_name
REDIS_TIMEOUT_SECONDS = 1.0
HEALTH_TIMEOUT_SECONDS = 2.0
# Ended sessions are kept this long (for investigations), then deleted.
KEEP_ENDED_SESSIONS = timedelta(days=30)


def audit_client_settings(settings: Settings) -> ClientSettings:
    """The audit client's settings from the user-service's own (USER_AUDIT_*)."""
    files = settings.identity_files
    return ClientSettings(
        target=settings.audit_target,
        tls=settings.audit_tls,
        tls_ca_file=files.ca_file,
        tls_cert_file=files.cert_file,
        tls_key_file=files.key_file,
        redis_url=settings.spool_redis_url,
        spool_key=settings.audit_spool_key,
        failure_policy=settings.audit_failure_policy,
    )


async def open_redis(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )


class UserApp(ServiceApp):
    """A running user-service. `async with UserApp(settings) as app:` serves on
    `app.port` until the block ends, then shuts down gracefully: health NOT_SERVING,
    in-flight calls finish, the audit client flushes, connections close."""

    def __init__(self, settings: Settings, audit_settings: ClientSettings | None = None) -> None:
        self.settings = settings
        self.audit_settings = audit_settings or audit_client_settings(settings)
        self.port = 0
        self.metrics_port = 0
        self.audit: AuditClient | None = None
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        super().__init__()
        self._janitor: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        s = self.settings
        pool: asyncpg.Pool = await create_pool(
            s.database_url, min_size=s.pool_min_size, max_size=s.pool_max_size
        )
        self._stack.push_async_callback(pool.close)
        self.pool = pool
        self.store = store = PgUserStore(pool)
        redis = await open_redis(s.redis_url)
        self._stack.push_async_callback(redis.aclose)
        keys = await load_keys(store, s)
        if s.jwt_public_key_file:
            write_public_key(Path(s.jwt_public_key_file), signing_key(keys.jwt_signing))
        if s.audit_enabled:
            self.audit = AuditClient(self.audit_settings)
            await self.audit.start()
            self._stack.push_async_callback(self.audit.aclose)
        else:
            log.warning("auditing is OFF (USER_AUDIT_ENABLED=false): no action is recorded")
        self.services: Services = build_services(s, store, redis, keys, self.audit)

        files = s.tls_files
        if files is None:
            warn_plaintext("the user-service", "USER_TLS")
        server, self.port = new_server(
            [MetricsInterceptor(), ErrorInterceptor(DOMAIN)],
            (SERVICE_NAME,),
            self.health,
            s.grpc_listen,
            "USER_GRPC_LISTEN",
            server_credentials(files) if files else None,
        )
        sv = self.services
        servicer = UserServicer(
            s, sv.accounts, sv.auth, sv.passwords, sv.mfa, sv.roles, self.check_health, __version__
        )
        pb_grpc.add_UserServiceServicer_to_server(servicer, server)
        self.server = server
        if s.metrics_listen:
            endpoint = MetricsEndpoint(s.metrics_listen, "USER_METRICS_LISTEN")
            self._stack.callback(endpoint.close)
            self.metrics_port = endpoint.port

        self._janitor = await self.start_task(self._clean_up(), name="janitor")
        await server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "user-service serving on port %d (auditing %s)",
            self.port,
            f"to {s.audit_target}" if self.audit else "off",
        )

    async def check_health(self) -> bool:
        """True when the database answers (Redis is optional: limits fail open)."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                return await self.store.ping()
        except Exception:
            log.warning("health check: database does not answer", exc_info=True)
            return False

    async def _clean_up(self) -> None:
        """Delete expired tokens and long-ended sessions, now and then."""
        while True:
            await asyncio.sleep(self.settings.cleanup_interval_seconds)
            try:
                async with self.store.transaction() as db:
                    removed = await db.clean_up(datetime.now(UTC) - KEEP_ENDED_SESSIONS)
                log.info("clean-up removed %d expired tokens and ended sessions", removed)
            except Exception:
                log.warning("clean-up failed; trying again later", exc_info=True)

    async def _stop(self) -> None:
        """Health NOT_SERVING, drain calls, stop workers, flush audit events, close."""
        try:
            if self.server is not None:
                await self.health.enter_graceful_shutdown()
                await self.server.stop(self.settings.shutdown_grace_seconds)
            if self._janitor is not None:
                self._janitor.cancel()
            if self.audit is not None:
                await self.audit.flush(timeout=self.settings.shutdown_grace_seconds)
        except TimeoutError:
            log.warning("audit events not all delivered at shutdown; the client spools them")
        finally:
            await self._stack.aclose()
        log.info("user-service stopped")
