"""Archived events as Parquet: the columns of `audit_events` (`EVENT_COLUMNS`, made by
`event_row`, read back by `stored_event`, the same conversion as a PostgreSQL row), and
the scan that answers a `Query` page over archived objects.

One object per archived range, rows in seq order, row groups of `ROW_GROUP` rows with
statistics, so a time or keyset bound skips whole groups. Filters are pushed down to
the reader where Arrow can evaluate them (type exact and prefix, equality, address,
time, keyset, compliance tag); `details` containment is checked in Python on the
newest candidates only, with PostgreSQL's `@>` rules.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import json
import operator
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from audit_svc.model import StoredEvent
from audit_svc.read.filters import Match, QuerySpec
from audit_svc.storage.postgres import EVENT_COLUMNS, PSEUDONYM_COLUMNS, event_row, stored_event

ROW_GROUP = 2048
_TIME = pa.timestamp("us", tz="UTC")
# Arrow types of the columns whose Python values need one; others are inferred.
_TYPES: dict[str, pa.DataType] = {
    "chain_id": pa.string(),
    "seq": pa.int64(),
    "event_id": pa.string(),  # canonical text: its order is the uuid's byte order
    "ip_address": pa.string(),
    "details": pa.string(),  # canonical JSON text
    "compliance_tags": pa.list_(pa.string()),
    "event_time": _TIME,
    "receive_time": _TIME,
    "prev_hash": pa.binary(32),
    "hash": pa.binary(32),
    "username_token": pa.binary(),
    "ip_token": pa.binary(),
    "ip_sealed": pa.string(),
}
for _name in ("event_type", "user_id", "username", "user_agent", "service", "action",
              "result", "data_classification", "principal"):  # fmt: skip
    _TYPES[_name] = pa.string()


class ParquetCodec:
    """`TableCodec` for the archiver (which, as domain code, imports no storage)."""

    def encode(self, events: Sequence[StoredEvent]) -> bytes:
        return encode(events)

    def decode(self, data: bytes) -> list[StoredEvent]:
        return decode(data)


PARQUET = ParquetCodec()


def _to_arrow(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "event_id" or name == "ip_address" or isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return value


def encode(events: Sequence[StoredEvent]) -> bytes:
    """The Parquet object of an archived range (zstd, deterministic for the same rows)."""
    rows = [event_row(s.event, s.receipt) for s in events]
    arrays = []
    for i, name in enumerate(EVENT_COLUMNS):
        values = [_to_arrow(name, row[i]) for row in rows]
        arrays.append(pa.array(values, type=_TYPES.get(name)))
    table = pa.Table.from_arrays(arrays, names=list(EVENT_COLUMNS))
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", row_group_size=ROW_GROUP, write_statistics=True)
    return out.getvalue()


def decode(source: bytes | Path) -> list[StoredEvent]:
    """Every event of a Parquet object, in its stored (seq) order."""
    table = pq.read_table(pa.BufferReader(source) if isinstance(source, bytes) else source)
    return events_of(table)


def events_of(table: pa.Table) -> list[StoredEvent]:
    """Rows as domain events, through `stored_event` like a PostgreSQL row."""
    return [stored_event(_row(r)) for r in table.to_pylist()]


def _row(r: dict[str, Any]) -> dict[str, Any]:
    r["event_id"] = uuid.UUID(r["event_id"])
    if r.get("ip_address") is not None:
        r["ip_address"] = ipaddress.ip_address(r["ip_address"])
    r["details"] = json.loads(r["details"]) if r.get("details") else {}
    for name in ("event_time", "receive_time"):
        r[name] = r[name].replace(tzinfo=UTC)
    return r


def scan(paths: Sequence[Path], spec: QuerySpec, limit: int) -> list[StoredEvent]:
    """The newest `limit` events of these objects that match `spec` (its filters and
    its keyset position), newest first by (event_time, event_id).

    Two passes: the sort key and place (and the columns only Python can match) of
    the rows the pushed-down filters pass, to find the newest `limit`; then the whole
    rows of just those, by (chain_id, seq), which row-group statistics locate."""
    if not paths:
        return []
    data = ds.dataset([str(p) for p in paths], format="parquet")
    tag, want = spec.filters.compliance_tag, spec.filters.details_contains
    columns = ["event_time", "event_id", "chain_id", "seq"]
    columns += ["compliance_tags"] * bool(tag) + ["details"] * bool(want)
    keys = data.to_table(columns=columns, filter=_pushdown(spec))
    if tag and keys.num_rows:
        tags = keys["compliance_tags"]
        hit = pc.equal(pc.list_flatten(tags), tag)
        keys = keys.take(pc.unique(pc.filter(pc.list_parent_indices(tags), hit)))
    keys = keys.sort_by(_NEWEST)
    if want:
        wanted, step, picked = json.loads(want), max(limit, 256), []
        for start in range(0, keys.num_rows, step):  # newest first, until `limit` match
            chunk = keys.slice(start, step)
            docs = chunk["details"].to_pylist()
            picked += [start + i for i, text in enumerate(docs) if contains(_json(text), wanted)]
            if len(picked) >= limit:
                break
        keys = keys.take(pa.array(picked[:limit], type=pa.int64()))
    else:
        keys = keys.slice(0, limit)
    if not keys.num_rows:
        return []
    places: dict[str, list[int]] = {}
    for chain, seq in zip(keys["chain_id"].to_pylist(), keys["seq"].to_pylist(), strict=True):
        places.setdefault(chain, []).append(seq)
    where = [(ds.field("chain_id") == c) & ds.field("seq").isin(q) for c, q in places.items()]
    rows = data.to_table(filter=functools.reduce(operator.or_, where)).sort_by(_NEWEST)
    return events_of(rows)


_NEWEST = [("event_time", "descending"), ("event_id", "descending")]


def _json(text: str | None) -> Any:
    return json.loads(text) if text else {}


def _pushdown(spec: QuerySpec) -> ds.Expression | None:
    """The filters Arrow evaluates while reading (all but tags and details)."""
    terms: list[ds.Expression] = []
    pseudonyms = dict(spec.pseudonyms)
    for name, match, value in spec.filters.set_filters():
        column = ds.field(name)
        if name in pseudonyms:  # personal filters match their pseudonyms (privacy)
            terms.append(ds.field(PSEUDONYM_COLUMNS[name]) == pseudonyms[name])
            continue
        if match is Match.TYPE and value.endswith(".*"):
            terms.append(pc.starts_with(column, pattern=value[:-1]))
        elif match in (Match.TYPE, Match.EQUALS, Match.ADDRESS):
            terms.append(column == value)
        elif match is Match.FROM:
            terms.append(ds.field("event_time") >= _ts(value))
        elif match is Match.BEFORE:
            terms.append(ds.field("event_time") < _ts(value))
    if spec.after is not None:
        at, key = _ts(spec.after.event_time), str(spec.after.event_id)
        time = ds.field("event_time")
        terms.append((time < at) | ((time == at) & (ds.field("event_id") < key)))
    if not terms:
        return None
    out = terms[0]
    for term in terms[1:]:
        out = out & term
    return out


def _ts(t: datetime) -> pa.Scalar:
    return pa.scalar(t.astimezone(UTC), type=_TIME)


def contains(doc: Any, want: Any) -> bool:
    """PostgreSQL's jsonb `doc @> want`: objects by key, arrays by element (any
    order), scalars by value (a number never equals a boolean)."""
    if isinstance(want, dict):
        return isinstance(doc, dict) and all(
            k in doc and contains(doc[k], v) for k, v in want.items()
        )
    if isinstance(want, list):
        return isinstance(doc, list) and all(any(contains(d, w) for d in doc) for w in want)
    if isinstance(doc, dict | list) or isinstance(doc, bool) != isinstance(want, bool):
        return False
    return bool(doc == want)
