"""What each index of audit_events costs on COPY, and what candidate schemas cost, in one
interleaved run.

    .venv/bin/python -m bench.schema [--rows 300000] [--variants all|NAME,NAME...]
        [--batch 1000] [--rows-per-day 1000000] [--no-record]

Every variant is its own table in one database of a private PostgreSQL (fsync on),
written over its own connection. The same realistic rows (`devstack.events.wire_events`,
UUIDv7 ids as clients stamp them, random 32-byte hashes) go into every table a batch at
a time, one COPY and one commit per batch, the tables taking turns in a rotating order,
so machine noise (other work shares this machine) lands on all variants alike. Event
times advance by `--rows-per-day`, so the partitioned variants fill one daily
partition after another, as a day of ingest would.

Figures per variant: rows/s over the COPYs and commits (wall time), and the CPU of the
variant's PostgreSQL backend per row (utime + stime of `pg_backend_pid()` read from
/proc), over all rows and over the last tenth (the cost at the final table size: an
index's cost grows with its size). Autovacuum is off on the benchmark tables, so a GIN
index's pending-list merges run in the inserting backend and are counted.

Variants: `current` (today's table and its 11 indexes), `-NAME` (current without that
index: the difference is that index's cost), and candidate schemas (`CANDIDATES`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from google.protobuf import json_format

from audit_client.ids import new_id
from audit_svc.storage.postgres import EVENT_COLUMNS, init_connection
from bench.common import Report, bench_postgres
from bench.procstat import cpu_seconds
from devstack import create_database
from devstack.events import wire_events

TARGET_RATIO = 1.4

_COLUMNS = """
    chain_id text NOT NULL, seq bigint NOT NULL, event_id uuid NOT NULL,
    event_type text {type_collation} NOT NULL, user_id text NOT NULL DEFAULT '',
    username text NOT NULL DEFAULT '', ip_address inet, user_agent text NOT NULL DEFAULT '',
    service text NOT NULL, action text NOT NULL, result text NOT NULL,
    details jsonb NOT NULL DEFAULT '{{}}', compliance_tags text[] NOT NULL DEFAULT '{{}}',
    data_classification text NOT NULL, event_time timestamptz NOT NULL,
    receive_time timestamptz NOT NULL, prev_hash bytea NOT NULL, hash bytea NOT NULL,
    principal text NOT NULL DEFAULT ''
"""

# Today's secondary indexes (migrations 0001, 0002), by the name `-NAME` drops.
CURRENT_INDEXES = {
    "time": "btree (event_time DESC, event_id DESC)",
    "user": "btree (user_id, event_time DESC, event_id DESC)",
    "username": "btree (username, event_time DESC, event_id DESC)",
    "type": "btree (event_type, event_time DESC, event_id DESC)",
    "service": "btree (service, event_time DESC, event_id DESC)",
    "ip": "btree (ip_address, event_time DESC, event_id DESC)",
    "type_prefix": "btree (event_type text_pattern_ops)",
    "tags": "gin (compliance_tags)",
    "details": "gin (details jsonb_path_ops)",
    "action": "btree (action, event_time DESC, event_id DESC)",
}

# Filters as terms of one GIN index: `audit_terms*(...) @> ARRAY['s:user-service']`.
# SQL functions of one expression, which PostgreSQL inlines (in the index and in the
# query alike), so no function call per row; the tags keep their own GIN (a tag may be
# any text, so it cannot share a namespace with the prefixed terms).
TERMS_FUNCTIONS = [
    """
CREATE OR REPLACE FUNCTION audit_terms(service text, action text, result text,
                                       data_classification text)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY['s:' || service, 'a:' || action, 'r:' || result, 'c:' || data_classification]
""",
    """
CREATE OR REPLACE FUNCTION audit_terms_wide(service text, action text, result text,
    data_classification text, username text, ip_address inet)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY['s:' || service, 'a:' || action, 'r:' || result, 'c:' || data_classification,
             'n:' || username, 'i:' || coalesce(host(ip_address), '')]
""",
    """
CREATE OR REPLACE FUNCTION audit_terms_all(service text, action text, result text,
    data_classification text, username text, ip_address inet, user_id text)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY['s:' || service, 'a:' || action, 'r:' || result, 'c:' || data_classification,
             'n:' || username, 'i:' || coalesce(host(ip_address), ''), 'u:' || user_id]
