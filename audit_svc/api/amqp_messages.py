"""The RabbitMQ ingest's wire format: message bodies in, dead-letter messages out.

A message is one `audit.v2.IngestBatchRequest` (at most 1000 events), either
- `application/x-protobuf; proto=audit.v2.IngestBatchRequest`: its serialized bytes, or
- `application/json`: the JSON `POST /api/v2/events/batch` takes (`{"events": [...]}`).

What cannot be stored goes to the dead-letter exchange `<queue>.dead`, with the
reason and the field violations in headers (`x-audit-*`, below): one message per
rejected event (an IngestBatchRequest of that event, in the content type it came in),
or the whole message as it came when it could not be read at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from audit.v2 import audit_service_pb2 as pb
from audit_svc.model import FieldViolation

PROTOBUF = "application/x-protobuf"
PROTO_NAME = pb.IngestBatchRequest.DESCRIPTOR.full_name
PROTOBUF_TYPE = f"{PROTOBUF}; proto={PROTO_NAME}"
JSON = "application/json"

# Headers of a dead-lettered message.
REASON = "x-audit-reason"  # UPPER_SNAKE, as ErrorInfo.reason / EventResult.reason
VIOLATIONS = "x-audit-field-violations"  # JSON: [{"field": ..., "description": ...}]
EVENT_INDEX = "x-audit-event-index"  # the event's index in the message it came in
EVENT_ID = "x-audit-event-id"
SOURCE_MESSAGE_ID = "x-audit-source-message-id"  # message_id of the message it came in
PUBLISHER = "x-audit-publisher"  # the broker-checked user_id of its publisher ('' if none)


class Unreadable(Exception):
    """A message that is no IngestBatchRequest: dead-lettered whole."""

    def __init__(self, reason: str, violations: Sequence[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.reason = reason
        self.violations = tuple(violations)


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """`type/subtype` (lower case) and its parameters."""
    head, *params = (content_type or "").split(";")
    parsed = {}
    for param in params:
        key, _, value = param.partition("=")
        parsed[key.strip().lower()] = value.strip().strip('"')
    return head.strip().lower(), parsed


def decode(body: bytes, content_type: str | None) -> pb.IngestBatchRequest:
    """The batch a message carries; `Unreadable` when it carries none."""
    media, params = media_type(content_type)
    request = pb.IngestBatchRequest()
    if media == PROTOBUF:
        if params.get("proto", PROTO_NAME) != PROTO_NAME:
            raise Unreadable(
                "UNSUPPORTED_CONTENT_TYPE",
                [FieldViolation("content_type", f"proto= must be {PROTO_NAME}")],
            )
        try:
            request.ParseFromString(body)
        except DecodeError:
            raise Unreadable(
                "MALFORMED_MESSAGE", [FieldViolation("body", f"is not a serialized {PROTO_NAME}")]
            ) from None
        return request
    if media == JSON:
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise Unreadable(
                    "MALFORMED_MESSAGE", [FieldViolation("body", "must be a JSON object")]
                )
            json_format.ParseDict(data, request)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise Unreadable(
                "MALFORMED_MESSAGE", [FieldViolation("body", f"is not valid JSON: {exc}")]
            ) from None
        except json_format.ParseError as exc:
            why = str(exc).splitlines()[0] if str(exc) else "invalid value"
            raise Unreadable("MALFORMED_MESSAGE", [FieldViolation("body", why)]) from None
        return request
    raise Unreadable(
        "UNSUPPORTED_CONTENT_TYPE",
        [FieldViolation("content_type", f"must be {PROTOBUF_TYPE} or {JSON}")],
    )


def encode_one(event: Any, content_type: str | None) -> bytes:
    """An IngestBatchRequest of one event, in the message's own content type."""
    request = pb.IngestBatchRequest()
    request.events.append(event)
    if media_type(content_type)[0] == JSON:
        return json_format.MessageToJson(request, preserving_proto_field_name=True).encode()
    return request.SerializeToString()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message for the dead-letter exchange."""

    body: bytes
    content_type: str
    headers: Mapping[str, str | int]
    message_id: str


def dead_letter(
    body: bytes,
    content_type: str | None,
    reason: str,
    violations: Sequence[FieldViolation],
    *,
    source_message_id: str,
    publisher: str,
    index: int | None = None,
    event_id: str = "",
) -> DeadLetter:
    """A dead letter: `body` with the reason and violations in its headers; `index` and
    `event_id` when it is one event of a message."""
    listed = [{"field": v.field, "description": v.description} for v in violations]
    headers: dict[str, str | int] = {
        REASON: reason,
        VIOLATIONS: json.dumps(listed),
        SOURCE_MESSAGE_ID: source_message_id,
        PUBLISHER: publisher,
    }
    message_id = source_message_id
    if index is not None:
        headers[EVENT_INDEX] = index
        headers[EVENT_ID] = event_id
        message_id = f"{source_message_id}/{index}"
    return DeadLetter(body, content_type or "", headers, message_id)
