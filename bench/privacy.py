"""bench.privacy: what sealing personal fields costs, encryption on vs off in one run.

    .venv/bin/python -m bench.privacy [--events 60000] [--producers 4]
        [--rows 10000000] [--calls 200] [--no-record]

Ingest: 4 audit_client producer processes -> StreamIngest, as bench.ingest runs them,
with AUDIT_PRIVACY on (username, ip_address and user_agent sealed with AES-256-GCM per
user, pseudonyms for user_id, username and ip_address, 1,000 users) and off,
alternated twice each; the best run of each. Query: two databases of `--rows` events
loaded as bench.query loads them (10,000 users over 7 days); in the "on" one every
row is stored as the service stores it with encryption on: user_id as its pseudonym,
username, address and user agent sealed, pseudonym columns filled, a data key per
user in subject_keys (made with the service's own master key). The sealed values are
made once per user, not per event, so they do not open (their associated data names
another event): each read still runs AES-GCM over every sealed field and masks what
it shows, the same work as for a value that opens. Calls as bench.query, from the
`operator` identity (audit.admin: masked view); the page is 50 events.

Targets: encryption costs < 20% of ingest throughput; Query p99 < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.privacy.crypto import NONCE, Keys, generate_key_file, read_key_file, seal
from bench.common import Dial, Report, dial, percentiles, timed
from bench.ingest import machinery, ours
from bench.query import USERS, WARM_UP, load, ts
from devstack.events import EVENT_TYPES

TARGET_COST = 0.20
QUERY_TARGET_MS = 5.0

# bench.query's LOAD with the personal fields as stored with encryption on: per user u
# (g % $2 + 1), $7 the pseudonym, $8 the sealed username, $9 its pseudonym, $10 the
# sealed address, $11 its pseudonym, $12 the sealed user agent.
SEALED_LOAD = """
INSERT INTO audit_events (chain_id, seq, event_id, event_type, user_id, username, ip_address,
    user_agent, service, action, result, details, compliance_tags, data_classification,
    event_time, receive_time, prev_hash, hash, username_token, ip_token, ip_sealed)
SELECT 'bench', g, (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                    || lpad(to_hex(g), 19, '0'))::uuid,
       ($3::text[])[k], ($7::text[])[u], ($8::text[])[u], NULL, ($12::text[])[u],
       'user-service', ($4::text[])[k], ($5::text[])[k],
       jsonb_build_object('mfa_used', g % 2 = 0, 'session_id', 'sess_' || g),
       CASE WHEN g % 3 = 0 THEN '{SOX,GDPR}'::text[] ELSE '{GDPR}'::text[] END, 'internal',
       t, t, '\\x00', '\\x00', ($9::bytea[])[u], ($11::bytea[])[u], ($10::text[])[u]
FROM generate_series(1, $1) AS g,
     LATERAL (SELECT $6::timestamptz - interval '7 days' * (($1 - g)::float8 / $1) AS t,
                     (g % cardinality($3::text[]) + 1)::int AS k,
                     (g % $2 + 1)::int AS u) AS x
"""


def sealed_insert(key_file: Path) -> Callable[[asyncpg.Connection, int], Awaitable[None]]:
    """bench.query's insert step, writing rows as encryption on stores them."""
    keys = Keys.from_master(read_key_file(key_file)[0])

    async def insert(conn: asyncpg.Connection, rows: int) -> None:
        cols: list[list[object]] = [[] for _ in range(6)]
        key_rows = []
        for u in range(USERS):
            user_id, name, ip = f"user{u}", f"name{u}", f"10.0.{u % 250}.{u % 200}"
            subject = keys.subject(user_id)
            data_key, wrapped = keys.new_data_key(subject)
            cipher = AESGCM(data_key)
            sealed_id = seal(cipher, os.urandom(NONCE), user_id, b"subject:" + subject.encode())
            key_rows.append((subject, wrapped, sealed_id))
            aad = bytes(16)
            values = (
                subject, seal(cipher, os.urandom(NONCE), name, aad + b"username"),
                keys.token("username", name), seal(cipher, os.urandom(NONCE), ip, aad + b"ip"),
                keys.token("ip_address", ip),
                seal(cipher, os.urandom(NONCE), "Mozilla/5.0 (bench)", aad + b"user_agent"),
            )  # fmt: skip
            for col, value in zip(cols, values, strict=True):
                col.append(value)
        await conn.copy_records_to_table(
            "subject_keys", records=key_rows, columns=("subject", "wrapped_key", "sealed_subject")
        )
        types, actions, results = (list(col) for col in zip(*EVENT_TYPES, strict=True))
        await conn.execute(
            SEALED_LOAD, rows, USERS, types, actions, results, datetime.now(UTC), *cols
        )

    return insert


