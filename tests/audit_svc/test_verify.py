"""Chain verification against a real PostgreSQL: a clean chain passes, and each kind of
tampering an operator could do with SQL is named with its first bad seq."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from audit_svc.errors import InvalidArgument, NotFound
from audit_svc.integrity.chain import canonical_bytes, link
from audit_svc.integrity.verify import VerifyResult, verify_chain
from audit_svc.model import Event
from audit_svc.ops.verify import run_verify, verify_command
from audit_svc.storage import event_reads as reads
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.event_writes import append, ensure_chain

CHAIN = "chain-1"
HEAD = 50


@pytest.fixture
async def chain(audit_pool: asyncpg.Pool, make_event: Callable[..., Event]) -> asyncpg.Pool:
    """A pool on a database holding one clean chain of HEAD events, in several commits."""
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    events = [
        make_event(t0 + timedelta(seconds=i), details={"n": i, "note": "é✓"}) for i in range(HEAD)
    ]
    async with audit_pool.acquire() as conn:
        await ensure_chain(conn, CHAIN)
        for i in range(0, HEAD, 8):
            await append(conn, CHAIN, events[i : i + 8])
    return audit_pool


async def sql(pool: asyncpg.Pool, statement: str, *args: object) -> None:
    async with pool.acquire() as conn:
        await conn.execute(statement, *args)


async def verify(db: asyncpg.Pool, chain_id: str, *args: Any, **kwargs: Any) -> VerifyResult:
    return await verify_chain(PgEventReader(db), chain_id, *args, **kwargs)


def bad(first_bad_seq: int, reason: str, checked: int, to_seq: int = HEAD) -> VerifyResult:
    return VerifyResult(False, CHAIN, 1, to_seq, checked, first_bad_seq, reason)


async def test_clean_chain_verifies_in_batches_with_progress(chain: asyncpg.Pool) -> None:
    seen: list[tuple[int, int]] = []
    result = await verify(chain, CHAIN, progress=lambda n, total: seen.append((n, total)))
    assert result == VerifyResult(True, CHAIN, 1, HEAD, HEAD)
    small = await verify(chain, CHAIN, batch=7, progress=lambda n, t: seen.append((n, t)))
    assert small == result
    assert seen[1:] == [(n, HEAD) for n in [7, 14, 21, 28, 35, 42, 49, 50]]


async def test_a_middle_range_starts_from_its_stored_prev_hash(chain: asyncpg.Pool) -> None:
    result = await verify(chain, CHAIN, 10, 30)
    assert result == VerifyResult(True, CHAIN, 10, 30, 21)


async def test_an_updated_row_is_a_hash_mismatch_at_its_seq(chain: asyncpg.Pool) -> None:
    await sql(
        chain,
        "UPDATE audit_events SET details = details || '{\"n\": 999}' WHERE chain_id=$1 AND seq=17",
        CHAIN,
    )
    assert await verify(chain, CHAIN) == bad(17, "HASH_MISMATCH", 16)
    # A range after the change still verifies: it trusts its starting point.
    assert (await verify(chain, CHAIN, 18)).ok


async def test_a_deleted_middle_row_is_a_seq_gap(chain: asyncpg.Pool) -> None:
    await sql(chain, "DELETE FROM audit_events WHERE chain_id = $1 AND seq = 23", CHAIN)
    assert await verify(chain, CHAIN) == bad(23, "SEQ_GAP", 22)
    assert await verify(chain, CHAIN, 1, 30) == bad(23, "SEQ_GAP", 22, to_seq=30)


async def test_a_changed_prev_hash_is_named(chain: asyncpg.Pool) -> None:
    await sql(
        chain,
        "UPDATE audit_events SET prev_hash = sha256(prev_hash) WHERE chain_id = $1 AND seq = 31",
        CHAIN,
    )
    assert await verify(chain, CHAIN) == bad(31, "PREV_HASH_MISMATCH", 30)


async def test_deleting_the_newest_rows_is_a_head_mismatch(chain: asyncpg.Pool) -> None:
    await sql(chain, "DELETE FROM audit_events WHERE chain_id = $1 AND seq >= 48", CHAIN)
    assert await verify(chain, CHAIN) == bad(48, "HEAD_MISMATCH", 47)
    assert (await verify(chain, CHAIN, 1, 47)).ok


async def rewrite_from(pool: asyncpg.Pool, first_seq: int) -> bytes:
    """Change every event from `first_seq` on and recompute all their hashes, as an
    attacker with write access would; return the new last hash."""
    async with pool.acquire() as conn:
        prev = await conn.fetchval(
            "SELECT hash FROM audit_events WHERE chain_id = $1 AND seq = $2", CHAIN, first_seq - 1
        )
        async for rows in reads.chain_range(conn, CHAIN, first_seq, HEAD, 10):
            for stored in rows:
                event = dataclasses.replace(stored.event, details={"n": -1})
                digest = link(prev, canonical_bytes(event, CHAIN, stored.receipt.seq))
                await conn.execute(
                    "UPDATE audit_events SET details = $3, prev_hash = $4, hash = $5"
                    " WHERE chain_id = $1 AND seq = $2",
                    *(CHAIN, stored.receipt.seq, event.details, prev, digest),
                )
                prev = digest
    return bytes(prev)


async def test_a_consistent_rewrite_of_a_suffix_is_caught_at_the_head(
    chain: asyncpg.Pool,
) -> None:
    await rewrite_from(chain, 30)
    # Every row is self-consistent now: only the recorded head gives it away, so the
    # bad seq reported is the head, not 30 (locating it needs the signed checkpoints).
    assert await verify(chain, CHAIN) == bad(HEAD, "HEAD_MISMATCH", HEAD)
    assert (await verify(chain, CHAIN, 1, 49)).ok


async def test_a_rewrite_that_also_moves_the_head_is_not_detectable_here(
    chain: asyncpg.Pool,
) -> None:
    last = await rewrite_from(chain, 30)
    await sql(chain, "UPDATE chains SET head_hash = $2 WHERE chain_id = $1", CHAIN, last)
    # Known limit: the database alone cannot prove this; the external checkpoints can.
    assert (await verify(chain, CHAIN)).ok


async def test_a_row_appended_behind_the_heads_back_is_a_head_mismatch(
    chain: asyncpg.Pool,
) -> None:
    await sql(
        chain,
        "INSERT INTO audit_events SELECT chain_id, seq + 1, gen_random_uuid(), event_type,"
        " user_id, username, ip_address, user_agent, service, action, result, details,"
        " compliance_tags, data_classification, event_time, receive_time, hash, hash"
        " FROM audit_events WHERE chain_id = $1 AND seq = $2",
        CHAIN,
        HEAD,
    )
    assert await verify(chain, CHAIN) == bad(HEAD + 1, "HEAD_MISMATCH", HEAD)


async def test_unknown_chain_and_bad_ranges_are_refused(chain: asyncpg.Pool) -> None:
    with pytest.raises(NotFound):
        await verify(chain, "chain-9")
    for from_seq, to_seq, field in [
        (0, HEAD + 1, "to_seq"),
        (-1, 0, "from_seq"),
        (9, 5, "from_seq"),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            await verify(chain, CHAIN, from_seq, to_seq)
        assert [v.field for v in caught.value.violations] == [field]


async def test_an_empty_chain_verifies(audit_pool: asyncpg.Pool) -> None:
    async with audit_pool.acquire() as conn:
        await ensure_chain(conn, "chain-2")
    assert await verify(audit_pool, "chain-2") == VerifyResult(True, "chain-2", 1, 0, 0)


async def test_cli_exit_codes_and_output(
    chain: asyncpg.Pool, audit_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(run_verify, audit_db, CHAIN, database_only=True) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"OK chain {CHAIN} seq 1..{HEAD}")
    # A short range on a non-terminal: no progress bar, only the final line.
    assert err.count("\n") == 1 and f"checked {HEAD} events" in err

    # Without S3 settings and without --database-only: the check runs, and says
    # loudly that it cannot detect truncation, with a non-zero exit.
    assert await verify_command(audit_db, CHAIN) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"OK chain {CHAIN}") and "CANNOT be" in err

    await sql(chain, "UPDATE audit_events SET result = 'failure' WHERE seq = 12")
    assert await verify_command(audit_db, CHAIN) == 1
    out, _ = capsys.readouterr()
    assert "first bad seq 12 (HASH_MISMATCH)" in out

    assert await verify_command(audit_db, "chain-9") == 2
    out, err = capsys.readouterr()
    assert out == "" and "chain-9" in err

    assert await verify_command(audit_db, CHAIN, 0, HEAD + 5) == 2
    assert "to_seq" in capsys.readouterr().err


async def test_cli_without_a_chain_verifies_every_chain(
    chain: asyncpg.Pool, audit_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with chain.acquire() as conn:
        await ensure_chain(conn, "chain-2")
    assert await verify_command(audit_db, database_only=True) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"OK chain {CHAIN} seq 1..{HEAD}",
        "OK chain chain-2 seq 1..0",
    ]
