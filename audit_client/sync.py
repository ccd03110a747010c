"""SyncAuditClient: the AuditClient for code without an event loop (threads, WSGI).

It runs an AuditClient on its own event loop in a background thread; every method may be
called from any thread, and blocks only for the hand-over to that loop (emit) or for as
long as the call says (flush, close).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from audit.v2 import event_pb2
from audit_client.client import AuditClient
from audit_client.counters import ClientStats
from audit_client.errors import ClientClosed
from audit_client.settings import ClientSettings

T = TypeVar("T")


class SyncAuditClient:
    """Thread-safe facade: `with SyncAuditClient(settings) as client: client.emit(event)`.

    Starts at construction; call close() (or leave the with block) to flush and stop.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="audit-client-loop", daemon=True
        )
        self._lock = threading.Lock()
        self._closed = False
        self._thread.start()
        try:
            self._client = self._call(self._start())
        except BaseException:
            self._stop_loop()
            raise

    async def _start(self) -> AuditClient:
        client = AuditClient(self.settings)
        await client.start()
        return client

    def __enter__(self) -> SyncAuditClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def emit(self, event: event_pb2.AuditEvent) -> str:
        """Queue one event; see AuditClient.emit. Returns its event_id."""
        return self._call(self._client.emit(event))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything emitted so far is acknowledged, spooled or dropped."""
        self._call(self._client.flush(timeout))

    def stats(self) -> ClientStats:
        """A snapshot of the counters and state."""
        return self._call(self._stats())

    async def _stats(self) -> ClientStats:
        return self._client.stats()

    def close(self) -> None:
        """Flush (up to close_timeout_seconds), stop the client and its thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._call(self._client.aclose(), closing=True)
        finally:
            self._stop_loop()

    def _call(self, coro: Coroutine[Any, Any, T], *, closing: bool = False) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncAuditClient called from its own loop; use AuditClient")
        if self._closed and not closing:
            coro.close()
            raise ClientClosed("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()
