"""Server streaming as `curl -N` sees it: the audit-service's live tail through the
gateway, message by message, in each framing; errors; a caller hanging up cancels
the upstream call; shutdown ends a live stream cleanly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from audit_svc.app import AuditApp
from devstack.events import GUIDE_EVENT
from gateway import Listener, MeshConfig, Transcoding
from gateway.descriptors import Descriptors
from tests.gateway.harness import Everything, EverythingFactory, Mesh, client, running_gateway
from tests.gateway.rest import error_of
from tests.gateway.servers import EVERYTHING, EverythingServer

WAIT = 30.0  # upper bound for anything to arrive; never a timing assertion


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) until the condition holds."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


class Tail:
    """Reads a streamed response in a task; items arrive in a queue as they come."""

    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        self.response: httpx.Response | None = None
        self.raw = b""
        self._task = asyncio.create_task(self._read(http, url, headers))

    async def _read(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        async with http.stream("GET", url, headers=headers) as response:
            self.response = response
            decoder = json.JSONDecoder()
            pending = ""
            async for chunk in response.aiter_raw():
                self.raw += chunk
                pending += chunk.decode()
                while True:
                    pending = pending.lstrip("[,\n ").removeprefix("data: ")
                    try:
                        item, end = decoder.raw_decode(pending)
                    except json.JSONDecodeError:
                        break
                    pending = pending[end:]
                    await self.items.put(item)

    async def next(self) -> Any:
        return await asyncio.wait_for(self.items.get(), WAIT)

    async def hang_up(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def finished(self) -> bytes:
        await asyncio.wait_for(self._task, WAIT)
        return self.raw


async def test_live_tail_of_the_audit_service_message_by_message(mesh: Mesh) -> None:
    app: AuditApp = mesh.app
    tail = Tail(mesh.audit, "/api/v2/events/watch?event_type=auth.*", {})
    await until(lambda: app.tail.subscribers == 1)

    first = await mesh.audit.post("/api/v2/events", json=GUIDE_EVENT)
    got = await tail.next()  # arrives while the stream stays open: flushed per message
    assert got["event"]["event_id"] == first.json()["result"]["event_id"]
    assert tail.response is not None
    assert tail.response.headers["content-type"] == "application/json"
    assert tail.raw.startswith(b'[{"event":')

    await mesh.audit.post("/api/v2/events", json={**GUIDE_EVENT, "event_type": "user.user_created"})
    last = await mesh.audit.post(
        "/api/v2/events", json={**GUIDE_EVENT, "event_type": "auth.logout"}
    )
    got = await tail.next()
    assert got["event"]["event_id"] == last.json()["result"]["event_id"]  # filter applied

    await tail.hang_up()
    await until(lambda: app.tail.subscribers == 0)  # the upstream Watch was cancelled


async def test_ndjson_on_request(mesh: Mesh) -> None:
    tail = Tail(mesh.audit, "/api/v2/events/watch", {"accept": "application/x-ndjson"})
    await until(lambda: mesh.app.tail.subscribers == 1)
    await mesh.audit.post("/api/v2/events", json=GUIDE_EVENT)

    got = await tail.next()
    assert got["event"]["user_id"] == "user123"
    assert tail.response is not None
    assert tail.response.headers["content-type"] == "application/x-ndjson"
    assert tail.raw.endswith(b"}\n") and not tail.raw.startswith(b"[")
    await tail.hang_up()
    await until(lambda: mesh.app.tail.subscribers == 0)


async def test_finite_streams_in_each_framing(everything_with: EverythingFactory) -> None:
    array = await everything_with()
    whole = await array.http.get("/v1/count?count=3")
    assert whole.headers["content-type"] == "application/json"
    assert whole.json() == [
        {"int32_value": 1, "int64_value": "10"},
        {"int32_value": 2, "int64_value": "20"},
        {"int32_value": 3, "int64_value": "30"},
    ]
    assert (await array.http.get("/v1/count?count=0")).text == "[]"

    ndjson = await array.http.get("/v1/count?count=2", headers={"accept": "application/x-ndjson"})
    assert (
        ndjson.text
        == '{"int32_value":1,"int64_value":"10"}\n{"int32_value":2,"int64_value":"20"}\n'
    )

    sse = await everything_with(stream_format="sse")
    events = await sse.http.get("/v1/count?count=2")
    assert events.headers["content-type"] == "text/event-stream"
    assert events.text == (
        'data: {"int32_value":1,"int64_value":"10"}\n\n'
        'data: {"int32_value":2,"int64_value":"20"}\n\n'
    )


async def test_stream_errors(everything: Everything) -> None:
    before = await everything.http.get("/v1/count?count=0&fail_code=7")
    assert before.status_code == 403  # nothing sent yet: a real HTTP error
    assert error_of(before) == (7, "TEST_STREAM_FAILURE", ["code"])

    ndjson = await everything.http.get(
        "/v1/count?count=1&fail_code=9", headers={"accept": "application/x-ndjson"}
    )
    assert ndjson.status_code == 200
    lines = [json.loads(line) for line in ndjson.text.splitlines()]
    assert lines[0] == {"int32_value": 1, "int64_value": "10"}
    assert lines[1]["error"]["code"] == 9

    array = await everything.http.get("/v1/count?count=1&fail_code=9")
    assert array.json() == [{"int32_value": 1, "int64_value": "10"}]  # closed, as Envoy does


async def test_hanging_up_cancels_the_upstream_call(everything: Everything) -> None:
    tail = Tail(everything.http, "/v1/count?count=1&hold=true", {})
    assert await tail.next() == {"int32_value": 1, "int64_value": "10"}
    await asyncio.wait_for(everything.server.holding.wait(), WAIT)

    await tail.hang_up()
    await asyncio.wait_for(everything.server.cancelled.wait(), WAIT)


async def test_shutdown_ends_live_streams_cleanly(test_descriptor_set: Path) -> None:
    async with EverythingServer(Descriptors.load(test_descriptor_set)) as server:
        listener = Listener("everything", 0, f"127.0.0.1:{server.port}", (EVERYTHING,))
        mesh = MeshConfig((listener,), Transcoding())
        async with running_gateway(mesh, descriptor_set=test_descriptor_set) as gateway:
            async with client(gateway.ports["everything"]) as http:
                tail = Tail(http, "/v1/count?count=1&hold=true", {})
                await tail.next()
                await asyncio.wait_for(server.holding.wait(), WAIT)

                await gateway.stop()

                raw = await tail.finished()
                assert raw == b'[{"int32_value":1,"int64_value":"10"}]'  # the array is closed
                await asyncio.wait_for(server.cancelled.wait(), WAIT)
