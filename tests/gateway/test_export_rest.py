"""`GET /api/v2/events:export` through the gateway against a real audit-service:
every matching event (past any page limit) in each format, streamed, gzip when the
caller asks; a bad format is a 400 naming `format`."""

from __future__ import annotations

import csv
import gzip
import io
import json

from devstack.events import EVENT_TYPES
from tests.gateway.harness import Mesh
from tests.testkit.siem import check_ocsf, split_cef

COUNT = 1200  # more than one Query page (1000 at most)


async def store(mesh: Mesh, count: int) -> None:
    events = [
        {"event_type": t, "user_id": f"user{i}", "username": f"name{i}", "service": "user-service",
         "action": a, "result": r, "ip_address": "192.168.1.100", "user_agent": "Mozilla/5.0",
         "details": {"i": i}, "compliance_tags": ["SOX"], "data_classification": "internal"}
        for i, (t, a, r) in enumerate(EVENT_TYPES[i % len(EVENT_TYPES)] for i in range(count))
    ]  # fmt: skip
    for start in range(0, count, 500):
        response = await mesh.audit.post(
            "/api/v2/events/batch", json={"events": events[start : start + 500]}
        )
        assert response.status_code == 200


async def test_export_in_every_format_past_the_page_limit(mesh: Mesh) -> None:
    await store(mesh, COUNT)
    response = await mesh.audit.get("/api/v2/events:export", params={"format": "ocsf"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    docs = [json.loads(line) for line in response.text.splitlines()]
    assert len(docs) == COUNT
    for doc in docs[:: len(EVENT_TYPES) * 7 + 1]:
        check_ocsf(doc)
    assert sorted(d["metadata"]["sequence"] for d in docs) == list(range(1, COUNT + 1))
    times = [d["time"] for d in docs]
    assert times == sorted(times)  # oldest first

    ndjson = (await mesh.audit.get("/api/v2/events:export")).text.splitlines()
    assert len(ndjson) == COUNT and json.loads(ndjson[0])["format"] == "auditmesh.ndjson/1"

    cef = await mesh.audit.get("/api/v2/events:export", params={"format": "cef"})
    lines = cef.text.splitlines()
    assert len(lines) == COUNT
    header, ext = split_cef(lines[0])
    assert header[0] == "CEF:0" and ext["cs6"] == "auditmesh.cef/1"

    ecs = await mesh.audit.get("/api/v2/events:export", params={"format": "ecs"})
    first = json.loads(ecs.text.splitlines()[0])
    assert first["event"]["id"] == docs[0]["metadata"]["uid"]

    table = await mesh.audit.get("/api/v2/events:export", params={"format": "csv"})
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(table.text)))
    assert rows[0][0] == "format" and len(rows) == COUNT + 1


async def test_export_filters_and_gzip(mesh: Mesh) -> None:
    await store(mesh, 100)
    params = {"format": "ndjson", "event_type": "auth.*", "result": "success",
              "start_time": "2026-01-01T00:00:00Z"}  # fmt: skip
    plain = await mesh.audit.get("/api/v2/events:export", params=params)
    expected = [json.loads(x) for x in plain.text.splitlines()]
    assert expected and all(
        d["event_type"].startswith("auth.") and d["result"] == "success" for d in expected
    )
    # httpx would decode gzip itself: read the raw bytes to see what was sent.
    async with mesh.audit.stream(
        "GET", "/api/v2/events:export", params=params, headers={"accept-encoding": "gzip"}
    ) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert [json.loads(x) for x in gzip.decompress(raw).splitlines()] == expected

    empty = await mesh.audit.get("/api/v2/events:export", params={"user_id": "nobody"})
    assert empty.status_code == 200 and empty.text == ""
    before = await mesh.audit.get(
        "/api/v2/events:export", params={"end_time": "2026-01-01T00:00:00Z"}
    )
    assert before.status_code == 200 and before.text == ""
    nothing = await mesh.audit.get(
        "/api/v2/events:export", params={"user_id": "nobody", "format": "csv"}
    )
    assert nothing.text.splitlines()[0].startswith("format,event_id")


async def test_bad_format_or_filter_is_400_naming_the_field(mesh: Mesh) -> None:
    response = await mesh.audit.get(
        "/api/v2/events:export", params={"format": "xml", "ip_address": "nope"}
    )
    assert response.status_code == 400
    body = response.json()
    (info,) = [d for d in body["details"] if d["@type"].endswith("ErrorInfo")]
    assert info["reason"] == "INVALID_ARGUMENT"
    (bad,) = [d for d in body["details"] if d["@type"].endswith("BadRequest")]
    assert sorted(v["field"] for v in bad["field_violations"]) == ["format", "ip_address"]