""",
]
TERMS = "gin (audit_terms(service, action, result, data_classification))"
TERMS_WIDE = (
    "gin (audit_terms_wide(service, action, result, data_classification, username, ip_address))"
)
TERMS_ALL = (
    "gin (audit_terms_all(service, action, result, data_classification, username, "
    "ip_address, user_id))"
)


@dataclass(frozen=True)
class Schema:
    """A table layout: its keys, its secondary indexes, daily partitions or not."""

    name: str
    indexes: dict[str, str]
    partitioned: bool = False
    type_c: bool = False  # event_type COLLATE "C": its btree also serves prefixes


LEAN_BTREE = {
    "time": CURRENT_INDEXES["time"],
    "user": CURRENT_INDEXES["user"],
    "username": CURRENT_INDEXES["username"],
    "type": CURRENT_INDEXES["type"],
    "service": CURRENT_INDEXES["service"],
    "action": CURRENT_INDEXES["action"],
    "result": "btree (result, event_time DESC, event_id DESC)",
    "classification": "btree (data_classification, event_time DESC, event_id DESC)",
    "ip": CURRENT_INDEXES["ip"],
    "tags": CURRENT_INDEXES["tags"],
    "details": CURRENT_INDEXES["details"],
}
LEAN_TERMS = {
    "time": CURRENT_INDEXES["time"],
    "user": CURRENT_INDEXES["user"],
    "username": CURRENT_INDEXES["username"],
    "type": CURRENT_INDEXES["type"],
    "ip": CURRENT_INDEXES["ip"],
    "terms": TERMS,
    "tags": CURRENT_INDEXES["tags"],
    "details": CURRENT_INDEXES["details"],
}
LEAN_TERMS_WIDE = {
    "time": CURRENT_INDEXES["time"],
    "user": CURRENT_INDEXES["user"],
    "type": CURRENT_INDEXES["type"],
    "terms": TERMS_WIDE,
    "tags": CURRENT_INDEXES["tags"],
    "details": CURRENT_INDEXES["details"],
}
LEAN_TERMS_ALL = {
    "time": CURRENT_INDEXES["time"],
    "type": CURRENT_INDEXES["type"],
    "terms": TERMS_ALL,
    "tags": CURRENT_INDEXES["tags"],
    "details": CURRENT_INDEXES["details"],
}
CANDIDATES = [
    # every filter its own btree (result and classification added), prefix by collation
    Schema("btree-each", LEAN_BTREE, type_c=True),
    Schema("btree-each daily", LEAN_BTREE, partitioned=True, type_c=True),
    # service, action, result and classification as terms of one GIN
    Schema("terms", LEAN_TERMS, type_c=True),
    Schema("terms daily", LEAN_TERMS, partitioned=True, type_c=True),
    # username and IP as terms too
    Schema("terms-wide daily", LEAN_TERMS_WIDE, partitioned=True, type_c=True),
    # and the user
    Schema("terms-all daily", LEAN_TERMS_ALL, partitioned=True, type_c=True),
    Schema("current daily", CURRENT_INDEXES, partitioned=True),
]


def variants() -> list[Schema]:
    out = [Schema("current", CURRENT_INDEXES)]
    out += [
        Schema(f"-{name}", {k: v for k, v in CURRENT_INDEXES.items() if k != name})
        for name in CURRENT_INDEXES
    ]
    return out + CANDIDATES


def table_name(schema: Schema) -> str:
    slug = schema.name.replace("-", "minus_").replace(" ", "_").replace("minus_", "m_", 1)
    return "t_" + "".join(c if c.isalnum() or c == "_" else "_" for c in slug)


def create_statements(schema: Schema, start: datetime, days: int) -> list[str]:
    """DDL of the variant's table (daily partitions for `days` days from `start`)."""
    t = table_name(schema)
    cols = _COLUMNS.format(type_collation='COLLATE "C"' if schema.type_c else "")
    off = "WITH (autovacuum_enabled = off)"
    if schema.partitioned:
        out = [
            f"CREATE TABLE {t} ({cols}, PRIMARY KEY (chain_id, seq, event_time), "
            f"UNIQUE (event_id, event_time)) PARTITION BY RANGE (event_time)"
        ]
        day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
        for d in range(days):
            lo, hi = day0 + timedelta(days=d), day0 + timedelta(days=d + 1)
            out.append(
                f"CREATE TABLE {t}_p{d} PARTITION OF {t} FOR VALUES FROM ('{lo.isoformat()}') "
                f"TO ('{hi.isoformat()}') {off}"
            )
    else:
        out = [f"CREATE TABLE {t} ({cols}, PRIMARY KEY (chain_id, seq), UNIQUE (event_id)) {off}"]
    for name, spec in schema.indexes.items():
        method, columns = spec.split(" ", 1)
        out.append(f"CREATE INDEX {t}_{name}_idx ON {t} USING {method} {columns}")
    return out


@dataclass
class Tally:
    """One variant's time and backend CPU, over all batches and over the last tenth."""

    seconds: float = 0.0
    cpu: float = 0.0
    tail_seconds: float = 0.0
    tail_cpu: float = 0.0
    tail_rows: int = 0
    rows: int = 0
    samples: list[float] = field(default_factory=list)


Row = tuple[object, ...]


