"""The cold tier against real PostgreSQL and an object-locked SeaweedFS: after the
archiver moves old events to Parquet, `Query` with `include_archive` (or a time range
older than the hot window) answers every filter with the same events, in the same
order, page by page, as PostgreSQL did before; tokens cross between hot rows and
archived ones both ways; proofs of archived events verify; a restore changes nothing a
reader sees; and the local copy of the objects stays within its bound."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.app import AuditApp
from audit_svc.integrity.chain import canonical_bytes
from audit_svc.model import Event, Receipt
from audit_svc.ops.verify import verify_command
from audit_svc.sinks import ArchiveError, Archiver, object_store, restore
from audit_svc.sinks.object_cache import ObjectCache
from audit_svc.storage.event_writes import append, ensure_chain
from audit_svc.storage.parquet import PARQUET
from audit_svc.storage.protocols import TableCodec
from audit_svc.storage.sink_state import PgSinkState
from devstack import S3Info, start_s3
from meshkit import merkle
from tests.audit_svc.sinkkit import sink_settings
from tests.gateway.harness import client, running_gateway
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields

OLD, LATE, PER_OBJECT, PAGE = 120, 30, 40, 9
# Old events on days 0 and 2, received then (archived, their partitions dropped); late
# ones on day 1, received now (hot): newest first reads cold, hot, cold.
T0 = (datetime.now(UTC) - timedelta(days=200)).replace(hour=0, minute=0, second=0, microsecond=0)
TYPES = ("auth.login_success", "auth.login_failed", "user.user_created", "security.rate_limit")


def _ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


# Each query is paged through with PAGE events a page; every filter kind is here.
QUERIES: dict[str, dict[str, Any]] = {
    "all": {},
    "type": {"event_type": "auth.login_failed"},
    "prefix": {"event_type": "auth.*"},
    "user": {"user_id": "u3"},
    "rare user": {"user_id": "rare"},
    "username": {"username": "name1"},
    "service": {"service": "billing"},
    "action": {"action": "act2"},
    "result": {"result": "failure"},
    "tag": {"compliance_tag": "SOX"},
    "classification": {"data_classification": "confidential"},
    "ip": {"ip_address": "10.0.0.2"},
    "details": {"details_contains": json.dumps({"n": 1, "nested": {"k": "v0"}})},
    "time": {"start_time": _ts(T0 + timedelta(minutes=1)),
             "end_time": _ts(T0 + timedelta(days=1, minutes=2))},
    "mixed": {"event_type": "auth.*", "result": "success", "compliance_tag": "GDPR"},
}  # fmt: skip


def _event(make: Callable[..., Event], i: int, received: datetime, day: int) -> Event:
    return make(
        # Pairs share an event time: ties go by id.
        T0 + timedelta(days=day, seconds=10 * (i // 2)),
        event_type=TYPES[i % 4],
        user_id="rare" if i == 77 else f"u{i % 5}",
        username=f"name{i % 3}",
        service=("user-service", "billing")[i % 2],
        action=f"act{i % 3}",
        result=("success", "failure", "success")[i % 3],
        compliance_tags=(("SOX", "GDPR"), ("GDPR",), ())[i % 3],
        data_classification=("internal", "confidential")[i % 2],
        ip_address=ipaddress.ip_address(f"10.0.0.{i % 4}"),
        details={"n": i % 3, "mfa_used": i % 2 == 0, "nested": {"k": f"v{i % 2}"}},
        receive_time=received,
    )


async def _stored(
    db: asyncpg.Connection, chain: str, events: list[Event]
) -> dict[str, tuple[Event, Receipt]]:
    await ensure_chain(db, chain)
    out = {}
    for i in range(0, len(events), 25):
        group = events[i : i + 25]
        for e, (_, receipt) in zip(group, await append(db, chain, group), strict=True):
            out[str(e.event_id)] = (e, receipt)
    return out


async def _pages(stub: pb_grpc.AuditServiceStub, **request: Any) -> list[list[str]]:
    """Every page's event ids, following the tokens."""
    pages, token = [], ""
    while True:
        reply = await stub.Query(pb.QueryRequest(page_size=PAGE, page_token=token, **request))
        pages.append([e.event_id for e in reply.events])
        token = reply.next_page_token
        if not token:
            return pages


