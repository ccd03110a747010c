"""What the domain asks of storage, as small Protocols, and the plain records they
pass. The domain (ingest/, read/, integrity/, sinks/) is written against these; the
PostgreSQL adapters (`storage.postgres.PgEventStore`, `PgEventReader`, `PgSinkState`)
implement them, and translate driver errors into the domain's (`DuplicateEventId`,
`Unavailable`, `StorageError`) in one context manager (`postgres.map_db_errors`).

No driver and no SQL here, so importing this module never imports asyncpg.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from audit_svc.integrity.tiles import TileAppends
from audit_svc.model import Outcome, Ready, Receipt, StoredEvent
from audit_svc.read.filters import QuerySpec
from meshkit.merkle import Node

Head = tuple[int, bytes]  # (seq, hash) of the newest event of a chain


@dataclass(slots=True)
class Prepared:
    """A group made ready to write: rows hashed onto the head (`start`), results per
    event, and where the head will be once the group is committed (`end`)."""

    start: Head
    end: Head
    rows: list[bytes]  # the new rows, encoded for the store's bulk write
    results: list[tuple[Outcome, Receipt]]
    # The oldest and newest event_time of the new rows (None when there are none).
    times: tuple[datetime, datetime] | None = None
    # The Merkle leaf hashes of the new rows (None: the tree is off), and what they
    # add to the tiles when the tree at `start` was known (else `write` works it out).
    leaves: list[bytes] | None = None
    tiles: TileAppends | None = None


@dataclass(slots=True)
class EventCounts:
    """Exact event counts over a time range, per dimension and per time bucket."""

    by_event_type: dict[str, int] = field(default_factory=dict)
    by_result: dict[str, int] = field(default_factory=dict)
    by_service: dict[str, int] = field(default_factory=dict)
    buckets: dict[datetime, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RangeCounts:
    """What one statistics answer reads, from one snapshot: the event counts, the top
    users (most events first) and how many distinct users had any event."""

    events: EventCounts
    top_users: list[tuple[str, int]]
    unique_users: int


@dataclass(frozen=True, slots=True)
class Lag:
    """How far a sink is behind its chain's head."""

    events: int
    seconds: float


@dataclass(frozen=True, slots=True)
class WindowCount:
    """Events of one window and one tag combination, as of some seq."""

    window: datetime
    event_type: str
    service: str
    result: str
    data_classification: str
    count: int


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """A signed checkpoint as PostgreSQL keeps it."""

    chain_id: str
    seq: int
    hash: bytes
    checkpoint_time: datetime
    key_id: str
    signature: bytes
    object_key: str
    # The C2SP form (meshkit.note): the tree root it signs at size `seq`,
    # the signed note, and the witnesses' cosignature lines; empty for older ones.
    root_hash: bytes = b""
    note: str = ""
    cosignatures: str = ""


@dataclass(frozen=True, slots=True)
class ArchivedRange:
    """A seq range of a chain that lives in the archive bucket."""

    chain_id: str
    first_seq: int
    last_seq: int
    event_count: int
    prev_hash: bytes
    last_hash: bytes
    sha256: bytes
    object_key: str
    version_id: str
    # The same events as Parquet (the cold tier reads it), and their event times;
    # empty / None for ranges archived before Parquet was written.
    parquet_key: str = ""
    parquet_version_id: str = ""
    parquet_sha256: bytes = b""
    min_event_time: datetime | None = None
    max_event_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A batch a forwarder gave up on: its seq range, event ids, and the last failure."""

    sink: str
    chain_id: str
    first_seq: int
    last_seq: int
    event_ids: tuple[uuid.UUID, ...]
    attempts: int
    last_status: int  # an HTTP status; 0 when there was no answer
    last_error: str


class EventStore(Protocol):
    """The write path of one chain: its head, the receipts of ids already stored, and
    group commits (see `audit_svc.ingest.appender`)."""

    async def read_head(self, chain_id: str) -> Head:
        """The chain's head as committed."""
        ...

    async def stored_receipts(self, events: Sequence[Ready]) -> dict[str, Receipt]:
        """The receipts of those of `events` whose ids are already stored (any chain),
        by id (its standard text)."""
        ...

    async def events_by_id(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredEvent]:
        """The stored events with these ids (any chain): who wrote them and what."""
        ...

    def prepare(
        self, chain_id: str, head: Head, events: Sequence[Ready], stored: dict[str, Receipt]
    ) -> Prepared:
        """Seqs, hashes and rows of `events` from `head` on; no I/O."""
        ...

    async def write(self, chain_id: str, prepared: Prepared) -> None:
        """Commit a prepared group if the head is still where it starts (else
        `HeadMoved`); `DuplicateEventId` if one of its ids was stored meanwhile."""
        ...

    async def append(self, chain_id: str, events: Sequence[Ready]) -> list[tuple[Outcome, Receipt]]:
        """Lock the head, look the ids up, write: the one-step form of the above."""
        ...