def make_rows(first_seq: int, count: int, start: datetime, per_day: int) -> list[Row]:
    """`count` realistic rows from seq `first_seq` on, their times `per_day` to a day."""
    step = timedelta(days=1) / per_day
    out: list[Row] = []
    for i, e in enumerate(wire_events(count, users=10_000, new_id=new_id)):
        seq = first_seq + i
        t = start + step * seq
        out.append((
            "bench", seq, uuid.UUID(e.event_id), e.event_type, e.user_id, e.username, e.ip_address,
            e.user_agent, e.service, e.action, e.result, json_format.MessageToDict(e.details),
            list(e.compliance_tags), e.data_classification, t, t, os.urandom(32),
            os.urandom(32), "spiffe://auditmesh/bench",
        ))  # fmt: skip
    return out


async def run(dsn: str, schemas: list[Schema], rows: int, batch: int, per_day: int) -> (
    dict[str, Tally]
):  # fmt: skip
    start = datetime.now(UTC) - timedelta(days=rows / per_day + 1)
    days = int(rows / per_day) + 3
    admin = await asyncpg.connect(dsn)
    for statement in TERMS_FUNCTIONS:
        await admin.execute(statement)
    for s in schemas:
        for statement in create_statements(s, start, days):
            await admin.execute(statement)
    await admin.close()
    conns = [await asyncpg.connect(dsn) for _ in schemas]
    for c in conns:
        await init_connection(c)
    pids = [c.get_server_pid() for c in conns]
    tallies = {s.name: Tally() for s in schemas}
    tail_from = rows - rows // 10
    try:
        for n, first in enumerate(range(1, rows + 1, batch)):
            chunk = make_rows(first, min(batch, rows + 1 - first), start, per_day)
            order = list(range(len(schemas)))
            order = order[n % len(order) :] + order[: n % len(order)]
            for i in order:
                s, conn, tally = schemas[i], conns[i], tallies[schemas[i].name]
                cpu0, t0 = cpu_seconds(pids[i]), time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        table_name(s), records=chunk, columns=EVENT_COLUMNS
                    )
                seconds, cpu = time.perf_counter() - t0, cpu_seconds(pids[i]) - cpu0
                tally.seconds += seconds
                tally.cpu += cpu
                tally.rows += len(chunk)
                if first + len(chunk) > tail_from:
                    tally.tail_seconds += seconds
                    tally.tail_cpu += cpu
                    tally.tail_rows += len(chunk)
            if n % 50 == 0:
                print(f"# {first + len(chunk) - 1:,} rows into each table", flush=True)
    finally:
        for c in conns:
            await c.close()
    return tallies


def report(tallies: dict[str, Tally], schemas: list[Schema], args: argparse.Namespace) -> Report:
    # Every variant (the per-index costs) and a chosen few at a larger size: two blocks.
    out = Report("schema" if args.variants == "all" else "schema_finalists")
    out.add(f"# {args.rows:,} rows into each of {len(schemas)} tables, COPY of {args.batch} "
            f"rows + commit per batch, tables in turn; {args.rows_per_day:,} rows per day "
            f"of event_time; other work shared the machine")  # fmt: skip
    base = tallies.get("current")
    rows = []
    for s in schemas:
        t = tallies[s.name]
        us = t.cpu / t.rows * 1e6
        tail_us = t.tail_cpu / max(t.tail_rows, 1) * 1e6
        rate = t.rows / t.seconds
        tail_rate = t.tail_rows / max(t.tail_seconds, 1e-9)
        vs = "" if base is None else f"{rate / (base.rows / base.seconds):.2f}x"
        tail_vs = "" if base is None else (
            f"{tail_rate / (base.tail_rows / base.tail_seconds):.2f}x"
        )  # fmt: skip
        delta = "" if base is None or s.name == "current" or not s.name.startswith("-") else (
            f"{(base.tail_cpu / base.tail_rows - t.tail_cpu / t.tail_rows) * 1e6:.1f}"
        )  # fmt: skip
        rows.append([s.name, len(s.indexes) + 2, f"{rate:,.0f}", vs, f"{us:.1f}",
                     f"{tail_rate:,.0f}", tail_vs, f"{tail_us:.1f}", delta])  # fmt: skip
    out.table(
        ["variant", "indexes", "rows/s", "vs current", "PG us/row",
         "last 10%: rows/s", "vs current", "PG us/row", "index cost us/row"],
        rows,
    )  # fmt: skip
    out.add(
        "# indexes: secondary + primary key + event_id unique; index cost: current's "
        "last-10% us/row minus the variant's (what that one index costs at this size)"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--variants", default="all", help="all, or names comma-separated")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rows-per-day", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, help="keep the server's files here")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    schemas = variants()
    if args.variants != "all":
        wanted = args.variants.split(",")
        schemas = [s for s in schemas if s.name in wanted]
        if len(schemas) != len(wanted):
            raise SystemExit(f"unknown variant in {wanted}: {[s.name for s in variants()]}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp)
        options = {"max_wal_size": "8GB", "shared_buffers": "2GB"}
        with bench_postgres(folder, options=options) as bench:
            dsn = create_database(bench.pg, "schema").dsn
            tallies = asyncio.run(run(dsn, schemas, args.rows, args.batch, args.rows_per_day))
    report(tallies, schemas, args).publish(record=not args.no_record)


if __name__ == "__main__":
    main()
