"""Scale-out: two audit-service replicas over one PostgreSQL behind one address (a
round-robin channel over both ports), each owning a chain through its advisory lock.
Under a bounded load from clients spread over both: both chains verify, a query merges
them newest first with page tokens that one replica makes and the other continues, and
statistics sum them."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from contextlib import AsyncExitStack

import asyncpg

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit.v2 import event_pb2
from audit_svc.app import AuditApp
from devstack.events import wire_events
from meshkit.tls import aio_channel
from tests.testkit import tls

CLIENTS, BATCHES, BATCH = 6, 10, 50  # 3,000 events, bounded
PAGE = 400


def _balanced(ports: list[int]) -> tuple[str, list[tuple[str, object]]]:
    """One address for several replicas: gRPC's own round robin over their ports, the
    way a client reaches replicas behind one DNS name (or Envoy's ROUND_ROBIN cluster)."""
    target = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)
    options: list[tuple[str, object]] = [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.ssl_target_name_override", "localhost"),  # the certificates name localhost
    ]
    return target, options


async def test_two_replicas_each_own_a_chain_and_read_as_one(
    audit_db: str, db: asyncpg.Connection
) -> None:
    key = "replicas-share-this-page-token-key"
    settings = [
        tls.audit_settings(database_url=audit_db, grpc_listen="127.0.0.1:0", page_token_key=key)
        for _ in range(2)
    ]
    async with AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(AuditApp(s)) for s in settings]
        chains = sorted(a.chain_id for a in apps)
        assert chains == ["chain-1", "chain-2"]  # AUDIT_CHAIN_ID empty: the first free ones
        target, options = _balanced([a.port for a in apps])
        channel = await stack.enter_async_context(aio_channel(target, tls.files(), options))
        stub = pb_grpc.AuditServiceStub(channel)

        sent: list[str] = []

        async def client(n: int) -> None:
            for _ in range(BATCHES):
                events = wire_events(BATCH, users=7)
                sent.extend(e.event_id for e in events)
                reply = await stub.IngestBatch(pb.IngestBatchRequest(events=events))
                assert all(r.outcome == event_pb2.OUTCOME_STORED for r in reply.results)

        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        total = CLIENTS * BATCHES * BATCH

        per_chain = Counter(
            {r["chain_id"]: r["n"] for r in await db.fetch(
                "SELECT chain_id, count(*) AS n FROM audit_events GROUP BY 1")}
        )  # fmt: skip
        assert set(per_chain) == set(chains) and all(per_chain[c] > 0 for c in chains)
        assert sum(per_chain.values()) == total

        for chain in chains:  # each chain verifies, asked through the shared address
            result = await stub.VerifyIntegrity(pb.VerifyIntegrityRequest(chain_id=chain))
            assert result.ok and result.events_checked == per_chain[chain], result

        # One query over both chains, newest first; consecutive pages are asked of
        # each replica in turn, so each continues a token the other one made.
        direct = [
            pb_grpc.AuditServiceStub(
                await stack.enter_async_context(tls.channel(f"127.0.0.1:{a.port}"))
            )
            for a in apps
        ]
        seen: list[event_pb2.AuditEvent] = []
        token = ""
        for turn in itertools.count():
            ask = direct[turn % 2]
            page = await ask.Query(pb.QueryRequest(page_size=PAGE, page_token=token))
            seen.extend(page.events)
            token = page.next_page_token
            if not token:
                break
        keys = [(e.event_time.ToDatetime(), uuid.UUID(e.event_id)) for e in seen]
        assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
        assert sorted(e.event_id for e in seen) == sorted(sent)
        assert Counter(e.receipt.chain_id for e in seen) == per_chain

        # Statistics sum both chains, whichever replica answers.
        for ask in direct:
            stats = await ask.GetStatistics(pb.GetStatisticsRequest(time_range="1h"))
            assert stats.total_events == total
            assert sum(c.count for c in stats.by_event_type) == total
