"""The integration guide's ingest path done the naive way: a FastAPI app where each
audit event is one HTTP POST that INSERTs one row, in its own transaction.

    BASELINE_DATABASE_URL=postgresql://... uvicorn --factory \\
        bench.baselines.http_per_event:create_app

It writes into the audit-service's own `audit_events` table (same migrated schema,
same indexes) with no hash chain: `seq` comes from a PostgreSQL sequence, and
`prev_hash` and `hash` are fixed 32-byte values.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel, Field

CHAIN = "baseline"
SETUP = f"""
CREATE SEQUENCE IF NOT EXISTS baseline_seq;
INSERT INTO chains (chain_id) VALUES ('{CHAIN}') ON CONFLICT DO NOTHING;
"""
INSERT = """
INSERT INTO audit_events (
    chain_id, seq, event_id, event_type, user_id, username, ip_address, user_agent,
    service, action, result, details, compliance_tags, data_classification,
    event_time, receive_time, prev_hash, hash
) VALUES (
    $1, nextval('baseline_seq'), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13,
    $14, $15, $16, $17
) RETURNING seq
"""
ZERO, ONE = b"\0" * 32, b"\1" * 32


class Event(BaseModel):
    """An AuditEvent as JSON, with proto field names (snake_case), as the REST API takes it."""

    event_id: uuid.UUID | None = None
    event_type: str
    user_id: str = ""
    username: str = ""
    ip_address: str | None = None
    user_agent: str = ""
    service: str
    action: str
    result: str
    details: dict[str, Any] = Field(default_factory=dict)
    compliance_tags: list[str] = Field(default_factory=list)
    data_classification: str
    event_time: datetime | None = None


def create_app() -> FastAPI:
    """The app, over BASELINE_DATABASE_URL (read once, here)."""
    dsn = os.environ["BASELINE_DATABASE_URL"]
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn)  # asyncpg's defaults: 10 connections
        await pool.execute(SETUP)
        pools.append(pool)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v2/events", status_code=201)
    async def ingest(event: Event) -> dict[str, Any]:
        now = datetime.now(UTC)
        event_id = event.event_id or uuid.uuid4()
        seq = await pools[0].fetchval(
            INSERT,
            CHAIN, event_id, event.event_type, event.user_id, event.username,
            event.ip_address, event.user_agent, event.service, event.action, event.result,
            json.dumps(event.details), event.compliance_tags, event.data_classification,
            event.event_time or now, now, ZERO, ONE,
        )  # fmt: skip
        return {"event_id": str(event_id), "seq": seq}

    return app
