"""The ingest pass (audit_svc.ingest.validation.admit) against what the path it replaced
gave: for a fixed corpus of received messages (tests/audit_svc/ingest_corpus.py), the
same rejections (index, reason, field, description) and the same chain of hashes, and
canonical bytes that match the contract's json.dumps definition (test_chain)."""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid

import asyncpg
import pytest

from audit.v2 import event_pb2
from audit_svc.access.policy import WriterGrant
from audit_svc.api import convert
from audit_svc.ingest import validation
from audit_svc.ingest.validation import Rules, admit
from audit_svc.integrity.chain import GENESIS, link, ready
from audit_svc.model import Outcome, Ready, ready_event
from audit_svc.storage import copy_rows
from audit_svc.storage.event_writes import prepare
from audit_svc.storage.postgres import EVENT_COLUMNS
from tests.audit_svc import ingest_corpus as corpus
from tests.audit_svc.test_chain import contract

# What the corpus gave through convert.event_input, validate, time_window and the grant
# before the pass (commit 4974beb), run twice: the rejections and receipts as JSON, and
# the head of the chain its valid events make. A field inside `details` is named
# "details.*": which of several bad values the old walk named first followed the
# message's map order, which varies from process to process; the pass names the first
# in key order.
# Since d09939a control characters are refused in user_id, username and tags too: the
# pins below are the old outcomes with that rule (checked against the old path's run:
# 161 events more rejected, 764 rejections gaining or rewording a control-character
# violation, nothing else); the old path's own pins were f0b4cbc2... and 9def96c0...
BEFORE_SHA256 = "7ee11a2919f75ba6e5686f66d1d93561b16d2be48484fb64135f4f3bad397d77"
BEFORE_HEAD = "e0a4c323256278546f8b23969d03e33da7166392453bede9d4021e67de627b63"
BEFORE_STORED = 653
RULES = Rules(
    corpus.NOW,
    corpus.MAX_SKEW,
    corpus.MAX_AGE,
    WriterGrant(corpus.GRANT_SERVICES, corpus.GRANT_PREFIXES),
    corpus.CHAIN,
    corpus.PRINCIPAL,
)


@pytest.fixture
def stamped_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events sent without an id get UUIDv7s in a known sequence (as the reference did)."""
    counter = itertools.count(1)
    monkeypatch.setattr(
        validation, "uuid7", lambda: uuid.UUID(int=(0x0192F1A2 << 96) | next(counter))
    )


def _field(name: str) -> str:
    return "details.*" if name.startswith(("details.", "details[")) else name


@pytest.mark.usefixtures("stamped_ids")
def test_the_corpus_gets_the_rejections_and_hashes_it_always_had() -> None:
    outcomes: list[object] = []
    every_ready: list[Ready] = []
    prev, seq = GENESIS, 0
    for b, batch in enumerate(corpus.corpus_batches()):
        admitted = admit(batch, convert.MESSAGES, RULES)
        assert sorted([*admitted.indexes, *admitted.rejected]) == list(range(len(batch)))
        ready_at = dict(zip(admitted.indexes, admitted.ready, strict=True))
        for i in range(len(batch)):
            if i in ready_at:
                seq += 1
                r = ready_at[i]
                prev = link(prev, r.before_seq + str(seq).encode() + r.after_seq)
                outcomes.append([b, i, "stored", prev.hex()])
                every_ready.append(r)
                continue
            result = admitted.rejected[i]
            assert result.index == i and result.event_id == batch[i].event_id
            violations = [
                [_field(v.field), "*" if _field(v.field) == "details.*" else v.description]
                for v in result.violations
            ]
            outcomes.append([b, i, result.reason, violations])
    text = json.dumps(outcomes, ensure_ascii=False)
    assert (seq, prev.hex()) == (BEFORE_STORED, BEFORE_HEAD)
    assert hashlib.sha256(text.encode()).hexdigest() == BEFORE_SHA256

    # Each event's bytes are the contract's, and its row is the event they describe.
    for r in every_ready:
        event = ready_event(r)
        assert r.before_seq + b"7" + r.after_seq == contract(event, corpus.CHAIN, 7)
        assert ready(event, corpus.CHAIN) == r


@pytest.mark.usefixtures("stamped_ids")
async def test_prepared_rows_store_what_asyncpg_would_and_chain_the_pass_bytes(
    db: asyncpg.Connection,
) -> None:
    # The group commit writes its own binary COPY rows (storage.copy_rows): the same
    # table contents as asyncpg's encoding of the same values, for every valid event
    # of the corpus (texts of every kind, IPv4/IPv6/none, empty and many tags).
    admitted = [admit(b, convert.MESSAGES, RULES).ready for b in corpus.corpus_batches()]
    every = [r for group in admitted for r in group]
    group = prepare(corpus.CHAIN, (41, b"\x07" * 32), every, {})
    prev, tuples = b"\x07" * 32, list[tuple[object, ...]]()
    for r, (outcome, receipt) in zip(every, group.results, strict=True):
        if outcome is Outcome.DUPLICATE:  # an id the corpus sends twice: no row
            continue
        n = 42 + len(tuples)
        assert receipt.seq == n
        digest = link(prev, contract(ready_event(r), corpus.CHAIN, n))
        assert (receipt.hash, receipt.prev_hash) == (digest, prev)
        tuples.append((corpus.CHAIN, n, prev, digest, *r.row))
        prev = digest
    assert len(group.rows) == len(tuples) > 400
    for table in ("ours", "theirs"):
        await db.execute(f"CREATE TEMP TABLE {table} (LIKE audit_events)")
    data = b"".join((copy_rows.HEADER, *group.rows, copy_rows.TRAILER))
    await db.copy_to_table("ours", source=memoryview(data), columns=EVENT_COLUMNS, format="binary")
    await db.copy_records_to_table("theirs", records=tuples, columns=EVENT_COLUMNS)
    columns = ", ".join(EVENT_COLUMNS)
    differ = f"SELECT {columns} FROM ours EXCEPT ALL SELECT {columns} FROM theirs"
    assert await db.fetch(differ) == []
    assert await db.fetchval("SELECT count(*) FROM ours") == len(tuples)


def test_every_problem_of_an_event_is_named_in_order() -> None:
    event = event_pb2.AuditEvent(
        event_id="nope",
        event_type="Auth",
        user_id="x\x00",
        service="",
        action="ok",
        result="maybe",
        data_classification="internal",
        ip_address="10.1.2",
        compliance_tags=["", "SOX"],
    )
    event.details.update({"b": float("nan"), "a": {"c": "\x00"}})
    event.event_time.seconds = 10**12
    admitted = admit([event, event_pb2.AuditEvent()], convert.MESSAGES, RULES)
    assert admitted.ready == []
    first = admitted.rejected[0]
    assert first.reason == "INVALID_EVENT"
    assert [v.field for v in first.violations] == [
        "event_time",
        "user_id",
        "event_type",
        "service",
        "result",
        "event_id",
        "ip_address",
        "compliance_tags[0]",
        "details.a.c",
    ]
    assert [v.field for v in admitted.rejected[1].violations] == [
        "event_type", "service", "action", "result", "data_classification",
    ]  # fmt: skip
