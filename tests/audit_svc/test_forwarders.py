"""The syslog and webhook forwarders against real receivers started here: every
event arrives although the receiver is stopped mid-stream and started again, a
resent event has the same event id (and bytes), lag shows in health meanwhile, and
a webhook batch the receiver keeps refusing lands in forwarder_dead_letters."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.settings import Settings, SettingsError
from tests.audit_svc.sinkkit import cursor_at_head, eventually, ingest, sink_settings
from tests.testkit import tls
from tests.testkit.metrics import scrape
from tests.testkit.receivers import SyslogReceiver, WebhookReceiver
from tests.testkit.siem import check_ocsf, split_cef

SECRET = b"webhook-secret-of-the-test"


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    """Receivers entered here are stopped at the end of the test, whatever happened."""
    async with AsyncExitStack() as receivers:
        yield receivers


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[AuditApp, pb_grpc.AuditServiceStub]]:
    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
    ):
        yield app, pb_grpc.AuditServiceStub(channel)


async def stored_ids(db: asyncpg.Connection, chain_id: str) -> set[str]:
    rows = await db.fetch("SELECT event_id FROM audit_events WHERE chain_id = $1", chain_id)
    return {str(r["event_id"]) for r in rows}


async def sink_lag(stub: pb_grpc.AuditServiceStub, name: str) -> int:
    health = await stub.Health(pb.HealthRequest())
    (sink,) = [s for s in health.sinks if s.name == name]
    return int(sink.lag_events)


async def test_syslog_receiver_restart_loses_nothing(
    audit_db: str, db: asyncpg.Connection, tmp_path: Path, stack: AsyncExitStack
) -> None:
    receiver = await stack.enter_async_context(SyslogReceiver())
    settings = sink_settings(
        audit_db, tmp_path, syslog_target=f"127.0.0.1:{receiver.port}", syslog_tls=False,
        syslog_confirm_seconds=0.3, syslog_batch_events=200,
    )  # fmt: skip
    async with serve(settings) as (_app, stub):
        await ingest(stub, 1000, batch=100, streams=1)
        await eventually(lambda: _at_least(receiver, 1))
        await receiver.stop()  # mid-stream: the forwarder may be writing now
        await ingest(stub, 1000, batch=100, streams=1)
        assert await sink_lag(stub, "syslog") > 0
        await asyncio.sleep(0.5)  # the forwarder fails and retries meanwhile
        await receiver.start()  # the same port
        chain = settings.chain_id
        expected = await stored_ids(db, chain)
        assert len(expected) == 2000
        await eventually(lambda: _received_all(receiver, expected))
        await eventually(lambda: cursor_at_head(db, "syslog", chain))
        assert await sink_lag(stub, "syslog") == 0
    frames = receiver.by_event()
    assert set(frames) == expected
    print(f"\nsyslog: {len(receiver.frames)} frames for {len(frames)} events")
    for event_id, copies in frames.items():
        assert len(set(copies)) == 1, event_id  # a duplicate is the same message
    sample = next(iter(frames.values()))[0].decode()
    assert re.match(r"<110>1 \S+Z \S+ auditmesh - auth\.\w+ \[auditmesh@32473 eventId=", sample)
    header, ext = split_cef(sample[sample.index("CEF:0|") :])
    assert header[1:3] == ["auditmesh", "audit-service"]
    assert ext["externalId"] in expected


async def _at_least(receiver: SyslogReceiver, n: int) -> bool:
    return len(receiver.frames) >= n


async def _received_all(receiver: SyslogReceiver, expected: set[str]) -> bool:
    return set(receiver.by_event()) >= expected


async def test_syslog_over_tls(
    audit_db: str, db: asyncpg.Connection, tmp_path: Path, stack: AsyncExitStack
) -> None:
    files = tls.files("syslog-receiver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert_file, files.key_file)
    receiver = await stack.enter_async_context(SyslogReceiver(context))
    settings = sink_settings(
        audit_db, tmp_path, syslog_target=f"127.0.0.1:{receiver.port}",
        syslog_ca_file=files.ca_file, syslog_confirm_seconds=0.2,
    )  # fmt: skip
    async with serve(settings) as (_app, stub):
        await ingest(stub, 300, batch=100, streams=1)
        expected = await stored_ids(db, settings.chain_id)
        await eventually(lambda: _received_all(receiver, expected))
    await receiver.stop()
    assert set(receiver.by_event()) == expected


def webhook_settings(audit_db: str, tmp_path: Path, url: str, **more: Any) -> Settings:
    return sink_settings(
        audit_db, tmp_path, webhook_url=url, webhook_secret=SECRET.decode(),
        webhook_batch_events=100, webhook_backoff_seconds=0.05, **more,
    )  # fmt: skip


async def test_webhook_receiver_restart_loses_nothing(
    audit_db: str, db: asyncpg.Connection, tmp_path: Path, stack: AsyncExitStack
) -> None:
    receiver = await stack.enter_async_context(WebhookReceiver(SECRET))
    settings = webhook_settings(
        audit_db, tmp_path, receiver.url, webhook_body="json", webhook_event_format="ocsf",
        webhook_max_attempts=50,
    )  # fmt: skip
    async with serve(settings) as (_app, stub):
        await ingest(stub, 800, batch=100, streams=1)
        await eventually(lambda: _webhook_got(receiver, 1))
        await receiver.stop()
        await ingest(stub, 700, batch=100, streams=1)
        assert await sink_lag(stub, "webhook") > 0
        await asyncio.sleep(0.5)
        await receiver.start()
        expected = await stored_ids(db, settings.chain_id)
        await eventually(lambda: _webhook_has(receiver, expected))
        await eventually(lambda: cursor_at_head(db, "webhook", settings.chain_id))
        assert await sink_lag(stub, "webhook") == 0
    docs = receiver.events()
    print(f"\nwebhook: {len(docs)} events received for {len(expected)} stored")
    by_id: dict[str, list[str]] = {}
    for doc in docs:
        meta = doc["metadata"]
        assert isinstance(meta, dict)
        by_id.setdefault(str(meta["uid"]), []).append(json.dumps(doc, sort_keys=True))
    assert set(by_id) == expected
    assert all(len(set(copies)) == 1 for copies in by_id.values())
    check_ocsf(docs[0])
    rows = await db.fetch("SELECT * FROM forwarder_dead_letters")
    assert rows == []


async def _webhook_got(receiver: WebhookReceiver, n: int) -> bool:
    return len(receiver.bodies) >= n


async def _webhook_has(receiver: WebhookReceiver, expected: set[str]) -> bool:
    got = {str(d["metadata"]["uid"]) for d in receiver.events()}  # type: ignore[index]
    return got >= expected


async def test_webhook_over_https_with_ndjson_bodies(
    audit_db: str, db: asyncpg.Connection, tmp_path: Path, stack: AsyncExitStack
) -> None:
    files = tls.files("webhook-receiver")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert_file, files.key_file)
    receiver = await stack.enter_async_context(WebhookReceiver(SECRET, context))
    settings = webhook_settings(audit_db, tmp_path, receiver.url, webhook_ca_file=files.ca_file)
    async with serve(settings) as (_app, stub):
        await ingest(stub, 150, batch=150, streams=1)
        expected = await stored_ids(db, settings.chain_id)
        await eventually(lambda: _ndjson_has(receiver, expected))
    assert {ct for ct, _ in receiver.bodies} == {"application/x-ndjson"}
    docs = receiver.events()
    assert docs[0]["format"] == "auditmesh.ndjson/1"
    assert sorted(int(str(d["seq"])) for d in docs) == list(range(1, 151))


async def _ndjson_has(receiver: WebhookReceiver, expected: set[str]) -> bool:
    return {str(d["event_id"]) for d in receiver.events()} >= expected


async def test_webhook_dead_letters_after_n_tries_and_moves_on(
    audit_db: str, db: asyncpg.Connection, tmp_path: Path, stack: AsyncExitStack
) -> None:
    receiver = await stack.enter_async_context(WebhookReceiver(SECRET))
    receiver.status = 503
    settings = webhook_settings(
        audit_db, tmp_path, receiver.url, webhook_max_attempts=3,
        metrics_listen="127.0.0.1:0", metrics_refresh_seconds=0.1,
    )  # fmt: skip
    async with serve(settings) as (app, stub):
        receiver.status = 0  # hold every batch: lag shows in /metrics
        await ingest(stub, 250, batch=250, streams=1)
        chain = settings.chain_id

        async def lagging() -> bool:
            samples = scrape(app.metrics_port)
            return samples.value("auditmesh_sink_lag_events", chain=chain, sink="webhook") > 0

        await eventually(lagging)
        receiver.status = 503
        await eventually(lambda: cursor_at_head(db, "webhook", settings.chain_id))

        async def counted() -> bool:
            dead = scrape(app.metrics_port).value(
                "auditmesh_forwarder_events_total", sink="webhook", result="dead_lettered"
            )
            return dead >= 250

        await eventually(counted)
        receiver.status = 400  # final: dead-lettered at the first try
        await ingest(stub, 50, batch=50, streams=1)
        await eventually(lambda: cursor_at_head(db, "webhook", settings.chain_id))
        receiver.status = 200
        await ingest(stub, 10, batch=10, streams=1)
        await eventually(lambda: _webhook_got(receiver, 1))
    await receiver.stop()
    rows = await db.fetch(
        "SELECT first_seq, last_seq, attempts, last_status, cardinality(event_ids) AS n"
        " FROM forwarder_dead_letters WHERE chain_id = $1 ORDER BY first_seq",
        settings.chain_id,
    )
    assert [(r["first_seq"], r["last_seq"], r["attempts"], r["last_status"], r["n"])
            for r in rows] == [
        (1, 100, 3, 503, 100), (101, 200, 3, 503, 100), (201, 250, 3, 503, 50),
        (251, 300, 1, 400, 50),
    ]  # fmt: skip
    assert receiver.requests == 3 * 3 + 1 + 1
    assert len(receiver.events()) == 10


async def test_a_bad_signature_is_refused_by_the_receiver(
    audit_db: str, db: asyncpg.Connection, tmp_path: Path, stack: AsyncExitStack
) -> None:
    """The receiver checks the HMAC: a forwarder with another secret is refused (401,
    final), so its batch is dead-lettered rather than accepted."""
    receiver = await stack.enter_async_context(WebhookReceiver(b"another secret"))
    settings = webhook_settings(audit_db, tmp_path, receiver.url)
    async with serve(settings) as (_app, stub):
        await ingest(stub, 5, batch=5, streams=1)
        await eventually(lambda: cursor_at_head(db, "webhook", settings.chain_id))
    await receiver.stop()
    status = await db.fetchval("SELECT last_status FROM forwarder_dead_letters")
    assert status == 401 and receiver.bodies == []


def test_forwarder_settings_are_checked_at_start_up() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"AUDIT_SYSLOG_TARGET": "no-port", "AUDIT_WEBHOOK_URL": "http://siem.example/hook",
             "AUDIT_WEBHOOK_BODY": "xml", "AUDIT_WEBHOOK_EVENT_FORMAT": "cef"},
            tls="plaintext",
        )  # fmt: skip
    problems = str(caught.value)
    for variable in ("AUDIT_SYSLOG_TARGET", "AUDIT_WEBHOOK_URL", "AUDIT_WEBHOOK_SECRET",
                     "AUDIT_WEBHOOK_BODY", "AUDIT_WEBHOOK_EVENT_FORMAT"):  # fmt: skip
        assert variable in problems
    off = Settings.from_env({}, tls="plaintext")
    assert (off.syslog_target, off.webhook_url, off.syslog_tls) == ("", "", True)
    shown = Settings.from_env(
        {"AUDIT_WEBHOOK_URL": "https://siem.example/hook", "AUDIT_WEBHOOK_SECRET": "s3cret"},
        tls="plaintext",
    )
    assert "s3cret" not in repr(shown)
