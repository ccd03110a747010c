"""The read side as one facade the servicers call: query, events, statistics, legacy
v1, verification and health. Plain domain calls; no grpc here."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from audit_svc import __version__, metrics
from audit_svc.access import Principal
from audit_svc.errors import (
    ArchiveNotConfigured,
    AuditError,
    InvalidArgument,
    NotFound,
    StorageError,
    Unavailable,
)
from audit_svc.ingest.appender import Appender
from audit_svc.integrity import checkpoint_reads as integrity
from audit_svc.integrity import proofs
from audit_svc.integrity.verify import CHECKPOINT_INVALID, VerifyResult, verify_chain
from audit_svc.model import FieldViolation, StoredEvent
from audit_svc.read import legacy, statistics
from audit_svc.read.cold import ColdTier
from audit_svc.read.disclosure import MASKED_VIEWER, Disclosure
from audit_svc.read.export import Export, Present, new_export
from audit_svc.read.live_tail import WatchFilter
from audit_svc.read.query import QueryFilters, QueryPage, QuerySpec, parse_query, run_query
from audit_svc.sinks import BadCheckpoint, Sinks, SinkState, bucket_checkpoints
from audit_svc.storage.protocols import EventReader, SinkStore, TreeStore

DB_CHECK_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One dependency's state."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What `Health` answers."""

    serving: bool
    version: str
    components: tuple[ComponentHealth, ...]
    queue_depth: int
    lag_seconds: float
    sinks: tuple[SinkState, ...] = ()


