"""One gRPC request message from an HTTP request: path, query and body, as Envoy binds them.

The body (when the rule has one) is proto3 JSON: the whole request for `body: "*"`,
or the named field (`body: "event"`: the body IS the event). Query parameters set
the fields that neither the path nor the body binds, by proto or JSON name, nested
with dots. Path variables are set last and win. Unknown JSON fields and unknown
query parameters are refused with 400, every one named, as Envoy's request
validation does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from google.protobuf import descriptor, json_format, message
from google.rpc import code_pb2

from gateway import errors, fieldvalues
from gateway.matcher import unescape
from gateway.routes import Route

FieldPath = tuple[descriptor.FieldDescriptor, ...]
# Types whose JSON form is not an object of their fields; their content is not walked.
_OPAQUE = {
    "google.protobuf.Any",
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
} | {
    f"google.protobuf.{n}Value"
    for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}
_PARSE_PREFIX = re.compile(r"^(?:Failed to parse \w+ field: )*")
_PARSE_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_PARSE_AT = re.compile(r" at \"?[\w.\[\]]+\"?\.*$")


def build_request(
    route: Route, bindings: Sequence[tuple[str, str]], query: str, body: bytes
) -> message.Message:
    """The request message, or `GatewayError` (400) naming every bad field."""
    request = route.request_class()
    if route.body:
        _apply_body(request, route, body)
    _apply_query(request, route, parse_query(query))
    problems: list[tuple[str, str]] = []
    for name, value in bindings:
        fields = resolve(route.method.input_type, name.split("."))
        assert fields is not None, "path variables are checked when routes are built"
        try:
            fieldvalues.assign(_parent(request, fields), fields[-1], [value])
        except ValueError as exc:
            problems.append((name, str(exc)))
    if problems:
        raise errors.bad_request("INVALID_PATH_VARIABLE", problems)
    return request


def parse_query(query: str) -> list[tuple[str, str]]:
    """`name=value` pairs as Envoy splits them: items without `=` or without a name are
    skipped, values fully percent-decoded, `+` kept as is."""
    pairs = []
    for item in query.split("&"):
        name, sep, value = item.partition("=")
        if sep and name:
            pairs.append((unescape(name), unescape(value)))
    return pairs


def resolve(msg: descriptor.Descriptor, names: Sequence[str]) -> FieldPath | None:
    """The fields a dotted path names (proto or JSON names), or None."""
    out: list[descriptor.FieldDescriptor] = []
    current: descriptor.Descriptor | None = msg
    for name in names:
        if current is None:
            return None
        found = current.fields_by_name.get(name) or _by_json_name(current, name)
        if found is None:
            return None
        out.append(found)
        nested = found.message_type
        current = None if found.is_repeated or nested is None else nested
    return tuple(out)


def _by_json_name(msg: descriptor.Descriptor, name: str) -> descriptor.FieldDescriptor | None:
    return next((f for f in msg.fields if f.json_name == name), None)


def _parent(request: message.Message, fields: FieldPath) -> message.Message:
    target = request
    for field in fields[:-1]:
        target = getattr(target, field.name)
    return target


def _apply_body(request: message.Message, route: Route, body: bytes) -> None:
    if not body.strip():
        return
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise errors.GatewayError(
            code_pb2.INVALID_ARGUMENT,
            "MALFORMED_JSON",
            f"the request body is not valid JSON: {exc}",
        ) from None
    prefix: tuple[str, ...] = ()
    if route.body != "*":
        prefix = tuple(route.body.split("."))
        for name in reversed(prefix):
            data = {name: data}
    elif not isinstance(data, dict):
        raise errors.bad_request("INVALID_BODY", [("", "the body must be a JSON object")])
    unknown = sorted(set(_unknown_fields(data, route.method.input_type, "")))
    if unknown:
        raise errors.bad_request(
            "UNKNOWN_FIELD", [(name, "is not a field of the request") for name in unknown]
        )
    try:
        json_format.ParseDict(data, request)
    except json_format.ParseError as exc:
        raise errors.bad_request("INVALID_FIELD_VALUE", [_parse_error(exc)]) from None
    except RecursionError:
        raise errors.bad_request("INVALID_BODY", [("", "nested too deeply")]) from None


def _unknown_fields(data: Any, msg: descriptor.Descriptor, prefix: str) -> Iterator[str]:
    if not isinstance(data, Mapping) or msg.full_name in _OPAQUE:
        return
    for key, value in data.items():
        field = msg.fields_by_name.get(key) or _by_json_name(msg, key)
        if field is None:
            yield prefix + key
        elif field.message_type is None or value is None:
            continue
        elif field.message_type.GetOptions().map_entry:
            value_type = field.message_type.fields_by_name["value"].message_type
            if value_type is not None and isinstance(value, Mapping):
                for k, v in value.items():
                    yield from _unknown_fields(v, value_type, f"{prefix}{key}.{k}.")
        elif field.is_repeated:
            if isinstance(value, list):
                for i, item in enumerate(value):
                    yield from _unknown_fields(item, field.message_type, f"{prefix}{key}[{i}].")
        else:
            yield from _unknown_fields(value, field.message_type, f"{prefix}{key}.")


def _parse_error(exc: json_format.ParseError) -> tuple[str, str]:
    """(field path, reason) from json_format's message, which nests one
    `Failed to parse NAME field: ` per level and may end in ` at Type.path.`"""
    text = str(exc).splitlines()[0]
    prefix = _PARSE_PREFIX.match(text)
    names = _PARSE_FIELD.findall(prefix.group(0)) if prefix else []
    reason = _PARSE_AT.sub("", _PARSE_PREFIX.sub("", text)).strip().rstrip(".")
    return ".".join(names), reason or "invalid value"


def _apply_query(request: message.Message, route: Route, pairs: list[tuple[str, str]]) -> None:
    if not pairs:
        return
    bound = [var.field_path for var in route.template.variables]
    body = () if route.body in ("", "*") else tuple(route.body.split("."))
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    unknown: list[tuple[str, str]] = []
    invalid: list[tuple[str, str]] = []
    for name, values in grouped.items():
        fields = resolve(route.method.input_type, name.split("."))
        if fields is None:
            unknown.append((name, f"is not a field of {route.method.input_type.full_name}"))
            continue
        path = tuple(f.name for f in fields)
        if route.body == "*" or (body and _overlaps(path, body)):
            invalid.append((name, "is set by the request body, not the query"))
        elif any(_overlaps(path, b) for b in bound):
            invalid.append((name, "is bound by the path"))
        else:
            try:
                fieldvalues.assign(_parent(request, fields), fields[-1], values)
            except ValueError as exc:
                invalid.append((name, str(exc)))
    if unknown:
        raise errors.bad_request("UNKNOWN_QUERY_PARAMETER", unknown + invalid)
    if invalid:
        raise errors.bad_request("INVALID_QUERY_PARAMETER", invalid)


def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]
