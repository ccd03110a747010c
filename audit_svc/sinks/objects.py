"""An object-locked S3 bucket (MinIO, SeaweedFS) through the minio SDK, made async by
running its blocking calls in a worker thread.

Buckets are created with object lock (which turns versioning on) and a default
retention (mode and days from settings), so every object version written is
immutable for that long: even the service's own credentials cannot delete it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import dataclass

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.objectlockconfig import DAYS, ObjectLockConfig

MODES = {"COMPLIANCE": COMPLIANCE, "GOVERNANCE": GOVERNANCE}


@dataclass(frozen=True, slots=True)
class Stored:
    """Where a put landed."""

    key: str
    version_id: str


class ObjectStore:
    """One bucket. Calls raise the SDK's or urllib3's errors when S3 cannot be reached:
    callers (the sink runner) retry."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        lock_mode: str = "COMPLIANCE",
        lock_days: int = 365,
    ) -> None:
        # Few retries and short timeouts: the sink runner owns retrying, with back-off.
        # Connections kept per host: the cold tier downloads a few objects at a time.
        self._http = urllib3.PoolManager(
            maxsize=8,
            timeout=urllib3.Timeout(connect=3, read=30),
            retries=urllib3.Retry(total=1, backoff_factor=0.2),
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=self._http,
        )
        self.bucket = bucket
        self._lock_mode = lock_mode
        self._lock_days = lock_days
        self._ready = False

    def close(self) -> None:
        self._http.clear()

    async def ensure_bucket(self) -> None:
        """Create the bucket with object lock and default retention, once."""
        if not self._ready:
            await asyncio.to_thread(self._ensure_bucket)
            self._ready = True

    def _ensure_bucket(self) -> None:
        if not self._client.bucket_exists(self.bucket):
            self._client.make_bucket(self.bucket, object_lock=True)
        self._client.set_object_lock_config(
            self.bucket, ObjectLockConfig(MODES[self._lock_mode], self._lock_days, DAYS)
        )

    async def put(self, key: str, data: bytes, content_type: str) -> Stored:
        await self.ensure_bucket()

        def put() -> Stored:
            result = self._client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )
            return Stored(key, result.version_id or "")

        return await asyncio.to_thread(put)

    async def get(self, key: str, version_id: str = "") -> bytes:
        def get() -> bytes:
            response = self._client.get_object(self.bucket, key, version_id=version_id or None)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(get)

    async def keys(self, prefix: str, start_after: str = "") -> list[str]:
        """Every key under `prefix` (after `start_after`, when given), sorted."""
        await self.ensure_bucket()

        def keys() -> list[str]:
            found: Iterator[object] = self._client.list_objects(
                self.bucket, prefix=prefix, recursive=True, start_after=start_after or None
            )
            return sorted(str(getattr(o, "object_name", "")) for o in found)

        return await asyncio.to_thread(keys)

    async def delete_version(self, key: str, version_id: str) -> None:
        """Try to delete one object version; object lock refuses it (S3Error)."""
        await asyncio.to_thread(self._client.remove_object, self.bucket, key, version_id)
