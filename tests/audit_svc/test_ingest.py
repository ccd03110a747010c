"""Ingest over real gRPC into a real PostgreSQL: what a client and an operator see."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.access.policy import ANY, WriterGrant
from audit_svc.api import convert
from audit_svc.app import AuditApp
from audit_svc.ingest.validation import Rules, admit
from audit_svc.integrity.chain import canonical_bytes, link
from audit_svc.model import Event, ready_event
from audit_svc.storage import event_writes as writes
from audit_svc.storage.postgres import SELECT_EVENT, create_pool, stored_event
from devstack.events import guide_event
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields
from tests.testkit.receipts import where


async def test_guide_event_is_stored_with_a_receipt(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    reply = await stub.Ingest(pb.IngestRequest(event=guide_event()))

    result = reply.result
    assert result.outcome == event_pb2.OUTCOME_STORED
    assert uuid.UUID(result.event_id).version == 7
    assert result.receipt.seq == 1
    assert result.receipt.prev_hash == "00" * 32
    row = await db.fetchrow(SELECT_EVENT + " WHERE event_id = $1", uuid.UUID(result.event_id))
    assert row is not None
    assert row["username"].startswith("pii1.")  # sealed (audit_svc.privacy)
    assert row["ip_address"] is None and row["ip_sealed"].startswith("pii1.")
    assert row["compliance_tags"] == ["SOX", "GDPR"]
    assert row["hash"].hex() == result.receipt.hash
    shown = await stub.GetEvent(pb.GetEventRequest(event_id=result.event_id))
    assert (shown.event.username, shown.event.ip_address) == ("johndoe", "192.168.1.100")


async def test_invalid_event_is_invalid_argument_naming_each_field(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    bad = guide_event(event_type="Login", ip_address="999.1.1.1", result="ok", service="")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Ingest(pb.IngestRequest(event=bad))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, fields = reason_and_fields(caught.value)
    assert reason == "INVALID_EVENT"
    assert set(fields) == {"event_type", "ip_address", "result", "service"}
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 0


async def test_batch_keeps_good_events_and_rejects_bad_ones_by_index(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    events = [
        guide_event(),
        guide_event(data_classification="secret"),
        guide_event(),
        guide_event(details={"a": "\x00"}),
    ]

    reply = await stub.IngestBatch(pb.IngestBatchRequest(events=events))

    outcomes = [r.outcome for r in reply.results]
    assert outcomes == [
        event_pb2.OUTCOME_STORED,
        event_pb2.OUTCOME_REJECTED,
        event_pb2.OUTCOME_STORED,
        event_pb2.OUTCOME_REJECTED,
    ]
    assert [r.index for r in reply.results] == [0, 1, 2, 3]
    assert [v.field for v in reply.results[1].field_violations] == ["data_classification"]
    assert [v.field for v in reply.results[3].field_violations] == ["details.a"]
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 2


async def test_oversized_batch_is_refused_whole(stub: pb_grpc.AuditServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event()] * 1001))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_fields(caught.value) == ("BATCH_TOO_LARGE", ["events"])


async def test_same_event_id_is_stored_once_and_gets_the_original_receipt(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    event_id = "0193a0a4-2a3b-7c3d-8e4f-123456789abc"
    first = await stub.Ingest(pb.IngestRequest(event=guide_event(event_id=event_id)))
    again = await stub.IngestBatch(
        pb.IngestBatchRequest(
            events=[guide_event(event_id=event_id), guide_event(event_id=event_id)]
        )
    )

    assert first.result.outcome == event_pb2.OUTCOME_STORED
    assert [r.outcome for r in again.results] == [event_pb2.OUTCOME_DUPLICATE] * 2
    assert all(r.receipt == first.result.receipt for r in again.results)
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 1


async def test_a_replayed_batch_mixing_stored_and_new_events_keeps_the_chain_gap_free(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    # A group is first written without looking its ids up; a stored id makes that
    # attempt fail as a whole, and the retry reports it. No seq may be spent on it.
    ids = [str(uuid.uuid4()) for _ in range(6)]
    first = await stub.IngestBatch(
        pb.IngestBatchRequest(events=[guide_event(event_id=i) for i in ids[::2]])
    )
    mixed = await stub.IngestBatch(
        pb.IngestBatchRequest(events=[guide_event(event_id=i) for i in ids])
    )

    outcomes = [r.outcome for r in mixed.results]
    assert outcomes == [event_pb2.OUTCOME_DUPLICATE, event_pb2.OUTCOME_STORED] * 3
    assert [where(r.receipt) for r in mixed.results[::2]] == [
        where(r.receipt) for r in first.results
    ]
    assert [r.receipt.seq for r in mixed.results[1::2]] == [4, 5, 6]
    rows = await db.fetch("SELECT event_id::text AS id, seq FROM audit_events ORDER BY seq")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["id"] for r in rows] == ids[::2] + ids[1::2]


async def test_stream_acks_every_batch_in_order_after_commit(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    batches = [
        pb.StreamIngestRequest(batch_id=f"b{i}", events=[guide_event() for _ in range(50)])
        for i in range(40)
    ]
    call = stub.StreamIngest(iter(batches))
    acks = [ack async for ack in call]

    assert [a.batch_id for a in acks] == [b.batch_id for b in batches]
    seqs = [r.receipt.seq for a in acks for r in a.results]
    assert seqs == list(range(1, 2001))
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 2000


async def test_stream_rejects_a_malformed_batch_and_goes_on(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    batches = [
        pb.StreamIngestRequest(batch_id="ok-1", events=[guide_event()]),
        pb.StreamIngestRequest(batch_id="", events=[guide_event()]),
        pb.StreamIngestRequest(batch_id="too-big", events=[guide_event()] * 1001),
        pb.StreamIngestRequest(
            batch_id="ok-2", events=[guide_event(), guide_event(result="maybe")]
        ),
    ]
    acks = [ack async for ack in stub.StreamIngest(iter(batches))]

    assert [a.batch_id for a in acks] == ["ok-1", "", "too-big", "ok-2"]
    assert acks[1].results[0].reason == "INVALID_ARGUMENT"
    assert acks[2].results[0].reason == "BATCH_TOO_LARGE"
    assert [r.outcome for r in acks[3].results] == [
        event_pb2.OUTCOME_STORED,
        event_pb2.OUTCOME_REJECTED,
    ]
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 2


async def test_stored_rows_form_a_hash_chain(
    stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event() for _ in range(25)]))
    rows = await db.fetch(SELECT_EVENT + " ORDER BY seq")

    prev = bytes(32)
    for row in rows:
        stored = stored_event(row)
        assert stored.receipt.prev_hash == prev
        expected = link(prev, canonical_bytes(stored.event, stored.receipt.chain_id, row["seq"]))
        assert stored.receipt.hash == expected
        prev = expected
    head = await db.fetchrow("SELECT head_seq, head_hash FROM chains WHERE head_seq > 0")
    assert (head["head_seq"], bytes(head["head_hash"])) == (25, prev)


@pytest.mark.parametrize(
    "changes",
    [
        {"user_id": "x" * 100_000},
        {"username": "\x00"},
        {"event_type": "auth." + "a" * 500},
        {"ip_address": "fe80::1%eth0"},
        {"ip_address": "::ffff:1.2.3.4"},
        {"event_id": "not-a-uuid"},
        {
            "details": {
                "deep": {
                    "a": {
                        "b": {
                            "c": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
                        }
                    }
                }
            }
        },
        {"details": {"big": "x" * 20_000}},
        {"details": {"k\x00": 1}},
        {"compliance_tags": [""]},
        {"compliance_tags": ["t"] * 40},
        {"event_time": "9999-12-31T23:59:59Z"},
        {"event_time": "0001-01-01T00:00:00Z"},
        {"user_agent": "😀" * 300},
        {"action": "DROP TABLE audit_events;--"},
    ],
)
async def test_hostile_input_is_stored_or_rejected_never_an_internal_error(
    stub: pb_grpc.AuditServiceStub, changes: dict[str, object]
) -> None:
    reply = await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event(**changes)]))

    (result,) = reply.results
    assert result.outcome in (event_pb2.OUTCOME_STORED, event_pb2.OUTCOME_REJECTED)
    if result.outcome == event_pb2.OUTCOME_REJECTED:
        assert result.field_violations, "a rejection names the field"


async def test_nan_in_details_is_rejected(stub: pb_grpc.AuditServiceStub) -> None:
    bad = guide_event()
    bad.details["ratio"] = float("nan")

    reply = await stub.IngestBatch(pb.IngestBatchRequest(events=[bad]))

    assert reply.results[0].outcome == event_pb2.OUTCOME_REJECTED
    assert [v.field for v in reply.results[0].field_violations] == ["details.ratio"]


async def test_two_replicas_own_separate_chains_and_both_stay_gap_free(
    app: AuditApp, audit_db: str, db: asyncpg.Connection
) -> None:
    settings = tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0")
    async with AuditApp(settings) as second:
        assert second.chain_id != app.chain_id
        async with (
            tls.channel(f"127.0.0.1:{app.port}") as c1,
            tls.channel(f"127.0.0.1:{second.port}") as c2,
        ):
            stubs = [pb_grpc.AuditServiceStub(c1), pb_grpc.AuditServiceStub(c2)]
            await asyncio.gather(
                *(
                    stubs[i % 2].IngestBatch(pb.IngestBatchRequest(events=[guide_event()] * 10))
                    for i in range(40)
                )
            )

    rows = await db.fetch(
        "SELECT chain_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi "
        "FROM audit_events GROUP BY chain_id ORDER BY chain_id"
    )
    assert sum(r["n"] for r in rows) == 400
    assert all(r["lo"] == 1 and r["hi"] == r["n"] for r in rows)
    assert {r["chain_id"] for r in rows} == {app.chain_id, second.chain_id}


async def test_shutdown_commits_everything_it_acknowledged(
    audit_db: str, db: asyncpg.Connection
) -> None:
    settings = tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0")
    acked: list[str] = []
    async with AuditApp(settings) as running:
        async with tls.channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.AuditServiceStub(channel)

            async def send() -> None:
                reply = await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event()] * 100))
                acked.extend(r.event_id for r in reply.results)

            sends = [asyncio.create_task(send()) for _ in range(20)]
            await asyncio.sleep(0)  # the calls are on the wire when shutdown begins
    await asyncio.gather(*sends, return_exceptions=True)

    stored = await db.fetchval(
        "SELECT count(*) FROM audit_events WHERE event_id = ANY($1::uuid[])", acked
    )
    assert stored == len(acked)


async def test_taken_port_names_the_setting(audit_db: str, app: AuditApp) -> None:
    settings = tls.audit_settings(database_url=audit_db, grpc_listen=f"127.0.0.1:{app.port}")

    with pytest.raises(OSError, match="AUDIT_GRPC_LISTEN"):
        async with AuditApp(settings):
            pass


async def test_many_streams_are_held_to_the_event_budget(audit_db: str) -> None:
    # 8 producers with 20 batches each in flight would hold 40,000 events; the service
    # reads no further than AUDIT_MAX_QUEUE_EVENTS and everything is still stored.
    settings = tls.audit_settings(
        database_url=audit_db, grpc_listen="127.0.0.1:0", max_queue_events=1000,
        max_group_events=500,
    )  # fmt: skip
    async with AuditApp(settings) as app, tls.channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.AuditServiceStub(ch)
        held: list[int] = []
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                held.append(app.ingestor.budget.held)
                await asyncio.sleep(0.001)

        async def produce(n: int) -> int:
            batches = [
                pb.StreamIngestRequest(
                    batch_id=f"{n}-{i}", events=[guide_event() for _ in range(250)]
                )
                for i in range(20)
            ]
            return sum([len(a.results) async for a in stub.StreamIngest(iter(batches))])

        sampler = asyncio.create_task(sample())
        acked = await asyncio.gather(*(produce(n) for n in range(8)))
        done.set()
        await sampler

    assert sum(acked) == 40_000
    assert max(held) == 1000  # reached, never passed
    conn = await asyncpg.connect(audit_db)
    try:
        row = await conn.fetchrow("SELECT count(*), max(seq) FROM audit_events")
        assert tuple(row) == (40_000, 40_000)
    finally:
        await conn.close()


async def test_a_head_moved_by_another_writer_is_caught_and_the_chain_stays_whole(
    app: AuditApp, stub: pb_grpc.AuditServiceStub, db: asyncpg.Connection
) -> None:
    # The appender keeps the chain's head in memory and writes a group only if the
    # database's head is still there. Here another writer (a one-step append on the
    # same chain, as a second process without the advisory lock would do) moves it.
    await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event() for _ in range(3)]))
    pool = await create_pool(app.settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            other = domain_events(3)
            await writes.append(conn, app.chain_id, other)
    finally:
        await pool.close()

    after = await stub.IngestBatch(pb.IngestBatchRequest(events=[guide_event() for _ in range(4)]))

    assert [r.outcome for r in after.results] == [event_pb2.OUTCOME_STORED] * 4
    assert [r.receipt.seq for r in after.results] == [7, 8, 9, 10]
    rows = await db.fetch(SELECT_EVENT + " ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, 11))
    prev = bytes(32)
    for row in rows:
        stored = stored_event(row)
        assert stored.receipt.prev_hash == prev
        prev = link(prev, canonical_bytes(stored.event, stored.receipt.chain_id, row["seq"]))
        assert stored.receipt.hash == prev


def domain_events(count: int) -> list[Event]:
    """Valid domain events, as the service would have made them from guide events."""
    now = datetime.now(UTC)
    rules = Rules(now, timedelta(minutes=5), None, WriterGrant(frozenset({ANY}), (ANY,)), "c", "")
    admitted = admit([guide_event() for _ in range(count)], convert.MESSAGES, rules)
    return [ready_event(r) for r in admitted.ready]