async def test_archived_events_answer_queries_as_postgresql_did(
    audit_db: str,
    s3: S3Info,
    db: asyncpg.Connection,
    audit_pool: asyncpg.Pool,
    tmp_path: Path,
    make_event: Callable[..., Event],
) -> None:
    settings = sink_settings(
        audit_db, tmp_path, s3=s3, archive_object_events=PER_OBJECT, dev_mode=True,
        archive_cache_dir=str(tmp_path / "cache"),
        privacy=False,  # the test writes its rows in clear itself, as stored without it
    )  # fmt: skip
    mine, other = settings.chain_id, settings.chain_id + "-b"

    def old(i: int) -> Event:
        day = 0 if i < OLD // 2 else 2
        return _event(make_event, i, T0 + timedelta(days=day, hours=1), day)

    stored = await _stored(db, mine, [old(i) for i in range(OLD)])
    stored |= await _stored(db, other, [old(i) for i in range(1, OLD, 2)])
    late = [_event(make_event, 4 * i + 1, datetime.now(UTC), 1) for i in range(LATE)]
    stored |= await _stored(db, mine, late)

    async with (
        AuditApp(settings) as app,
        tls.channel(f"127.0.0.1:{app.port}") as channel,
        running_gateway(upstreams=f"audit=127.0.0.1:{app.port},user=127.0.0.1:1") as gateway,
        client(gateway.ports["audit"]) as rest,
    ):
        stub = pb_grpc.AuditServiceStub(channel)
        before = {name: await _pages(stub, **q) for name, q in QUERIES.items()}
        assert [n for n, p in before.items() if not sum(p, [])] == []
        assert sum(map(len, before["all"])) == len(stored)

        store = object_store(settings, settings.archive_bucket)
        for chain in (mine, other):
            archiver = Archiver(
                PgSinkState(audit_pool), chain, store, retention=timedelta(days=90),
                object_events=PER_OBJECT, table=PARQUET,
            )  # fmt: skip
            assert await archiver.archive_all()
        hot = {str(r["event_id"]) for r in await db.fetch("SELECT event_id FROM audit_events")}
        assert hot == {str(e.event_id) for e in late}

        # Same pages, same order, same tokens' reach: hot and archived merged.
        for name, q in QUERIES.items():
            assert await _pages(stub, include_archive=True, **q) == before[name], name
        # A time range older than the hot window reads the archive by itself.
        assert await _pages(stub, **QUERIES["time"]) == before["time"]
        # Without either, only the hot rows.
        only_hot = sum(await _pages(stub), [])
        assert set(only_hot) == hot

        # Paging "all" goes cold -> hot -> cold, across page boundaries.
        tiers = ["hot" if i in hot else "cold" for i in sum(before["all"], [])]
        runs = [t for n, t in enumerate(tiers) if n == 0 or tiers[n - 1] != t]
        assert runs == ["cold", "hot", "cold"] and len(tiers) > 3 * PAGE

        # REST: include_archive=true, and the next page from its token.
        params: dict[str, str | int] = {"user_id": "u3", "limit": PAGE, "include_archive": "true"}
        first = await rest.get("/api/v2/events/query", params=params)
        assert first.status_code == 200, first.text
        assert [e["event_id"] for e in first.json()["events"]] == before["user"][0]
        second = await rest.get(
            "/api/v2/events/query",
            params=params | {"page_token": first.json()["next_page_token"]},
        )
        assert [e["event_id"] for e in second.json()["events"]] == before["user"][1]

        # An archived event, as the cold tier returns it, is proven in its chain's tree.
        reply = await stub.Query(pb.QueryRequest(user_id="rare", include_archive=True))
        (found,) = [e for e in reply.events if e.receipt.chain_id == mine and e.event_id not in hot]
        event, receipt = stored[found.event_id]
        assert found.receipt.seq == receipt.seq and found.receipt.hash == receipt.hash.hex()
        proof = await stub.GetInclusionProof(
            pb.GetInclusionProofRequest(chain_id=mine, seq=receipt.seq)
        )
        leaf = merkle.leaf_hash(canonical_bytes(event, mine, receipt.seq))
        assert proof.leaf_hash == leaf
        merkle.verify_inclusion(
            proof.leaf_index, proof.tree_size, leaf, list(proof.hashes), proof.root_hash
        )

        # The chain verifies over the archive, Parquet objects included.
        out, err = io.StringIO(), io.StringIO()
        code = await verify_command(audit_db, mine, out=out, err=err, settings=settings)
        assert code == 0 and "archive: OK" in out.getvalue(), out.getvalue() + err.getvalue()

        # A restore brings back the same events: PostgreSQL alone answers as before,
        # and with the archive too (an event in both tiers is shown once).
        for chain in (mine, other):
            await restore(PgSinkState(audit_pool), store, chain, 1, 0)
        for name, q in QUERIES.items():
            assert await _pages(stub, **q) == before[name], name
            assert await _pages(stub, include_archive=True, **q) == before[name], name
        store.close()


