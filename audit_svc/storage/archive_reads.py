"""`ArchiveObjects` over Parquet files: each range's object made local by `fetch` (the
bounded, digest-checked cache of `sinks.object_cache`), then one scan of them all
with the query's filters pushed down (`storage.parquet.scan`), in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from audit_svc.errors import ArchiveUnavailable
from audit_svc.model import StoredEvent
from audit_svc.read.filters import QuerySpec
from audit_svc.sinks.archive import ArchiveError
from audit_svc.storage import parquet
from audit_svc.storage.protocols import ArchivedRange

Fetch = Callable[[str, str, bytes], Awaitable[Path]]  # (key, version id, sha256) -> file


class ParquetArchive:
    """Reads archived ranges' Parquet objects; see the module docstring."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch

    async def scan(
        self, ranges: Sequence[ArchivedRange], spec: QuerySpec, limit: int
    ) -> list[StoredEvent]:
        try:
            paths = await asyncio.gather(
                *(self._fetch(r.parquet_key, r.parquet_version_id, r.parquet_sha256)
                  for r in ranges)
            )  # fmt: skip
        except ArchiveError:
            raise  # an object that is not what was archived: loud, not retryable
        except Exception as exc:  # the S3 client's or urllib3's: unreachable, refused
            raise ArchiveUnavailable(f"the archive bucket cannot be read: {exc!r}") from exc
        return await asyncio.to_thread(parquet.scan, paths, spec, limit)
