"""The service's own shapes: NDJSON (one JSON object per event, the stored fields and
the receipt) and CSV (the same fields as columns, with a header row).

NDJSON lines carry `"format": "auditmesh.ndjson/1"`; CSV rows a `format` column.
CSV cells starting with `= + - @` (or a tab or CR) get a leading `'`, so a
spreadsheet shows them as text instead of running them as formulas (OWASP's CSV
injection advice); every other value is exactly as stored.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC
from typing import Any

from audit_svc.formats.base import Format, dumps, json_line, register, text_line, version_tag
from audit_svc.model import StoredEvent

NDJSON_TAG = version_tag("ndjson")
CSV_TAG = version_tag("csv")


def event_doc(s: StoredEvent) -> dict[str, Any]:
    """Every stored field of an event and its receipt, as JSON-ready values (times in
    RFC 3339 UTC with microseconds, hashes in hex). The archive writes the same."""
    e, r = s.event, s.receipt
    return {
        "chain_id": r.chain_id,
        "seq": r.seq,
        "event_id": str(e.event_id),
        "event_type": e.event_type,
        "user_id": e.user_id,
        "username": e.username,
        "ip_address": None if e.ip_address is None else str(e.ip_address),
        "user_agent": e.user_agent,
        "service": e.service,
        "action": e.action,
        "result": e.result,
        "details": e.details,
        "compliance_tags": list(e.compliance_tags),
        "data_classification": e.data_classification,
        "event_time": e.event_time.astimezone(UTC).isoformat(timespec="microseconds"),
        "receive_time": e.receive_time.astimezone(UTC).isoformat(timespec="microseconds"),
        "prev_hash": r.prev_hash.hex(),
        "hash": r.hash.hex(),
        "principal": e.principal,
    }


def ndjson_doc(s: StoredEvent) -> dict[str, Any]:
    return {"format": NDJSON_TAG, **event_doc(s)}


CSV_COLUMNS = (
    "format", "event_id", "event_time", "receive_time", "event_type", "user_id", "username",
    "ip_address", "user_agent", "service", "action", "result", "data_classification",
    "compliance_tags", "details", "principal", "chain_id", "seq", "hash", "prev_hash",
)  # fmt: skip
_RISKY = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_RISKY) else value


def _csv_text(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


def csv_line(s: StoredEvent) -> str:
    d = event_doc(s)
    cells = [
        CSV_TAG, d["event_id"], d["event_time"], d["receive_time"], _cell(d["event_type"]),
        _cell(d["user_id"]), _cell(d["username"]), d["ip_address"] or "", _cell(d["user_agent"]),
        _cell(d["service"]), _cell(d["action"]), _cell(d["result"]),
        _cell(d["data_classification"]), _cell(";".join(d["compliance_tags"])),
        dumps(d["details"]), _cell(d["principal"]), _cell(d["chain_id"]), str(d["seq"]),
        d["hash"], d["prev_hash"],
    ]  # fmt: skip
    return _csv_text(cells)


NDJSON = register(
    Format("ndjson", "application/x-ndjson; charset=utf-8", "ndjson", json_line(ndjson_doc))
)
CSV = register(
    Format(
        "csv",
        "text/csv; charset=utf-8",
        "csv",
        text_line(csv_line),
        header=_csv_text(list(CSV_COLUMNS)),
        json=False,
    )
)