class EventReader(Protocol):
    """The read path: pages, single events, counts, and chain ranges."""

    async def ping(self) -> None:
        """Return when the database answers; `Unavailable`/`StorageError` when not."""
        ...

    async def query_events(self, spec: QuerySpec) -> tuple[list[StoredEvent], bool]:
        """One page matching `spec`, newest first, and whether more follow."""
        ...

    async def get_event(self, event_id: uuid.UUID) -> StoredEvent | None:
        """The event with this id, or None."""
        ...

    def export_events(
        self, spec: QuerySpec, batch: int = 2000
    ) -> AsyncGenerator[list[StoredEvent], None]:
        """Every event matching `spec`'s filters (no page limit), oldest first, `batch`
        at a time, from one snapshot."""
        ...

    async def count(
        self,
        start: datetime,
        end: datetime,
        bucket_width: timedelta,
        top_users: int,
        now: datetime,
    ) -> RangeCounts:
        """Exact counts of start <= event_time < end, read in one snapshot; `now`
        only changes how they are read."""
        ...

    async def chain_ids(self) -> list[str]:
        """Every chain's id, in order."""
        ...

    async def chain_state(self, chain_id: str) -> Head | None:
        """The chain's recorded head; None for an unknown chain."""
        ...

    async def chain_tail(self, chain_id: str) -> tuple[int, int]:
        """The recorded head seq and the highest stored seq, in one snapshot."""
        ...

    def chain_range(
        self, chain_id: str, from_seq: int, to_seq: int, batch: int = 5000
    ) -> AsyncGenerator[list[StoredEvent], None]:
        """The stored events from_seq..to_seq in seq order, `batch` at a time."""
        ...

    async def archive_boundary(self, chain_id: str) -> Head:
        """The last archived seq of the chain and its hash; (0, b'') when none."""
        ...


@dataclass(frozen=True)
class Partition:
    """One partition of audit_events: its name and its event_time bounds (None for
    the default partition, which holds the times no daily partition covers)."""

    name: str
    lower: datetime | None
    upper: datetime | None


class SinkStore(Protocol):
    """What the sinks keep and read: cursors, lag, window counts, checkpoints, and
    the archived ranges."""

    async def cursor(self, sink: str, chain_id: str) -> int: ...
    async def set_cursor(self, sink: str, chain_id: str, last_seq: int) -> None: ...
    async def lag(self, sink: str, chain_id: str) -> Lag: ...
    async def lag_after(self, chain_id: str, seq: int) -> Lag: ...
    async def head_seq(self, chain_id: str) -> int: ...
    async def chain_state(self, chain_id: str) -> Head | None: ...
    async def window_counts(
        self, chain_id: str, after: int, upto: int, width: timedelta
    ) -> list[WindowCount]: ...
    async def last_checkpoint(self, chain_id: str) -> CheckpointRow | None: ...
    async def add_checkpoint(self, cp: CheckpointRow) -> None: ...
    async def list_checkpoints(
        self, chain_id: str, after: tuple[str, int], limit: int
    ) -> list[CheckpointRow]: ...
    async def archived_ranges(self, chain_id: str) -> list[ArchivedRange]: ...
    async def archived_in(
        self, start: datetime | None, end: datetime | None, before: datetime | None
    ) -> list[ArchivedRange]:
        """Every chain's ranges with Parquet that may hold events with start <=
        event_time < end and event_time <= before (None: unbounded), the newest
        `max_event_time` first."""
        ...

    async def record_table(self, r: ArchivedRange) -> None:
        """Record the Parquet object (key, version, SHA-256, event times) of a range
        archived without one."""
        ...

    async def archive_boundary(self, chain_id: str) -> Head: ...
    async def archive_candidates(
        self, chain_id: str, after: int, cutoff: datetime, limit: int
    ) -> list[StoredEvent]: ...
    async def record_archived(self, r: ArchivedRange) -> int: ...
    async def expired_partitions(self, before: datetime) -> list[Partition]: ...
    async def partition_end(
        self, name: str, chain_id: str, before: datetime
    ) -> tuple[int, int, bytes] | None: ...
    async def retire_partition(self, name: str, before: datetime) -> int: ...
    async def drop_restored(self, chain_id: str, through: int, cutoff: datetime) -> int: ...
    async def restore_events(self, events: Sequence[StoredEvent]) -> int: ...
    async def events_after(self, chain_id: str, after: int, limit: int) -> list[StoredEvent]: ...
    async def dead_letter(self, d: DeadLetter) -> None: ...


