"""SyncAuditClient from plain threads, as a non-async service would use it."""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import pytest

from audit_client import ClientClosed, ClientStats, SyncAuditClient
from audit_svc.app import AuditApp
from tests.audit_client.support import MakeSettings, make_events
from tests.testkit import tls

THREADS, EACH = 4, 500


def emit_from_threads(client: SyncAuditClient) -> list[list[str]]:
    """Each thread emits its own events; returns the ids each thread got, in its order."""
    ids: list[list[str]] = [[] for _ in range(THREADS)]

    def work(n: int) -> None:
        for event in make_events(EACH, user_id=f"thread-{n}"):
            ids[n].append(client.emit(event))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids


async def test_threads_emit_concurrently_and_every_event_is_stored_once_in_thread_order(
    app: AuditApp, client_settings: MakeSettings, db: asyncpg.Connection
) -> None:
    def run() -> tuple[list[list[str]], ClientStats]:
        with SyncAuditClient(client_settings(f"127.0.0.1:{app.port}")) as client:
            ids = emit_from_threads(client)
            client.flush(timeout=30)
            stats = client.stats()
        with pytest.raises(ClientClosed):
            client.emit(make_events(1)[0])
        return ids, stats

    # The audit-service runs on this loop: the blocking client runs in a thread.
    ids, stats = await asyncio.to_thread(run)

    assert (stats.emitted, stats.stored, stats.dropped) == (THREADS * EACH, THREADS * EACH, 0)
    for n, mine in enumerate(ids):
        rows = await db.fetch(
            "SELECT event_id::text AS id FROM audit_events WHERE user_id = $1 ORDER BY seq",
            tls.stored_user_id(f"thread-{n}"),
        )
        assert [r["id"] for r in rows] == mine