async def measure(target: Dial, calls: int) -> list[tuple[str, float, float]]:
    """(case, p50 ms, p99 ms): sequential calls, as bench.query."""
    rng = random.Random(7)
    async with target.channel() as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        day_ago = datetime.now(UTC) - timedelta(hours=24)

        def user() -> int:
            return rng.randrange(USERS)

        cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("Query user_id", lambda: stub.Query(pb.QueryRequest(user_id=f"user{user()}"))),
            ("Query username", lambda: stub.Query(pb.QueryRequest(username=f"name{user()}"))),
            ("Query ip_address", lambda: stub.Query(pb.QueryRequest(
                ip_address=f"10.0.{(u := user()) % 250}.{u % 200}"))),
            ("Query event_type + last 24h", lambda: stub.Query(
                pb.QueryRequest(event_type="auth.login_failed", start_time=ts(day_ago)))),
            ("Query prefix auth.*", lambda: stub.Query(pb.QueryRequest(event_type="auth.*"))),
        ]  # fmt: skip
        out = []
        for name, call in cases:
            samples, reply = await timed(call, calls, WARM_UP)
            assert isinstance(reply, pb.QueryResponse) and reply.events, name
            out.append((name, *percentiles(samples)))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="per ingest run")
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=10_000_000, help="query table size")
    parser.add_argument("--calls", type=int, default=200, help="per query case")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    rates: dict[bool, list[float]] = {True: [], False: []}
    queries: dict[bool, list[tuple[str, float, float]]] = {}
    loads: dict[bool, str] = {}
    with tempfile.TemporaryDirectory() as tmp, machinery(Path(tmp)) as (bench, pg, redis):
        key_file = Path(tmp) / "privacy-master-key"
        generate_key_file(key_file, dev=True)
        env = {True: {"AUDIT_PRIVACY_KEY_FILE": str(key_file)}, False: {"AUDIT_PRIVACY": "false"}}
        for on in (True, False, True, False):
            run = ours(bench, pg, args.producers, args.events, redis, env=env[on],
                       tag="_on" if on else "_off")  # fmt: skip
            rates[on].append(run.rate)
        for on in (True, False):
            dsn = bench.fresh_database(f"privacy_query_{'on' if on else 'off'}")
            loaded = asyncio.run(load(dsn, args.rows, sealed_insert(key_file) if on else None))
            loads[on] = loaded.describe()
            with bench.audit_service(dsn, env[on]) as service:
                queries[on] = asyncio.run(measure(dial(service.info, "operator"), args.calls))

    best_on, best_off = max(rates[True]), max(rates[False])
    cost = 1 - best_on / best_off
    report = Report("privacy")
    report.add(f"# ingest: {args.events:,} events per run, {args.producers} producers, best of "
               f"2 alternated runs each; query: {args.rows:,} events per database, "
               f"{args.calls} sequential calls per case; other work shared the machine"
               )  # fmt: skip
    report.add(f"# query tables: on {loads[True]}; off {loads[False]}")
    report.table(
        ["ingest", "events/s (best)", "runs"],
        [[name, f"{max(rates[t]):,.0f}", ", ".join(f"{r:,.0f}" for r in rates[t])]
         for name, t in (("encryption on", True), ("encryption off", False))],
    )  # fmt: skip
    report.add()
    off_by_case = {name: (p50, p99) for name, p50, p99 in queries[False]}
    report.table(
        ["call", "on p50 ms", "on p99 ms", "off p50 ms", "off p99 ms"],
        [[name, f"{p50:.2f}", f"{p99:.2f}", f"{off_by_case[name][0]:.2f}",
          f"{off_by_case[name][1]:.2f}"] for name, p50, p99 in queries[True]],
    )  # fmt: skip
    report.add()
    worst = max(p99 for _, _, p99 in queries[True])
    report.add(f"target: encryption costs < {TARGET_COST:.0%} of ingest throughput: {cost:.1%} "
               f"{'PASS' if cost < TARGET_COST else 'MISS'}; Query p99 < {QUERY_TARGET_MS:g} ms "
               f"at {args.rows:,} with encryption on: worst {worst:.2f} ms "
               f"{'PASS' if worst < QUERY_TARGET_MS else 'MISS'}")  # fmt: skip
    report.publish(record=not args.no_record)


if __name__ == "__main__":
    main()
