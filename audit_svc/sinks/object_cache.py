"""Archived objects downloaded once into a local folder, bounded by size.

A file is named by the SHA-256 the archive record expects of the object, and a
download whose digest differs is refused (`ArchiveError`), so what the cold tier reads
is what was verified when it was archived. When the folder holds more than
`max_bytes`, the least recently used files go; files found at start count too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

from audit_svc.sinks.archive import ArchiveError
from audit_svc.sinks.objects import ObjectStore

log = logging.getLogger(__name__)
SUFFIX = ".parquet"


class ObjectCache:
    """See the module docstring."""

    def __init__(self, store: ObjectStore, folder: Path, max_bytes: int) -> None:
        self._store = store
        self._folder = folder
        self._max = max_bytes
        self._files: OrderedDict[str, int] = OrderedDict()  # name -> size, oldest first
        self._loading: dict[str, asyncio.Future[Path]] = {}
        self._opened = False

    @property
    def size(self) -> int:
        """Bytes held in the folder."""
        return sum(self._files.values())

    def _open(self) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        found = sorted(self._folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
        for path in found:
            self._files[path.name] = path.stat().st_size
        self._opened = True
        self._evict()

    async def path(self, key: str, version_id: str, sha256: bytes) -> Path:
        """A local file with the object's bytes, downloaded when not held yet."""
        if not self._opened:
            self._open()
        name = sha256.hex() + SUFFIX
        if name in self._files and (self._folder / name).exists():
            self._files.move_to_end(name)
            return self._folder / name
        if (pending := self._loading.get(name)) is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._loading[name] = future
        try:
            path = await self._download(key, version_id, sha256, name)
            future.set_result(path)
            return path
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else is warned
            raise
        finally:
            del self._loading[name]

    async def _download(self, key: str, version_id: str, sha256: bytes, name: str) -> Path:
        data = await self._store.get(key, version_id)
        if hashlib.sha256(data).digest() != sha256:
            raise ArchiveError(f"{key}: SHA-256 differs from the archive record; not read")
        target = self._folder / name
        await asyncio.to_thread(_write_atomically, target, data)
        self._files[name] = len(data)
        self._evict(keep=name)
        return target

    def _evict(self, keep: str = "") -> None:
        while self.size > self._max and len(self._files) > (1 if keep else 0):
            name, _ = next(iter(self._files.items()))
            if name == keep:
                self._files.move_to_end(name)
                continue
            del self._files[name]
            with contextlib.suppress(FileNotFoundError):
                (self._folder / name).unlink()  # a reader that has it open keeps reading
            log.debug("archive cache: evicted %s", name)


def _write_atomically(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
