"""Messages to JSON as Envoy prints them, and the framing of streamed responses.

proto3 JSON: int64 as strings, enums by name, well-known types in their JSON form;
field names and default-value printing per the config's print options. Output is
compact, and whole numbers in doubles print without a fraction (`1`, not `1.0`), as
the C++ printer Envoy uses does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool, json_format, message
from google.rpc import status_pb2

from gateway.config import Transcoding
from gateway.jsondata import DataWriter, whole_numbers


class Printer:
    """JSON encoding of messages with one set of print options."""

    def __init__(self, options: Transcoding, pool: descriptor_pool.DescriptorPool) -> None:
        self._options = options
        self._pool = pool
        self._writer = DataWriter(
            pool,
            preserve_proto_field_names=options.preserve_proto_field_names,
            always_print_fields_with_no_presence=options.always_print_primitive_fields,
            enums_as_ints=options.always_print_enums_as_ints,
        )

    def to_data(self, msg: message.Message) -> Any:
        """The message as JSON-ready Python data (whole doubles as integers)."""
        return self._writer.to_data(msg)

    def dumps(self, msg: message.Message) -> bytes:
        """The message as compact JSON bytes."""
        return _compact(self._writer.to_data(msg))

    def dumps_status(self, status: status_pb2.Status) -> bytes:
        """A google.rpc.Status with its details, as Envoy's convert_grpc_status prints it.

        Detail types are looked up in the descriptor set, then in the types linked
        into this process; details of a type found in neither are left out."""
        for pool in (self._pool, descriptor_pool.Default()):
            try:
                return dump_data(self._status_data(status, pool))
            except (TypeError, KeyError, json_format.SerializeToJsonError):
                continue
        bare = status_pb2.Status(code=status.code, message=status.message)
        return dump_data(self._status_data(bare, self._pool))

    def _status_data(self, status: status_pb2.Status, pool: descriptor_pool.DescriptorPool) -> Any:
        return json_format.MessageToDict(
            status,
            preserving_proto_field_name=self._options.preserve_proto_field_names,
            always_print_fields_with_no_presence=self._options.always_print_primitive_fields,
            use_integers_for_enums=self._options.always_print_enums_as_ints,
            descriptor_pool=pool,
        )


def dump_data(data: Any) -> bytes:
    """JSON-ready data as compact JSON bytes, whole doubles printed as integers."""
    return _compact(whole_numbers(data))


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _compact(data: Any) -> bytes:
    return _ENCODER.encode(data).encode()


@dataclass(frozen=True, slots=True)
class StreamFraming:
    """How the messages of a server stream are written to the HTTP body."""

    name: str
    content_type: str

    def item(self, data: bytes, first: bool) -> bytes:
        if self.name == "array":
            return (b"[" if first else b",") + data
        if self.name == "sse":
            return b"data: " + data + b"\n\n"
        return data + b"\n"

    def error(self, status_json: bytes) -> bytes:
        """An error after the stream started: Envoy just closes the array; NDJSON and
        SSE callers get the status, as grpc-gateway sends it."""
        if self.name == "array":
            return b""
        if self.name == "sse":
            return b"event: error\ndata: " + status_json + b"\n\n"
        return b'{"error":' + status_json + b"}\n"

    def end(self, empty: bool) -> bytes:
        return (b"[]" if empty else b"]") if self.name == "array" else b""


FRAMINGS = {
    "array": StreamFraming("array", "application/json"),
    "ndjson": StreamFraming("ndjson", "application/x-ndjson"),
    "sse": StreamFraming("sse", "text/event-stream"),
}
_ACCEPT = {
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/json-seq": "ndjson",
    "text/event-stream": "sse",
}


def choose_framing(accept: str, default: str) -> StreamFraming:
    """The configured framing, unless the Accept header asks for NDJSON or SSE."""
    for media in _media_types(accept):
        if media in _ACCEPT:
            return FRAMINGS[_ACCEPT[media]]
    return FRAMINGS[default]


def _media_types(accept: str) -> Iterator[str]:
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media:
            yield media