async def test_include_archive_without_an_archive_is_a_failed_precondition(
    stub: pb_grpc.AuditServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Query(pb.QueryRequest(include_archive=True))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_and_fields(caught.value)[0] == "ARCHIVE_NOT_CONFIGURED"


async def test_the_object_cache_stays_within_its_bound(s3: S3Info, tmp_path: Path) -> None:
    settings = sink_settings("postgresql://unused", tmp_path, s3=s3)
    store = object_store(settings, settings.archive_bucket)
    blobs = [bytes([i]) * 1000 for i in range(5)]
    stored = [
        await store.put(f"events/x/{i}.parquet", b, "application/octet-stream")
        for i, b in enumerate(blobs)
    ]
    cache = ObjectCache(store, tmp_path / "cache", max_bytes=2500)
    for s, b in zip(stored, blobs, strict=True):
        path = await cache.path(s.key, s.version_id, hashlib.sha256(b).digest())
        assert path.read_bytes() == b
        assert cache.size <= 2500
    held = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert held == sorted(hashlib.sha256(b).hexdigest() + ".parquet" for b in blobs[-2:])
    with pytest.raises(ArchiveError):  # a download must match the archive record
        await cache.path(stored[0].key, stored[0].version_id, hashlib.sha256(b"x").digest())
    store.close()


async def test_with_the_archive_unreachable_a_query_reaching_it_is_unavailable(
    audit_db: str, db: asyncpg.Connection, tmp_path: Path, make_event: Callable[..., Event]
) -> None:
    server = start_s3(tmp_path / "s3")
    info = server.info
    server.stop()  # the bucket's server is down from the start
    settings = sink_settings(audit_db, tmp_path, s3=info, archive_cache_dir=str(tmp_path / "c"))
    await _stored(db, settings.chain_id, [_event(make_event, 0, datetime.now(UTC), 0)])
    await db.execute(  # a range the archive record says is in the bucket
        "INSERT INTO archived_ranges (chain_id, first_seq, last_seq, event_count, prev_hash,"
        " last_hash, sha256, object_key, parquet_key, parquet_sha256, min_event_time,"
        " max_event_time) VALUES ($1, 100, 199, 100, $2, $2, $2, 'k', 'k.parquet', $2, $3, $3)",
        settings.chain_id, bytes(32), T0,
    )  # fmt: skip
    async with AuditApp(settings) as app, tls.channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Query(pb.QueryRequest(include_archive=True))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason_and_fields(caught.value)[0] == "ARCHIVE_UNAVAILABLE"
        assert len((await stub.Query(pb.QueryRequest())).events) == 1  # hot rows still answer


async def test_ranges_archived_before_parquet_get_it_and_answer_queries(
    audit_db: str,
    s3: S3Info,
    db: asyncpg.Connection,
    audit_pool: asyncpg.Pool,
    tmp_path: Path,
    make_event: Callable[..., Event],
) -> None:
    settings = sink_settings(audit_db, tmp_path, s3=s3, archive_cache_dir=str(tmp_path / "c"))
    chain = settings.chain_id
    received = T0 + timedelta(hours=1)
    await _stored(db, chain, [_event(make_event, i, received, 0) for i in range(60)])
    store = object_store(settings, settings.archive_bucket)

    def archiver(table: TableCodec | None) -> Archiver:
        return Archiver(PgSinkState(audit_pool), chain, store, retention=timedelta(days=90),
                        object_events=PER_OBJECT, table=table)  # fmt: skip

    async with AuditApp(settings) as app, tls.channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        before = await _pages(stub, include_archive=True)
        await archiver(None).archive_all()  # as the archive was written before Parquet
        assert await _pages(stub, include_archive=True) == [[]]
        await archiver(PARQUET).archive_all()  # adds the Parquet of those ranges
        assert await _pages(stub, include_archive=True) == before
    out, err = io.StringIO(), io.StringIO()
    code = await verify_command(audit_db, chain, out=out, err=err, settings=settings)
    assert code == 0 and "archive: OK" in out.getvalue(), out.getvalue() + err.getvalue()
    store.close()
