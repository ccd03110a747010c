"""Archive: events older than the hot retention move to the archive bucket as gzip
NDJSON objects, one per chain and seq range, each with a manifest; `restore` brings a
range back for querying; `verify_archive` recomputes the chain over the objects.

Safety: a range is recorded as archived only after (1) the rows' own chain was
recomputed and continues from the last archived hash, (2) the object and its manifest
were written to the object-locked bucket, (3) the object was read back (by its version
id) and its SHA-256, line count and hashes match, and only if exactly its count of rows
is stored. Rows leave PostgreSQL by partition (retention by partition, not DELETE):
once a day's partition has ended before the retention cutoff, the archiver seals it
(a signed checkpoint at the chain's last seq in it, unless one already covers it),
reads back the objects of the chain's seqs in it and checks their SHA-256 again, and
asks the database's one door (`audit_events_retire_partition`) to detach and drop it;
the door refuses while any chain's rows in it are not archived or a legal hold covers
it. S3 down at any step raises before anything is removed; the runner retries.
Objects are deterministic (gzip mtime 0), so a retry after a crash rewrites the same
bytes as a new version of the same key.

Object `events/<chain>/<first seq>-<last seq>.ndjson.gz` (seqs 20 digits), manifest
`<same>.manifest.json`: chain_id, first_seq, last_seq, count, prev_hash (the hash
before first_seq), first_hash, last_hash (hex), sha256 (of the object), object_key.

The same events are also written as Parquet, `<same>.parquet` (`storage.parquet`),
for the cold tier that `Query` reads; the manifest adds parquet_key, parquet_sha256,
min_event_time and max_event_time. It is checked like the NDJSON object before any
row is deleted: read back by version id, its SHA-256, and the chain recomputed over
its own rows, which must give the same hashes.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import ipaddress
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from audit_svc.errors import PartitionKept
from audit_svc.formats.flat import event_doc
from audit_svc.integrity.chain import GENESIS, canonical_bytes, link
from audit_svc.integrity.verify import (
    CHECKPOINT_MISMATCH,
    HASH_MISMATCH,
    PREV_HASH_MISMATCH,
    SEQ_GAP,
    VerifyResult,
)
from audit_svc.model import Event, Receipt, StoredEvent
from audit_svc.sinks.objects import ObjectStore
from audit_svc.storage.protocols import ArchivedRange, SinkStore, TableCodec

log = logging.getLogger(__name__)

PREFIX = "events/"
MANIFEST = ".manifest.json"
ARCHIVE_SHA256_MISMATCH = "ARCHIVE_SHA256_MISMATCH"
ARCHIVE_BOUNDARY_MISMATCH = "ARCHIVE_BOUNDARY_MISMATCH"
ARCHIVE_PARQUET_MISMATCH = "ARCHIVE_PARQUET_MISMATCH"
PARQUET_TYPE = "application/vnd.apache.parquet"


class ArchiveError(RuntimeError):
    """Rows or an object failed a check; nothing was deleted."""


# Sign a checkpoint of the chain at (seq, hash) unless one at or after seq exists.
Seal = Callable[[int, bytes], Awaitable[None]]


def object_key(chain_id: str, first: int, last: int) -> str:
    return f"{PREFIX}{chain_id}/{first:020d}-{last:020d}.ndjson.gz"


def parquet_key(chain_id: str, first: int, last: int) -> str:
    return f"{PREFIX}{chain_id}/{first:020d}-{last:020d}.parquet"


def encode_events(events: Sequence[StoredEvent]) -> bytes:
    """Gzip NDJSON, one event per line, byte-for-byte reproducible."""
    lines = (json.dumps(_archive_doc(s), sort_keys=True, ensure_ascii=False) for s in events)
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


def decode_events(data: bytes) -> list[StoredEvent]:
    return [_stored(json.loads(line)) for line in gzip.decompress(data).splitlines() if line]


def _archive_doc(s: StoredEvent) -> dict[str, Any]:
    """`event_doc`, and the pseudonyms (audit_svc.privacy), so a restored range is
    found by Query again."""
    e = s.event
    return {
        **event_doc(s),
        "username_token": None if e.username_token is None else e.username_token.hex(),
        "ip_token": None if e.ip_token is None else e.ip_token.hex(),
    }


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str | None:
    """An archived address: a sealed one (audit_svc.privacy) stays text."""
    if text is None:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return text


def _hex(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def _stored(d: dict[str, Any]) -> StoredEvent:
    event = Event(
        event_id=uuid.UUID(d["event_id"]),
        event_type=d["event_type"],
        user_id=d["user_id"],
        username=d["username"],
        ip_address=_address(d["ip_address"]),
        user_agent=d["user_agent"],
        service=d["service"],
        action=d["action"],
        result=d["result"],
        details=d["details"],
        compliance_tags=tuple(d["compliance_tags"]),
        data_classification=d["data_classification"],
        event_time=datetime.fromisoformat(d["event_time"]),
        receive_time=datetime.fromisoformat(d["receive_time"]),
        principal=d.get("principal", ""),  # objects archived before it was recorded
        username_token=_hex(d.get("username_token")),
        ip_token=_hex(d.get("ip_token")),
    )
    receipt = Receipt(d["chain_id"], int(d["seq"]), bytes.fromhex(d["hash"]),
                      bytes.fromhex(d["prev_hash"]))  # fmt: skip
    return StoredEvent(event, receipt)


def check_links(events: Sequence[StoredEvent], prev: bytes, first_seq: int) -> tuple[int, str]:
    """(0, "") when the events form the chain from `prev` at `first_seq`; else the first
    bad seq and why."""
    expected = first_seq
    for s in events:
        r = s.receipt
        if r.seq != expected:
            return expected, SEQ_GAP
        if r.prev_hash != prev:
            return expected, PREV_HASH_MISMATCH
        if link(prev, canonical_bytes(s.event, r.chain_id, r.seq)) != r.hash:
            return expected, HASH_MISMATCH
        prev, expected = r.hash, expected + 1
    return 0, ""


class Archiver:
    """Archives one chain's old events; `step` archives one object's worth."""

    NAME = "archive"

    def __init__(
        self,
        state: SinkStore,
        chain_id: str,
        store: ObjectStore,
        *,
        retention: timedelta,
        object_events: int = 10_000,
        seal: Seal | None = None,
        table: TableCodec | None = None,
        retire: bool = True,
    ) -> None:
        # The Parquet form written next to each NDJSON object (None: NDJSON only).
        self._table = table
        self._state = state
        self.chain_id = chain_id
        self._store = store
        self._retention = retention
        self._max = object_events
        self._seal = seal  # signs a checkpoint at a seq unless one covers it already
        self._retire = retire  # drop expired partitions once archived (and sealed)
        self.retired: list[tuple[str, int]] = []  # (partition, events) dropped so far

    async def step(self) -> bool:
        """Archive the next range; True when more old events are waiting. Once none
        is, retire the partitions that ended before the cutoff."""
        cutoff = datetime.now(UTC) - self._retention
        if await self.add_table() is not None or await self.archive_next(cutoff) is not None:
            return True
        await self.retire_expired(cutoff)
        return False

    async def archive_all(self, cutoff: datetime | None = None) -> list[ArchivedRange]:
        """Archive every event received before `cutoff` (now - retention by default),
        then retire the partitions that ended before it."""
        cutoff = cutoff or datetime.now(UTC) - self._retention
        while await self.add_table() is not None:
            pass
        done = []
        while (r := await self.archive_next(cutoff)) is not None:
            done.append(r)
        await self.retire_expired(cutoff)
        return done

    async def retire_expired(self, before: datetime) -> list[tuple[str, int]]:
        """Seal, re-check and drop each partition that ended at or before `before`
        and whose rows of this chain are archived; a partition the door keeps (another
        chain's rows not archived yet, a legal hold) stays for a later run."""
        done: list[tuple[str, int]] = []
        if not self._retire:
            return done
        for part in await self._state.expired_partitions(before):
            end = await self._state.partition_end(part.name, self.chain_id, before)
            if end is not None:
                first, last, digest = end
                through, _ = await self._state.archive_boundary(self.chain_id)
                if last > through:
                    continue  # this chain's rows in it are not all archived yet
                if self._seal is not None:
                    await self._seal(last, digest)
                await self._recheck_objects(first, last)
            try:
                removed = await self._state.retire_partition(part.name, before)
            except PartitionKept as exc:
                log.info("partition kept: %s", exc)
                continue
            log.info("retired partition %s (%d events)", part.name, removed)
            done.append((part.name, removed))
        self.retired += done
        return done

    async def _recheck_objects(self, first: int, last: int) -> None:
        """Read back the objects holding seqs first..last of the chain (by version id),
        NDJSON and Parquet, and compare their SHA-256 with the archive's record;
        ArchiveError if one differs, so nothing is dropped."""
        for r in await self._state.archived_ranges(self.chain_id):
            if r.last_seq < first or r.first_seq > last:
                continue
            data = await self._store.get(r.object_key, r.version_id)
            if hashlib.sha256(data).digest() != r.sha256:
                raise ArchiveError(f"{r.object_key}: SHA-256 differs from the record; kept")
            if r.parquet_key:  # the cold tier's copy must hold too
                table = await self._store.get(r.parquet_key, r.parquet_version_id)
                if hashlib.sha256(table).digest() != r.parquet_sha256:
                    raise ArchiveError(f"{r.parquet_key}: SHA-256 differs from the record; kept")

    async def add_table(self) -> ArchivedRange | None:
        """Write the Parquet form of the oldest range archived without one (before the
        cold tier existed), from its NDJSON object checked against the record, so
        `Query` reaches it too; a new manifest version names it. None when none lacks
        it (or no codec is set)."""
        if self._table is None:
            return None
        r = next((r for r in await self._state.archived_ranges(self.chain_id)
                  if not r.parquet_key), None)  # fmt: skip
        if r is None:
            return None
        data = await self._store.get(r.object_key, r.version_id)
        events = await asyncio.to_thread(decode_events, data)
        bad, why = check_links(events, r.prev_hash, r.first_seq)
        if (
            hashlib.sha256(data).digest() != r.sha256
            or why
            or events[-1].receipt.hash != r.last_hash
        ):
            raise ArchiveError(f"{r.object_key}: does not match its record ({why or 'digest'}"
                               f" at seq {bad}); no Parquet written")  # fmt: skip
        table = await asyncio.to_thread(self._table.encode, events)
        key, digest = parquet_key(self.chain_id, r.first_seq, r.last_seq), _sha(table)
        version = (await self._store.put(key, table, PARQUET_TYPE)).version_id
        await self._check_table(key, version, digest, events)
        times = [s.event.event_time for s in events]
        done = replace(r, parquet_key=key, parquet_version_id=version, parquet_sha256=digest,
                       min_event_time=min(times), max_event_time=max(times))  # fmt: skip
        manifest_key = r.object_key.removesuffix(".ndjson.gz") + MANIFEST
        manifest = json.loads(await self._store.get(manifest_key))
        manifest |= {"parquet_key": key, "parquet_sha256": digest.hex(),
                     "min_event_time": _time_text(min(times)),
                     "max_event_time": _time_text(max(times))}  # fmt: skip
        await self._store.put(
            manifest_key, json.dumps(manifest, sort_keys=True, indent=1).encode(),
            "application/json",
        )  # fmt: skip
        await self._state.record_table(done)
        log.info("archive %s seq %d..%d: Parquet added (%s)", self.chain_id, r.first_seq,
                 r.last_seq, key)  # fmt: skip
        return done

    async def archive_next(self, cutoff: datetime) -> ArchivedRange | None:
        through, last_hash = await self._state.archive_boundary(self.chain_id)
        events = await self._state.archive_candidates(self.chain_id, through, cutoff, self._max)
        if not events:
            return None
        first, last = events[0].receipt, events[-1].receipt
        prev = last_hash if through else GENESIS
        if first.seq == 1 or through:
            bad, why = check_links(events, prev, through + 1)
        else:  # rows before this one were never archived nor stored: trust the start
            bad, why = check_links(events, first.prev_hash, first.seq)
        if why:
            raise ArchiveError(f"chain {self.chain_id} seq {bad}: {why}; not archived")
        # Encoding and checking take seconds of CPU per object: off the event loop.
        body = await asyncio.to_thread(encode_events, events)
        digest = hashlib.sha256(body).digest()
        key = object_key(self.chain_id, first.seq, last.seq)
        table = b"" if self._table is None else await asyncio.to_thread(self._table.encode, events)
        table_digest = hashlib.sha256(table).digest() if table else b""
        table_key = parquet_key(self.chain_id, first.seq, last.seq) if table else ""
        times = [s.event.event_time for s in events]
        manifest = {
            "chain_id": self.chain_id,
            "first_seq": first.seq,
            "last_seq": last.seq,
            "count": len(events),
            "prev_hash": first.prev_hash.hex(),
            "first_hash": first.hash.hex(),
            "last_hash": last.hash.hex(),
            "sha256": digest.hex(),
            "object_key": key,
            "min_event_time": _time_text(min(times)),
            "max_event_time": _time_text(max(times)),
        }
        if table:
            manifest |= {"parquet_key": table_key, "parquet_sha256": table_digest.hex()}
        stored = await self._store.put(key, body, "application/gzip")
        table_version = ""
        if table:
            table_version = (await self._store.put(table_key, table, PARQUET_TYPE)).version_id
        await self._store.put(
            key.removesuffix(".ndjson.gz") + MANIFEST,
            json.dumps(manifest, sort_keys=True, indent=1).encode(),
            "application/json",
        )
        back = await self._store.get(key, stored.version_id)
        if hashlib.sha256(back).digest() != digest:
            raise ArchiveError(f"{key}: read back with another SHA-256; not deleted")
        again = decode_events(back)
        if [s.receipt.hash for s in again] != [s.receipt.hash for s in events]:
            raise ArchiveError(f"{key}: read back with other events; not deleted")
        if table:
            await self._check_table(table_key, table_version, table_digest, events)
        record = ArchivedRange(
            self.chain_id, first.seq, last.seq, len(events), first.prev_hash, last.hash,
            digest, key, stored.version_id, table_key, table_version, table_digest,
            min(times), max(times),
        )  # fmt: skip
        await self._state.record_archived(record)
        log.info("archived %s seq %d..%d to %s", self.chain_id, first.seq, last.seq, key)
        return record

    async def _check_table(
        self, key: str, version_id: str, digest: bytes, events: Sequence[StoredEvent]
    ) -> None:
        """The Parquet object as read back holds exactly these events: its SHA-256,
        and the chain recomputed over its own rows gives their hashes."""
        back = await self._store.get(key, version_id)
        if hashlib.sha256(back).digest() != digest:
            raise ArchiveError(f"{key}: read back with another SHA-256; not deleted")
        first = events[0].receipt
        assert self._table is not None
        rows = await asyncio.to_thread(self._table.decode, back)
        bad, why = await asyncio.to_thread(check_links, rows, first.prev_hash, first.seq)
        if why or [s.receipt.hash for s in rows] != [s.receipt.hash for s in events]:
            raise ArchiveError(f"{key}: read back with other events ({why or 'count'} at "
                               f"seq {bad}); not deleted")  # fmt: skip


async def restore(
    state: SinkStore, store: ObjectStore, chain_id: str, from_seq: int, to_seq: int
) -> int:
    """Put the archived events of from_seq..to_seq (0: the last archived) back into
    PostgreSQL for querying, after checking each object's SHA-256 and chain. Returns
    the number of rows inserted."""
    ranges = await state.archived_ranges(chain_id)
    last = to_seq or (ranges[-1].last_seq if ranges else 0)
    inserted = 0
    for r in ranges:
        if r.last_seq < from_seq or r.first_seq > last:
            continue
        data = await store.get(r.object_key, r.version_id)
        if hashlib.sha256(data).digest() != r.sha256:
            raise ArchiveError(f"{r.object_key}: SHA-256 differs from the archive record")
        events = decode_events(data)
        bad, why = check_links(events, r.prev_hash, r.first_seq)
        if why or not events or events[-1].receipt.hash != r.last_hash:
            raise ArchiveError(f"{r.object_key}: chain broken at seq {bad} ({why or 'end'})")
        wanted = [s for s in events if from_seq <= s.receipt.seq <= last]
        inserted += await state.restore_events(wanted)
    return inserted


async def release_restored(state: SinkStore, chain_id: str) -> int:
    """Delete restored rows again (they are safe in the archive); returns how many."""
    through, _ = await state.archive_boundary(chain_id)
    return await state.drop_restored(chain_id, through, datetime.now(UTC))


async def verify_archive(
    store: ObjectStore,
    chain_id: str,
    checkpoints: Mapping[int, bytes] | None = None,
    table: TableCodec | None = None,
) -> tuple[VerifyResult, bytes]:
    """Recompute the chain over the bucket's archived objects from seq 1, checking each
    object's SHA-256 against its manifest, and compare with the checkpoints; with
    `table`, each Parquet object must hold the same events. Returns the result and the
    last archived hash (to meet the live rows' first prev_hash)."""
    marks = dict(checkpoints or {})
    prev, expected, checked = GENESIS, 1, 0

    def result(bad: int = 0, reason: str = "") -> tuple[VerifyResult, bytes]:
        return VerifyResult(not reason, chain_id, 1, expected - 1, checked, bad, reason), prev

    for mkey in [k for k in await store.keys(f"{PREFIX}{chain_id}/") if k.endswith(MANIFEST)]:
        manifest = json.loads(await store.get(mkey))
        data = await store.get(manifest["object_key"])
        if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
            return result(int(manifest["first_seq"]), ARCHIVE_SHA256_MISMATCH)
        events = decode_events(data)
        bad, why = check_links(events, prev, expected)
        if why:
            return result(bad, why)
        parquet = table is not None and manifest.get("parquet_key")
        if parquet and not await _same_table(store, manifest, events, table):
            return result(int(manifest["first_seq"]), ARCHIVE_PARQUET_MISMATCH)
        for s in events:
            if marks.get(s.receipt.seq, s.receipt.hash) != s.receipt.hash:
                return result(s.receipt.seq, CHECKPOINT_MISMATCH)
        if events:
            prev, expected, checked = (
                events[-1].receipt.hash,
                expected + len(events),
                checked + len(events),
            )
    return result()


async def _same_table(
    store: ObjectStore,
    manifest: dict[str, Any],
    events: Sequence[StoredEvent],
    table: TableCodec | None,
) -> bool:
    """The manifest's Parquet object has its SHA-256 and the NDJSON object's events."""
    data = await store.get(manifest["parquet_key"])
    if table is None or hashlib.sha256(data).hexdigest() != manifest["parquet_sha256"]:
        return False
    rows = table.decode(data)
    return [(s.receipt.seq, s.receipt.hash) for s in rows] == [
        (s.receipt.seq, s.receipt.hash) for s in events
    ] and [canonical_bytes(s.event, s.receipt.chain_id, s.receipt.seq) for s in rows] == [
        canonical_bytes(s.event, s.receipt.chain_id, s.receipt.seq) for s in events
    ]


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _time_text(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds")
