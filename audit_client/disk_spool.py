"""The local disk spool: the fallback after Redis, for when neither the audit-service nor
Redis answers and the client's memory would be the only copy of its events.

Batches are written to segment files in one folder (`disk_spool_dir`), oldest first by
name; each segment is written once, appended record by record (4-byte length, CRC-32,
a serialized `audit.v2.StreamIngestRequest`), then fsync'ed, and the folder fsync'ed so
the new name survives a crash too. A batch counts as spooled only after that. Segments
are moved to the Redis spool (oldest first) as soon as Redis answers, and deleted only
after Redis took them: a crash in between pushes them again, and their events are
answered DUPLICATE. A torn last record (a crash during the write, before the fsync
returned and so before the batch counted as spooled) is ignored on reading. Like
OpenTelemetry collector's file storage, it is per process: give each process its own
folder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

from audit.v2 import audit_service_pb2 as pb

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")  # length, CRC-32 of the record
SUFFIX = ".seg"


class DiskSpool:
    """Segments of spooled batches in `directory` (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._count = 0

    def open(self) -> tuple[int, int]:
        """Create the folder if needed; return (batches, events) it holds from before."""
        self.directory.mkdir(parents=True, exist_ok=True)
        batches = events = 0
        for segment in self.segments():
            for raw in self.read(segment):
                batches += 1
                events += len(pb.StreamIngestRequest.FromString(raw).events)
        return batches, events

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    async def write(self, items: Sequence[bytes]) -> Path:
        """Write one segment of batches, durably, off the event loop."""
        return await asyncio.to_thread(self._write, items)

    def _write(self, items: Sequence[bytes]) -> Path:
        self._count += 1
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}-{self._count:06d}{SUFFIX}"
        with open(path, "ab") as file:
            for item in items:
                file.write(_HEADER.pack(len(item), zlib.crc32(item)))
                file.write(item)
            file.flush()
            os.fsync(file.fileno())
        _fsync_dir(self.directory)
        return path

    def read(self, segment: Path) -> list[bytes]:
        """The batches of a segment, in order; a torn or corrupt tail is left out."""
        data = segment.read_bytes()
        items, at = [], 0
        while at + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, at)
            item = data[at + _HEADER.size : at + _HEADER.size + length]
            if len(item) < length or zlib.crc32(item) != crc:
                log.warning("disk spool segment %s ends in a torn record; ignored", segment)
                break
            items.append(item)
            at += _HEADER.size + length
        return items

    def delete(self, segment: Path) -> None:
        """The segment's batches are in Redis now."""
        segment.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
