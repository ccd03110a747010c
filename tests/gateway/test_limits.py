"""Listener limits against a real gateway (gateway/protocol.py): sockets that never
finish their headers are closed, oversized headers and surplus connections refused,
and a normal request still works."""

from __future__ import annotations

import asyncio
import dataclasses

from gateway import load_config
from tests.gateway.harness import client, running_gateway

# Bounds of the test itself (a socket the gateway failed to close would hang it).
WAIT = 15.0


async def answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), WAIT)


async def test_partial_headers_time_out_and_limits_hold() -> None:
    base = load_config()
    transcoding = dataclasses.replace(
        base.transcoding, header_timeout_seconds=1.0, max_request_headers_kb=1
    )
    mesh = dataclasses.replace(base, transcoding=transcoding)
    async with running_gateway(mesh, max_connections=30) as gateway:
        port = gateway.ports["user"]
        opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        for i, (_, writer) in enumerate(opened):
            if i % 2:  # half send part of a request, half nothing at all
                writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Slow: a")
                await writer.drain()
        closed = await asyncio.gather(*(answer(reader) for reader, _ in opened))
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in closed)

        big = await asyncio.open_connection("127.0.0.1", port)
        big[1].write(
            b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2048 + b"\r\n\r\n"
        )
        assert (await answer(big[0])).startswith(b"HTTP/1.1 431 ")

        async with client(port) as http:  # a normal request is served
            response = await http.get("/openapi.json")
            assert response.status_code == 200

        # 30 open (idle, within their header timeout): the 31st is one too many.
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(30)]
        surplus = await asyncio.open_connection("127.0.0.1", port)
        assert (await answer(surplus[0])).startswith(b"HTTP/1.1 503 ")
        for _, writer in [*opened, big, *held, surplus]:
            writer.close()
            await writer.wait_closed()
