"""REST readers through the gateway, without dev mode: a bearer token of the
user-service (EdDSA, `audit:read`) is needed, the audit-service verifies it with the
public key alone, and every read leaves one `audit.read` event naming the reader."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from audit_svc.app import AuditApp
from audit_svc.storage.postgres import init_connection
from tests.gateway.harness import client, running_gateway
from tests.gateway.rest import error_of
from tests.testkit import tls
from user_svc.tokens import AccessClaims, AccessTokens, public_key_pem, signing_key

SECRET = b"a test signing secret of 32 bytes!"
QUERY = "/api/v2/events/query?event_type=auth.*&limit=5"


@dataclass
class Secured:
    app: AuditApp
    http: httpx.AsyncClient
    tokens: AccessTokens
    audit_db: str


def token(tokens: AccessTokens, *permissions: str, user: str = "u-1") -> str:
    return tokens.issue(AccessClaims(user, "reader", "sess", (), tuple(permissions)))


@pytest.fixture
async def secured(audit_db: str, tmp_path: Path) -> AsyncIterator[Secured]:
    key = signing_key(SECRET)
    public = tmp_path / "token-key.pem"
    public.write_bytes(public_key_pem(key))
    settings = tls.audit_settings(
        database_url=audit_db,
        grpc_listen="127.0.0.1:0",
        token_public_key_file=str(public),
        read_audit=True,
    )
    async with AuditApp(settings) as app:
        async with running_gateway(upstreams=f"audit=127.0.0.1:{app.port}") as gateway:
            async with client(gateway.ports["audit"]) as http:
                yield Secured(app, http, AccessTokens(key, 900), audit_db)


def refused(response: httpx.Response) -> tuple[int, str]:
    """The HTTP status and the ErrorInfo reason of a refused call."""
    return response.status_code, error_of(response)[1]


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


async def test_no_token_is_401(secured: Secured) -> None:
    assert refused(await secured.http.get(QUERY)) == (401, "NO_CREDENTIALS")


async def test_a_reader_token_is_200_and_one_without_audit_read_is_403(secured: Secured) -> None:
    reader = await secured.http.get(QUERY, headers=bearer(token(secured.tokens, "audit:read")))
    assert reader.status_code == 200, reader.text

    other = await secured.http.get(QUERY, headers=bearer(token(secured.tokens, "users:admin")))
    assert refused(other) == (403, "MISSING_ROLE")

    # Integrity checks need audit.admin; a reader may not run them.
    verify = await secured.http.get(
        "/api/v2/integrity/verify", headers=bearer(token(secured.tokens, "audit:read"))
    )
    assert refused(verify) == (403, "MISSING_ROLE")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize("kind", ["tampered", "expired", "alg_none", "hs256_with_public_key"])
async def test_a_forged_or_expired_token_is_401(secured: Secured, kind: str) -> None:
    good = token(secured.tokens, "audit:read")
    now = int(time.time())
    claims = {"iss": "user-service", "aud": "auditmesh", "sub": "u-1", "iat": now,
              "exp": now + 600, "permissions": ["audit:read"]}  # fmt: skip
    if kind == "tampered":
        head, _, sig = good.rpartition(".")
        body = head.split(".")[0] + "." + _b64({**claims, "permissions": ["audit:admin"]})
        bad = f"{body}.{sig}"
    elif kind == "expired":
        bad = AccessTokens(signing_key(SECRET), -60).issue(
            AccessClaims("u-1", "reader", "sess", (), ("audit:read",))
        )
    elif kind == "alg_none":
        bad = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    else:  # the classic confusion: HS256 keyed with the (public) verification key
        signed = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
        mac = hmac.new(secured.tokens.public_key_pem, signed.encode(), hashlib.sha256).digest()
        bad = f"{signed}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    assert refused(await secured.http.get(QUERY, headers=bearer(bad))) == (401, "INVALID_TOKEN")


async def test_each_read_leaves_exactly_one_audit_read_naming_the_reader(
    secured: Secured,
) -> None:
    headers = bearer(token(secured.tokens, "audit:read", user="auditor-7"))
    reads = [
        QUERY,
        "/api/v2/events/statistics?time_range=24h",
        "/api/v1/audit/logs?event_type=user_login&limit=10",
    ]
    for path in reads:
        assert (await secured.http.get(path, headers=headers)).status_code == 200, path

    conn = await asyncpg.connect(secured.audit_db)
    await init_connection(conn)
    try:
        query = (
            "SELECT action, details FROM audit_events WHERE event_type = 'audit.read'"
            " AND details->>'principal' = 'user:auditor-7' ORDER BY seq"  # username is sealed
        )
        deadline = time.monotonic() + 30  # guards a hang only
        while len(rows := await conn.fetch(query)) < len(reads):
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.05)
        assert secured.app.read_audit is not None
        await secured.app.read_audit.flush()  # nothing more is on its way
        rows = await conn.fetch(query)
    finally:
        await conn.close()
    assert [r["action"] for r in rows] == ["Query", "GetStatistics", "SearchLogs"]
    first = rows[0]["details"]
    assert first["principal"] == "user:auditor-7"
    assert first["filters"]["event_type"] == "auth.*"
