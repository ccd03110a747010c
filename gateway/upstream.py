"""Pooled gRPC channels to one upstream service, and the metadata a call carries.

Each upstream gets a few grpc.aio channels, used in turn. Reconnect backoff is kept
short so the gateway notices within seconds that a restarted service is back; a
call to a service that is down fails at once (no wait-for-ready) and becomes a 503.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message

from meshkit.tls import TlsFiles, aio_channel

# HTTP header the caller's User-Agent travels in: grpc replaces `user-agent` metadata
# with its own, so it goes as grpc-gateway sends it (envoy.yaml adds the same header).
USER_AGENT_KEY = "grpcgateway-user-agent"
_CHANNEL_OPTIONS: Sequence[tuple[str, Any]] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 << 20),
)
_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")


class Upstream:
    """The channels to one service. Open inside a running event loop; `close` at the end."""

    def __init__(self, name: str, target: str, channels: int, tls: TlsFiles | None) -> None:
        self.name = name
        self.target = target
        self._channels = [aio_channel(target, tls, _CHANNEL_OPTIONS) for _ in range(channels)]
        self._turn = itertools.cycle(self._channels)

    def unary(
        self, path: str, response_class: type[message.Message]
    ) -> grpc.aio.UnaryUnaryMultiCallable:
        return next(self._turn).unary_unary(
            path,
            request_serializer=_serialize,
            response_deserializer=response_class.FromString,
        )

    def server_stream(
        self, path: str, response_class: type[message.Message]
    ) -> grpc.aio.UnaryStreamMultiCallable:
        return next(self._turn).unary_stream(
            path,
            request_serializer=_serialize,
            response_deserializer=response_class.FromString,
        )

    async def close(self, grace: float | None = None) -> None:
        for channel in self._channels:
            await channel.close(grace)


def _serialize(msg: message.Message) -> bytes:
    return msg.SerializeToString()


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What travels upstream with a call: metadata, and the deadline in seconds."""

    metadata: tuple[tuple[str, str], ...]
    timeout: float | None
    request_id: str


def call_info(
    headers: Mapping[str, str],
    client_host: str,
    forwarded: Sequence[str],
    default_timeout: float | None,
) -> CallInfo:
    """Metadata from the HTTP request: the forwarded headers, a request id (the
    caller's, or a new one), `x-forwarded-for` with the caller's address appended, the
    caller's User-Agent; the deadline from `grpc-timeout` or the default."""
    request_id = headers.get("x-request-id", "")
    if not _REQUEST_ID.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    metadata = [("x-request-id", request_id)]
    for name in forwarded:
        value = headers.get(name, "")
        if _sendable(value) and name not in ("x-request-id", "x-forwarded-for", "user-agent"):
            metadata.append((name, value))
    previous = headers.get("x-forwarded-for", "").strip()
    chain = ", ".join(x for x in (previous if _sendable(previous) else "", client_host) if x)
    if chain:
        metadata.append(("x-forwarded-for", chain))
    if _sendable(agent := headers.get("user-agent", "")):
        metadata.append((USER_AGENT_KEY, agent))
    timeout = parse_grpc_timeout(headers.get("grpc-timeout", ""))
    return CallInfo(
        metadata=tuple(metadata),
        timeout=timeout if timeout is not None else default_timeout,
        request_id=request_id,
    )


def _sendable(value: str) -> bool:
    """gRPC metadata values must be printable ASCII."""
    return bool(value) and all(" " <= c <= "~" for c in value)


def parse_grpc_timeout(text: str) -> float | None:
    """Seconds from a `grpc-timeout` header such as `500m` or `2S`; None if absent or bad."""
    match = _TIMEOUT.fullmatch(text.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]