class TableCodec(Protocol):
    """The archive's Parquet form of a range (`storage.parquet.PARQUET`)."""

    def encode(self, events: Sequence[StoredEvent]) -> bytes:
        """The object's bytes."""
        ...

    def decode(self, data: bytes) -> list[StoredEvent]:
        """Its events, in seq order."""
        ...


class ArchiveObjects(Protocol):
    """The archived Parquet objects, as the cold tier reads them."""

    async def scan(
        self, ranges: Sequence[ArchivedRange], spec: QuerySpec, limit: int
    ) -> list[StoredEvent]:
        """The newest `limit` events of these ranges matching `spec` (filters and
        keyset position), newest first."""
        ...


class TreeStore(Protocol):
    """A chain's Merkle tree as stored (audit_svc.integrity.tiles) and its C2SP
    checkpoints: what proofs, checkpoints and witnesses read."""

    async def head_seq(self, chain_id: str) -> int | None:
        """The committed tree size (the head's seq); None for an unknown chain."""
        ...

    async def event_seq(self, chain_id: str, event_id: uuid.UUID) -> int | None:
        """The seq of an event in the chain, or None."""
        ...

    async def node_hashes(self, chain_id: str, nodes: set[Node]) -> dict[Node, bytes]:
        """The hashes of complete nodes (tiles.MissingTile if one is not stored)."""
        ...

    async def root_at(self, chain_id: str, size: int) -> bytes:
        """The tree's root at `size` leaves."""
        ...

    async def checkpoint_at(self, chain_id: str, size: int) -> CheckpointRow | None: ...
    async def last_note(self, chain_id: str) -> CheckpointRow | None: ...
    async def add_cosignatures(self, chain_id: str, size: int, lines: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SubjectKeyRow:
    """A subject's stored key: wrapped, with the subject's clear id sealed under it;
    both None once erased."""

    subject: str
    wrapped_key: bytes | None
    sealed_subject: str | None


@dataclass(frozen=True, slots=True)
class LegalHold:
    """A hold on a subject's events, or on events of a time range (either bound may be
    open); active until lifted."""

    hold_id: str
    subject: str | None
    start_time: datetime | None
    end_time: datetime | None
    reason: str
    placed_by: str
    place_time: datetime
    lifted_by: str | None = None
    lift_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class AdminAction:
    """An audited admin action waiting to be recorded as an event on a chain."""

    event_id: uuid.UUID
    event_type: str
    action: str
    details: dict[str, Any]
    requested_by: str
    request_time: datetime


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure destroyed: the subject's key, and how many stored events (in
    PostgreSQL; archived ones too, by `archived_events`) it made unreadable."""

    subject: str
    events: int
    archived_events: int
    erase_time: datetime
    already: bool = False


class PrivacyStore(Protocol):
    """Subject keys, legal holds and the admin-action outbox (storage.privacy_store)."""

    async def subject_keys(self, subjects: Sequence[str]) -> dict[str, SubjectKeyRow]:
        """The stored keys of those of `subjects` that have one (erased included)."""
        ...

    async def add_subject_keys(self, rows: Sequence[SubjectKeyRow]) -> None:
        """Store new keys; a subject that already has one keeps it."""
        ...

    async def erase_subject(self, subject: str, action: AdminAction) -> Erased:
        """Destroy the subject's key and queue `action`, in one transaction, unless an
        active hold covers the subject (`HeldError`); LookupError if it has no key."""
        ...

    async def place_hold(self, hold: LegalHold, action: AdminAction) -> None: ...

    async def lift_hold(self, hold_id: str, by: str, action: AdminAction) -> LegalHold:
        """Lift an active hold (LookupError if there is none of that id)."""
        ...

    async def holds(self, *, active_only: bool = True) -> list[LegalHold]: ...

    async def holds_covering(
        self, subjects: Sequence[str], start: datetime | None, end: datetime | None
    ) -> list[LegalHold]:
        """Active holds on any of `subjects` or overlapping [start, end]."""
        ...

    async def pending_actions(self, limit: int) -> list[AdminAction]: ...

    async def mark_recorded(self, event_ids: Sequence[uuid.UUID]) -> None: ...