class Reader:
    """Answers every read RPC of v2 and v1 from PostgreSQL."""

    def __init__(
        self,
        events: EventReader,
        sink_state: SinkStore,
        appender: Appender,
        *,
        page_token_key: bytes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sinks: Sinks | None = None,
        checkpoint_bucket: str = "",
        tree: TreeStore | None = None,
        lock_held: Callable[[], Awaitable[bool]] | None = None,
        queue_health: Callable[[], ComponentHealth] | None = None,
        cold: ColdTier | None = None,
        disclosure: Disclosure,
    ) -> None:
        self.disclosure = disclosure
        # Archived events for Query (None: no archive configured).
        self._cold = cold
        self._sinks = sinks
        # The RabbitMQ consumer's state, when it runs; it does not decide `serving`.
        self._queue_health = queue_health
        self._tree = tree
        # Whether this replica still holds its chain's lock (None: not checked).
        self._lock_held = lock_held
        self._checkpoint_bucket = checkpoint_bucket
        self._events = events
        self._sink_state = sink_state
        self._appender = appender
        self._key = page_token_key
        self._clock = clock

    async def query(
        self,
        filters: QueryFilters,
        viewer: Principal,
        *,
        page_size: int = 0,
        limit: int = 0,
        page_token: str = "",
        include_archive: bool = False,
    ) -> QueryPage:
        """One page of events as `viewer` may see them; InvalidArgument as
        `query.parse_query` says. Archived events are included when asked, or when
        the time range starts before the hot window; asked of a service without an
        archive: ArchiveNotConfigured."""
        spec = parse_query(
            filters, key=self._key, page_size=page_size, limit=limit, page_token=page_token
        )
        if include_archive and self._cold is None:
            raise ArchiveNotConfigured(
                "this service has no archive (AUDIT_S3_ENDPOINT is not set)",
                metadata={"field": "include_archive"},
            )
        if self._cold is not None and (include_archive or self._cold.reaches(spec)):
            spec = replace(spec, include_archive=True)
        return await self._page(spec, viewer)

    def export(
        self, filters: QueryFilters, format_name: str, principal: Principal | None = None
    ) -> Export:
        """A validated export of every event matching `filters` (no page limit), in
        `format_name`; INVALID_ARGUMENT names each bad filter or the format."""
        return new_export(
            self._events, filters, format_name, self._key, self.presenter(principal),
            self.disclosure.pseudonymize,
        )  # fmt: skip

    def presenter(self, principal: Principal | None) -> Present:
        """How stored events are shown to `principal` (audit_svc.read.disclosure), for
        every exported event; no principal: masked, as to a plain reader."""
        return self.disclosure.presenter(principal or MASKED_VIEWER)

    async def search_logs(
        self, filters: QueryFilters, viewer: Principal, *, limit: int = 0, page_token: str = ""
    ) -> QueryPage:
        """The v1 search: v1 event names mapped to v2 types, then the same query."""
        spec = legacy.parse_search(filters, key=self._key, limit=limit, page_token=page_token)
        return await self._page(spec, viewer)

    async def _page(self, spec: QuerySpec, viewer: Principal) -> QueryPage:
        page = await run_query(
            self._events, self.disclosure.pseudonymize(spec), self._key, self._cold
        )
        return replace(page, events=await self.disclosure.reveal(page.events, viewer))

    async def get_event(self, event_id: str, viewer: Principal) -> StoredEvent:
        try:
            key = uuid.UUID(event_id)
        except ValueError:
            raise InvalidArgument([FieldViolation("event_id", "must be a UUID")]) from None
        found = await self._events.get_event(key)
        if found is None:
            raise NotFound(f"no event with id {event_id}", metadata={"event_id": event_id})
        (shown,) = await self.disclosure.reveal([found], viewer)
        return shown

    def watch_filter(self, where: WatchFilter) -> WatchFilter:
        """The live-tail filter matching stored events (personal filters as pseudonyms)."""
        return self.disclosure.watch_filter(where)

    async def reveal(self, events: Sequence[StoredEvent], viewer: Principal) -> list[StoredEvent]:
        """Events (of the live tail) as `viewer` may see them."""
        return await self.disclosure.reveal(events, viewer)

    async def statistics(
        self, time_range: str, start: datetime | None, end: datetime | None, viewer: Principal
    ) -> statistics.Statistics:
        now = self._clock()
        span = statistics.parse_time_range(time_range, start, end, now)
        stats = await statistics.get_statistics(self._events, span, now)
        users = await self.disclosure.reveal_users([c.key for c in stats.top_users], viewer)
        top = tuple(replace(c, key=u) for c, u in zip(stats.top_users, users, strict=True))
        return replace(stats, top_users=top)

    async def dashboard(self, time_range: str) -> legacy.Dashboard:
        return await legacy.dashboard(self._events, time_range, self._clock())

    async def verify(self, chain_id: str, from_seq: int, to_seq: int) -> VerifyResult:
        """Verify a range of a chain; this replica's own chain when `chain_id` is empty.
        With checkpoints on, the chain is also compared with the bucket's checkpoints."""
        if from_seq < 0 or to_seq < 0:
            field = "from_seq" if from_seq < 0 else "to_seq"
            raise InvalidArgument([FieldViolation(field, "must not be negative")])
        chain = self._chain(chain_id)
        marks = None
        if self._sinks is not None:
            try:
                marks = await bucket_checkpoints(
                    self._sinks.checkpoint_store, self._sinks.signer, chain, from_seq
                )
            except BadCheckpoint:  # a forged or damaged object in the bucket
                metrics.VERIFY_FAILED.inc()
                return VerifyResult(False, chain, from_seq, to_seq, 0, 0, CHECKPOINT_INVALID)
            except Exception as exc:  # S3 unreachable: say so rather than pass silently
                metrics.VERIFY_ERROR.inc()
                raise Unavailable(f"the checkpoint bucket cannot be read: {exc}") from exc
        result = await verify_chain(self._events, chain, from_seq, to_seq, checkpoints=marks)
        (metrics.VERIFY_OK if result.ok else metrics.VERIFY_FAILED).inc()
        return result

    async def list_checkpoints(
        self, chain_id: str, page_size: int, page_token: str
    ) -> integrity.CheckpointPage:
        return await integrity.list_checkpoints(
            self._sink_state, _no_nul(chain_id), page_size, page_token, self._key
        )

    def public_key(self) -> integrity.PublicKey:
        return integrity.public_key(self._sinks, self._checkpoint_bucket)

    def _chain(self, chain_id: str) -> str:
        """The chain a read names; this replica's own when empty."""
        return _no_nul(chain_id) or self._appender.chain_id

    def _merkle(self) -> TreeStore:
        if self._tree is None:
            raise NotFound(
                "the Merkle tree is off on this replica (AUDIT_MERKLE_TREE=false)",
                metadata={"setting": "AUDIT_MERKLE_TREE"},
            )
        return self._tree

    async def checkpoint_note(self, chain_id: str) -> str:
        """The chain's newest signed checkpoint (this replica's chain when empty)."""
        chain = self._chain(chain_id)
        return await proofs.latest_checkpoint(self._merkle(), chain)

    async def inclusion_proof(
        self, chain_id: str, event_id: str, seq: int, tree_size: int
    ) -> proofs.InclusionProof:
        chain = self._chain(chain_id)
        return await proofs.inclusion_proof(
            self._merkle(), chain, event_id=event_id, seq=seq, tree_size=tree_size
        )

    async def consistency_proof(
        self, chain_id: str, old_size: int, new_size: int
    ) -> proofs.ConsistencyProof:
        chain = self._chain(chain_id)
        return await proofs.consistency_proof(self._merkle(), chain, old_size, new_size)

    async def health(self) -> HealthReport:
        """What the REST health and grpc.health both say: serving only while this
        replica can commit (its database answers and it holds its chain's lock)."""
        database = await self._check_database()
        lock = await self._check_lock() if database.ok else ComponentHealth("chain_lock", False)
        sinks: tuple[SinkState, ...] = ()
        if self._sinks is not None and database.ok:
            try:
                async with asyncio.timeout(DB_CHECK_TIMEOUT):
                    sinks = tuple(await self._sinks.states())
            except (TimeoutError, AuditError, StorageError):
                sinks = ()
        return HealthReport(
            serving=database.ok and lock.ok,
            version=__version__,
            components=(
                database,
                ComponentHealth("appender", True, self._appender.chain_id),
                lock,
                *((self._queue_health(),) if self._queue_health is not None else ()),
            ),
            queue_depth=self._appender.queue_depth,
            lag_seconds=self._appender.lag_seconds,
            sinks=sinks,
        )

    async def _check_lock(self) -> ComponentHealth:
        if self._lock_held is None:
            return ComponentHealth("chain_lock", True, "not checked")
        try:
            async with asyncio.timeout(DB_CHECK_TIMEOUT):
                held = await self._lock_held()
        except TimeoutError:
            held = False
        detail = self._appender.chain_id if held else "the session holding the lock was lost"
        return ComponentHealth("chain_lock", held, detail)

    async def _check_database(self) -> ComponentHealth:
        try:
            async with asyncio.timeout(DB_CHECK_TIMEOUT):
                await self._events.ping()
        except TimeoutError:
            return ComponentHealth("postgres", False, f"no answer within {DB_CHECK_TIMEOUT} s")
        except (AuditError, StorageError) as exc:
            return ComponentHealth("postgres", False, str(exc))
        except Exception as exc:  # a probe: a driver error of a new kind is "not ok" too
            return ComponentHealth("postgres", False, repr(exc))
        return ComponentHealth("postgres", True)


def _no_nul(chain_id: str) -> str:
    """A chain id PostgreSQL can take as text (it refuses NUL): found by tests/fuzz."""
    if "\x00" in chain_id:
        raise InvalidArgument([FieldViolation("chain_id", "contains a NUL character")])
    return chain_id
